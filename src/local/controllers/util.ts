// Small helpers shared by the embedded cluster's controllers.
import {createHash, randomInt} from 'node:crypto'
import type {KubeObject, ResourceType, Store} from '../api/types.js'
import {canonical} from '../api/util.js'

/** The node every embedded pod is bound to (spec.nodeName). */
export const NODE_NAME = 'mesh-local'

// Kubernetes avoids vowels (no accidental words) and look-alike characters in generated names.
const SAFE_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789'

export function randomSuffix(n = 5): string {
  let s = ''
  for (let i = 0; i < n; i++) s += SAFE_ALPHABET[randomInt(SAFE_ALPHABET.length)]
  return s
}

/** A stable 10-character hash of a pod template (the `pod-template-hash` label). */
export function podTemplateHash(template: unknown): string {
  const digest = createHash('sha256').update(canonical(template ?? {})).digest()
  let s = ''
  for (let i = 0; i < 10; i++) s += SAFE_ALPHABET[digest[i] % SAFE_ALPHABET.length]
  return s
}

export const objectKey = (namespace: string | undefined, name: string): string => `${namespace ?? ''}/${name}`

export function splitKey(key: string): {namespace: string | undefined; name: string} {
  const i = key.indexOf('/')
  const ns = key.slice(0, i)
  return {namespace: ns === '' ? undefined : ns, name: key.slice(i + 1)}
}

export interface Condition {
  type: string
  status: 'True' | 'False' | 'Unknown'
  reason?: string
  message?: string
  lastTransitionTime?: string
  lastUpdateTime?: string
  lastProbeTime?: string | null
}

/** Kubernetes timestamps have whole seconds. */
export const now = (): string => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')

/**
 * Merges freshly computed conditions with the previous ones: transition times move only when
 * the status flips, so rewriting an unchanged status is a no-op for the store.
 */
export function mergeConditions(previous: Condition[] | undefined, next: Condition[], withUpdateTime = false): Condition[] {
  const at = now()
  return next.map((c) => {
    const old = previous?.find((p) => p.type === c.type)
    const same = old && old.status === c.status
    const sameDetail = same && old.reason === c.reason && old.message === c.message
    return {
      ...c,
      ...(withUpdateTime ? {lastUpdateTime: sameDetail ? old.lastUpdateTime ?? at : at} : {}),
      lastTransitionTime: same ? old.lastTransitionTime ?? at : at,
    }
  })
}

export function conditionTrue(obj: KubeObject | undefined, type: string): boolean {
  const conds = (obj?.status as {conditions?: Condition[]} | undefined)?.conditions
  return Array.isArray(conds) && conds.some((c) => c.type === type && c.status === 'True')
}

export const isPodReady = (pod: KubeObject): boolean => conditionTrue(pod, 'Ready')

export const podPhase = (pod: KubeObject): string => ((pod.status as {phase?: string} | undefined)?.phase ?? 'Pending')

export const isPodTerminal = (pod: KubeObject): boolean => ['Failed', 'Succeeded'].includes(podPhase(pod))

export const isDeleting = (obj: KubeObject): boolean => Boolean(obj.metadata.deletionTimestamp)

export interface OwnerReference {
  apiVersion: string
  kind: string
  name: string
  uid: string
  controller?: boolean
  blockOwnerDeletion?: boolean
}

export function controllerOf(obj: KubeObject): OwnerReference | undefined {
  const refs = obj.metadata.ownerReferences as OwnerReference[] | undefined
  return Array.isArray(refs) ? refs.find((r) => r.controller === true) : undefined
}

export interface LabelSelector {
  matchLabels?: Record<string, string>
  matchExpressions?: Array<{key: string; operator: string; values?: string[]}>
}

/** Kubernetes LabelSelector semantics (matchLabels AND matchExpressions). An empty selector matches everything. */
export function selectorMatches(sel: LabelSelector | undefined, labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {}
  for (const [k, v] of Object.entries(sel?.matchLabels ?? {})) if (l[k] !== v) return false
  for (const e of sel?.matchExpressions ?? []) {
    const has = Object.hasOwn(l, e.key)
    const vals = e.values ?? []
    if (e.operator === 'In' && !(has && vals.includes(l[e.key]))) return false
    if (e.operator === 'NotIn' && has && vals.includes(l[e.key])) return false
    if (e.operator === 'Exists' && !has) return false
    if (e.operator === 'DoesNotExist' && has) return false
  }
  return true
}

/** Service-style selector: a plain map; an empty or missing one selects nothing. */
export function mapSelects(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector || Object.keys(selector).length === 0) return false
  const l = labels ?? {}
  return Object.entries(selector).every(([k, v]) => l[k] === v)
}

/** `25%` or `1` against a total; percentages round up for surge and down for unavailability. */
export function intOrPercent(v: unknown, total: number, roundUp: boolean, fallback: string): number {
  const raw = v === undefined || v === null || v === '' ? fallback : v
  if (typeof raw === 'number') return Math.max(0, Math.floor(raw))
  const s = String(raw).trim()
  const m = /^(\d+)%$/.exec(s)
  if (m) {
    const x = (Number(m[1]) * total) / 100
    return roundUp ? Math.ceil(x) : Math.floor(x)
  }
  const n = Number(s)
  return Number.isFinite(n) ? Math.max(0, Math.floor(n)) : 0
}

/** The resource types controllers use, resolved once from the store's registry. */
export interface CoreTypes {
  namespace: ResourceType
  pod: ResourceType
  service: ResourceType
  endpoints: ResourceType
  serviceAccount: ResourceType
  event: ResourceType
  deployment: ResourceType
}

export function coreTypes(store: Store): CoreTypes {
  const need = (kind: string, group: string): ResourceType => {
    const t = store.typeFor(kind, group)
    if (!t) throw new Error(`the store does not serve ${kind} (${group || 'core'})`)
    return t
  }
  return {
    namespace: need('Namespace', ''),
    pod: need('Pod', ''),
    service: need('Service', ''),
    endpoints: need('Endpoints', ''),
    serviceAccount: need('ServiceAccount', ''),
    event: need('Event', ''),
    deployment: need('Deployment', 'apps'),
  }
}

export const sameType = (a: ResourceType, b: ResourceType): boolean => a.group === b.group && a.resource === b.resource

/** 404 from the store (object gone) and 409 (someone wrote first) are routine for controllers. */
export function statusOf(e: unknown): number | undefined {
  const s = (e as {status?: unknown})?.status
  return typeof s === 'number' ? s : undefined
}

export type Logger = (message: string) => void
