// The one validation entry point for Istio objects: the embedded API server calls
// validateIstioObject at apply time; `mesh render` calls assertValid before printing.
import {EXIT, MeshError} from '../lib/errors.js'
import {MESH_CODES, type MeshCause} from './codes.js'
import {ISTIO_GROUPS, STRUCTURAL_ONLY_KINDS, kindsInGroup, modelFor, structuralCauses, unknownFieldCauses, versionsOf} from './schema.js'
import {checkSubsetReferences, semanticCauses} from './semantic.js'

export interface ValidationContext {
  /** DestinationRules the VirtualService's subsets must exist in (checked only when given) */
  destinationRules?: readonly unknown[]
  /** namespace assumed for objects without metadata.namespace (default "default") */
  defaultNamespace?: string
}

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)

/** True when the object's apiVersion belongs to an Istio API group. */
export function isIstioObject(obj: unknown): boolean {
  if (!isRecord(obj) || typeof obj.apiVersion !== 'string') return false
  return (ISTIO_GROUPS as readonly string[]).includes(obj.apiVersion.split('/')[0]!)
}

/**
 * All problems with one Istio object, each with a code and a field path such as
 * `spec.http[0].route[1].weight`. An empty array means valid.
 */
export function validateIstioObject(obj: unknown, ctx: ValidationContext = {}): MeshCause[] {
  if (!isRecord(obj)) return [{code: 'MESH_SCHEMA', field: '(object)', message: `is ${Array.isArray(obj) ? 'a list' : obj === null ? 'null' : `a ${typeof obj}`}, not an object with apiVersion and kind`}]
  const {apiVersion, kind} = obj
  if (typeof apiVersion !== 'string' || apiVersion === '') return [{code: 'MESH_REQUIRED', field: 'apiVersion', message: 'is required'}]
  if (typeof kind !== 'string' || kind === '') return [{code: 'MESH_REQUIRED', field: 'kind', message: 'is required'}]
  const group = apiVersion.split('/')[0]!
  if (!(ISTIO_GROUPS as readonly string[]).includes(group)) {
    return [{code: 'MESH_KIND_UNKNOWN', field: 'apiVersion', message: `"${apiVersion}" is not an Istio API group (${ISTIO_GROUPS.join(', ')})`, value: apiVersion}]
  }
  const cls = modelFor(apiVersion, kind)
  if (!cls) {
    const versions = versionsOf(group, kind)
    return versions.length > 0
      ? [{code: 'MESH_KIND_UNKNOWN', field: 'apiVersion', message: `${kind} is not served as "${apiVersion}"; use ${versions.join(' or ')}`, value: apiVersion}]
      : [{code: 'MESH_KIND_UNKNOWN', field: 'kind', message: `"${kind}" is not a kind of ${group} (${kindsInGroup(group).join(', ')})`, value: kind}]
  }
  const causes = structuralCauses(cls, obj)
  if (!STRUCTURAL_ONLY_KINDS.has(kind)) causes.push(...unknownFieldCauses(cls, obj))
  causes.push(...semanticCauses(obj, STRUCTURAL_ONLY_KINDS.has(kind) ? '' : kind))
  if (kind === 'VirtualService' && ctx.destinationRules) causes.push(...checkSubsetReferences(obj, ctx.destinationRules, ctx.defaultNamespace))
  return causes
}

const describe = (obj: unknown): string => {
  if (!isRecord(obj)) return 'object'
  const name = isRecord(obj.metadata) && typeof obj.metadata.name === 'string' ? obj.metadata.name : '(no name)'
  return `${typeof obj.kind === 'string' ? obj.kind : 'object'} ${name}`
}

/** Throw MESH_INVALID_RESOURCE (exit 65) listing every cause; returns the object when valid. */
export function assertValid<T>(obj: T, ctx: ValidationContext = {}): T {
  const causes = validateIstioObject(obj, ctx)
  if (causes.length > 0) {
    const first = causes[0]!
    const more = causes.length > 1 ? ` (and ${causes.length - 1} more)` : ''
    throw new MeshError('MESH_INVALID_RESOURCE', `${describe(obj)} is invalid: ${first.field} ${first.message}${more}`, {
      suggestion: MESH_CODES[first.code] ?? MESH_CODES.MESH_INVALID_RESOURCE,
      exit: EXIT.invalidInput,
      causes,
    })
  }
  return obj
}
