// Layer 1 of validation: structure, against the Istio CRD schemas compiled into
// @kubernetes-models/istio (types, enums, required fields, oneOf), plus unknown-field
// detection, which those schemas do not do (they allow any extra property; ADR 0011).
import * as extV1alpha1 from '@kubernetes-models/istio/extensions.istio.io/v1alpha1'
import * as netV1 from '@kubernetes-models/istio/networking.istio.io/v1'
import * as netV1alpha3 from '@kubernetes-models/istio/networking.istio.io/v1alpha3'
import * as netV1beta1 from '@kubernetes-models/istio/networking.istio.io/v1beta1'
import * as secV1 from '@kubernetes-models/istio/security.istio.io/v1'
import * as secV1beta1 from '@kubernetes-models/istio/security.istio.io/v1beta1'
import * as telV1 from '@kubernetes-models/istio/telemetry.istio.io/v1'
import * as telV1alpha1 from '@kubernetes-models/istio/telemetry.istio.io/v1alpha1'
import type {MeshCause} from './codes.js'

interface ModelClass {
  apiVersion: string
  kind: string
  new (data: unknown): {validate(): void}
}

interface AjvError {
  instancePath: string
  keyword: string
  params: Record<string, unknown>
  message?: string
}

const REGISTRY = new Map<string, ModelClass>()
for (const mod of [netV1, netV1beta1, netV1alpha3, secV1, secV1beta1, telV1, telV1alpha1, extV1alpha1]) {
  for (const value of Object.values(mod) as unknown[]) {
    if (typeof value !== 'function') continue
    const c = value as unknown as Partial<ModelClass>
    if (typeof c.apiVersion === 'string' && typeof c.kind === 'string') REGISTRY.set(`${c.apiVersion}|${c.kind}`, c as ModelClass)
  }
}

export const ISTIO_GROUPS = ['networking.istio.io', 'security.istio.io', 'telemetry.istio.io', 'extensions.istio.io'] as const

/** Kinds whose schemas hold free-form maps (Struct fields): checked for structure only. */
export const STRUCTURAL_ONLY_KINDS: ReadonlySet<string> = new Set(['Telemetry', 'EnvoyFilter', 'WasmPlugin', 'ProxyConfig'])

/** Every apiVersion/kind pair the validator knows, e.g. "networking.istio.io/v1 VirtualService". */
export const istioKinds = (): string[] => [...REGISTRY.keys()].map((k) => k.replace('|', ' ')).sort()

export const modelFor = (apiVersion: string, kind: string): ModelClass | undefined => REGISTRY.get(`${apiVersion}|${kind}`)

export const kindsInGroup = (group: string): string[] =>
  [...new Set([...REGISTRY.values()].filter((c) => c.apiVersion.startsWith(group + '/')).map((c) => c.kind))].sort()

export const versionsOf = (group: string, kind: string): string[] =>
  [...REGISTRY.values()].filter((c) => c.kind === kind && c.apiVersion.startsWith(group + '/')).map((c) => c.apiVersion)

type Segment = string | number

const decodePointer = (p: string): string[] => (p === '' ? [] : p.slice(1).split('/').map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~')))

/** Pointer segments → typed segments, numbers where the data holds an array. */
function typedSegments(data: unknown, raw: string[]): Segment[] {
  const out: Segment[] = []
  let cur: unknown = data
  for (const s of raw) {
    if (Array.isArray(cur) && /^\d+$/.test(s)) {
      out.push(Number(s))
      cur = cur[Number(s)]
    } else {
      out.push(s)
      cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[s] : undefined
    }
  }
  return out
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/

/** ['spec','http',0,'route',1,'weight'] → spec.http[0].route[1].weight; odd keys in brackets: labels["mesh.lab/faulty"]. */
export function fieldPath(segments: readonly Segment[]): string {
  let out = ''
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`
    else if (IDENT.test(s)) out += out === '' ? s : `.${s}`
    else out += `[${JSON.stringify(s)}]`
  }
  return out
}

function valueAt(data: unknown, segments: readonly Segment[]): unknown {
  let cur = data
  for (const s of segments) cur = cur && typeof cur === 'object' ? (cur as Record<string | number, unknown>)[s] : undefined
  return cur
}

const article = (t: string) => (/^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`)

function describeAjv(err: AjvError, present: string[]): string {
  const p = err.params
  switch (err.keyword) {
    case 'type':
      return `must be ${article(String(p.type))}`
    case 'enum':
      return `must be one of ${(p.allowedValues as unknown[]).join(', ')}`
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return `must be ${String(p.comparison)} ${String(p.limit)}`
    case 'oneOf':
      return Array.isArray(p.passingSchemas)
        ? `sets fields that exclude each other (${present.join(', ')}); keep only one`
        : 'does not match any allowed form of this field'
    case 'anyOf':
      return 'does not match any allowed form of this field'
    case 'not':
      return `sets a combination of fields that is not allowed (${present.join(', ')})`
    case 'format':
      return `is not a valid ${String(p.format)}`
    case 'pattern':
      return `does not match the pattern ${String(p.pattern)}`
    default:
      return err.message ?? `fails the ${err.keyword} rule`
  }
}

function ajvErrorsOf(cls: ModelClass, data: unknown): AjvError[] {
  try {
    new cls(data).validate()
    return []
  } catch (err) {
    const errors = (err as {errors?: AjvError[]}).errors
    if (Array.isArray(errors)) return errors
    throw err
  }
}

/** Structural causes for one object (the model class is chosen by apiVersion and kind). */
export function structuralCauses(cls: ModelClass, obj: Record<string, unknown>): MeshCause[] {
  const errors = ajvErrorsOf(cls, obj)
  // oneOf/anyOf already summarise a path: drop the branch details reported at the same place
  const summarised = new Set(errors.filter((e) => e.keyword === 'oneOf' || e.keyword === 'anyOf').map((e) => e.instancePath))
  const causes: MeshCause[] = []
  const seen = new Set<string>()
  for (const e of errors) {
    if (summarised.has(e.instancePath) && e.keyword !== 'oneOf' && e.keyword !== 'anyOf') continue
    let segs = typedSegments(obj, decodePointer(e.instancePath))
    if (e.keyword === 'required') segs = [...segs, String(e.params.missingProperty)]
    const at = valueAt(obj, segs)
    const present = at && typeof at === 'object' && !Array.isArray(at) ? Object.keys(at) : []
    const message = e.keyword === 'required' ? 'is required' : describeAjv(e, present)
    const field = fieldPath(segs) || '(object)'
    const key = `${field}\u0000${message}`
    if (seen.has(key)) continue
    seen.add(key)
    causes.push({code: e.keyword === 'required' ? 'MESH_REQUIRED' : 'MESH_SCHEMA', field, message, ...(at !== undefined && typeof at !== 'object' ? {value: at} : {})})
  }
  return causes
}

/** Replace every leaf (scalar, empty object, empty array) by a value no schema type accepts. */
function probe(v: unknown): unknown {
  if (Array.isArray(v)) return v.length > 0 ? v.map(probe) : PROBE
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v)
    if (keys.length === 0) return PROBE
    return Object.fromEntries(keys.map((k) => [k, probe((v as Record<string, unknown>)[k])]))
  }
  return PROBE
}
const PROBE = Symbol('probe')

/** Top-level and metadata parts that are not ours to judge. */
const SKIP_TOP = new Set(['apiVersion', 'kind', 'status'])
const SKIP_META = new Set(['managedFields'])

/**
 * Unknown fields: the schemas accept extra properties silently, so we find them ourselves.
 * Every leaf is swapped for a value of no JSON type; the schema then reports a type error at
 * every path it knows (including map entries such as labels). A key on no reported path is unknown.
 */
export function unknownFieldCauses(cls: ModelClass, obj: Record<string, unknown>): MeshCause[] {
  const probed: Record<string, unknown> = {apiVersion: cls.apiVersion, kind: cls.kind}
  for (const [k, v] of Object.entries(obj)) {
    if (SKIP_TOP.has(k)) continue
    if (k === 'metadata' && v && typeof v === 'object' && !Array.isArray(v)) {
      probed.metadata = probe(Object.fromEntries(Object.entries(v).filter(([mk]) => !SKIP_META.has(mk))))
    } else probed[k] = probe(v)
  }
  const known = new Set<string>()
  const typeErrorAt = new Set<string>()
  for (const e of ajvErrorsOf(cls, probed)) {
    const segs = decodePointer(e.instancePath)
    for (let i = 1; i <= segs.length; i++) known.add(segs.slice(0, i).join('\u0000'))
  }
  // where the real object has a type error, its children are not worth a second complaint
  for (const e of ajvErrorsOf(cls, obj)) if (e.keyword === 'type') typeErrorAt.add(decodePointer(e.instancePath).join('\u0000'))

  const causes: MeshCause[] = []
  const walk = (v: unknown, raw: string[], typed: Segment[]) => {
    if (typeErrorAt.has(raw.join('\u0000'))) return
    if (Array.isArray(v)) {
      v.forEach((item, i) => walk(item, [...raw, String(i)], [...typed, i]))
      return
    }
    if (v === null || typeof v !== 'object') return
    for (const [k, child] of Object.entries(v as Record<string, unknown>)) {
      if (raw.length === 0 && SKIP_TOP.has(k)) continue
      if (raw.length === 1 && raw[0] === 'metadata' && SKIP_META.has(k)) continue
      const r = [...raw, k]
      const t = [...typed, k]
      if (!known.has(r.join('\u0000'))) {
        causes.push({code: 'MESH_UNKNOWN_FIELD', field: fieldPath(t), message: `unknown field "${k}"`})
        continue
      }
      walk(child, r, t)
    }
  }
  walk(obj, [], [])
  return causes
}
