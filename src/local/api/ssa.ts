// Server-side apply: field ownership per manager (managedFields, FieldsV1), conflicts between
// appliers, and removal of fields a manager stops applying. A simplified structured merge:
// maps merge, keyed lists of built-in types merge by key, every other list is atomic.
// See docs/adr/0022-server-side-apply.md.
import {listMergeKey} from './patch.js'
import type {KubeObject} from './types.js'
import {canonical, clone, isPlainObject, nowTimestamp} from './util.js'

export interface ManagedFieldsEntry {
  manager: string
  operation: 'Apply' | 'Update'
  apiVersion: string
  time: string
  fieldsType: 'FieldsV1'
  fieldsV1: Record<string, unknown>
  subresource?: string
}

export interface FieldConflict {
  manager: string
  apiVersion: string
  /** `.spec.replicas`, `.spec.template.spec.containers[name="web"].image` */
  field: string
}

/** A leaf (or list-element marker `.`) with its value, keyed by the JSON of its path. */
interface Leaf {
  path: string[]
  value: string
}
type Flat = Map<string, Leaf>

export interface TypeTraits {
  /** built-in type: lists with a known merge key are merged by key; otherwise every list is atomic */
  keyedLists: boolean
  /** status belongs to the /status subresource and is never owned through the main resource */
  statusSubresource: boolean
}

const META_SKIP = new Set(['name', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'managedFields', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'selfLink'])

const pkey = (p: string[]): string => JSON.stringify(p)

/** Field leaves of an object, as SSA tracks them. */
export function flatten(obj: Record<string, unknown>, traits: TypeTraits): Flat {
  const out: Flat = new Map()
  for (const [k, v] of Object.entries(obj)) {
    if (k === 'apiVersion' || k === 'kind' || v === undefined) continue
    if (k === 'status' && traits.statusSubresource) continue
    if (k === 'metadata' && isPlainObject(v)) {
      for (const [mk, mv] of Object.entries(v)) {
        if (META_SKIP.has(mk) || mv === undefined) continue
        walk(mv, ['f:metadata', `f:${mk}`], ['metadata', mk])
      }
      continue
    }
    walk(v, [`f:${k}`], [k])
  }
  return out

  function walk(v: unknown, path: string[], names: string[]): void {
    if (isPlainObject(v) && Object.keys(v).length > 0) {
      for (const [k, x] of Object.entries(v)) if (x !== undefined) walk(x, [...path, `f:${k}`], [...names, k])
      return
    }
    if (Array.isArray(v) && traits.keyedLists) {
      const field = names[names.length - 1]
      const key = listMergeKey(names.slice(0, -1), field)
      if (key && v.length > 0 && v.every((e) => isPlainObject(e) && e[key] !== undefined)) {
        for (const e of v as Array<Record<string, unknown>>) {
          const el = [...path, `k:${JSON.stringify({[key]: e[key]})}`]
          out.set(pkey([...el, '.']), {path: [...el, '.'], value: ''})
          for (const [k, x] of Object.entries(e)) if (x !== undefined) walk(x, [...el, `f:${k}`], [...names, k])
        }
        return
      }
    }
    out.set(pkey(path), {path, value: canonical(v)})
  }
}

export function toFieldsV1(paths: Iterable<string[]>): Record<string, unknown> {
  const root: Record<string, unknown> = {}
  for (const p of paths) {
    let node = root
    for (const el of p) {
      node[el] ??= {}
      node = node[el] as Record<string, unknown>
    }
  }
  return root
}

export function fromFieldsV1(f: unknown, prefix: string[] = []): string[][] {
  if (!isPlainObject(f)) return []
  const out: string[][] = []
  for (const [k, v] of Object.entries(f)) {
    const p = [...prefix, k]
    if (k === '.' || !isPlainObject(v) || Object.keys(v).length === 0) out.push(p)
    else {
      if (k.startsWith('k:') && !('.' in v)) out.push([...p, '.'])
      out.push(...fromFieldsV1(v, p))
    }
  }
  return out
}

/** `.spec.template.spec.containers[name="web"].image` */
export function renderPath(p: string[]): string {
  let s = ''
  for (const el of p) {
    if (el === '.') continue
    if (el.startsWith('f:')) s += `.${el.slice(2)}`
    else if (el.startsWith('k:')) {
      try {
        const k = JSON.parse(el.slice(2)) as Record<string, unknown>
        s += `[${Object.entries(k)
          .map(([a, b]) => `${a}=${JSON.stringify(b)}`)
          .join(',')}]`
      } catch {
        s += `[${el.slice(2)}]`
      }
    } else s += `[${el}]`
  }
  return s
}

function entries(obj: KubeObject): ManagedFieldsEntry[] {
  const mf = obj.metadata.managedFields
  return Array.isArray(mf) ? (clone(mf) as ManagedFieldsEntry[]).filter((e) => isPlainObject(e) && typeof e.manager === 'string') : []
}

function setOf(e: ManagedFieldsEntry): Map<string, string[]> {
  return new Map(fromFieldsV1(e.fieldsV1).map((p) => [pkey(p), p]))
}

/** Structured merge of an applied configuration into the live object. */
function mergeApplied(live: unknown, applied: unknown, names: string[], traits: TypeTraits): unknown {
  if (isPlainObject(applied)) {
    if (!isPlainObject(live)) return stripNulls(applied)
    const out = clone(live)
    for (const [k, v] of Object.entries(applied)) {
      if (v === null) delete out[k]
      else out[k] = mergeApplied(out[k], v, [...names, k], traits)
    }
    return out
  }
  if (Array.isArray(applied) && Array.isArray(live) && traits.keyedLists) {
    const field = names[names.length - 1]
    const key = listMergeKey(names.slice(0, -1), field)
    if (key && applied.every((e) => isPlainObject(e) && e[key] !== undefined)) {
      const out = clone(live)
      for (const e of applied as Array<Record<string, unknown>>) {
        const i = out.findIndex((x) => isPlainObject(x) && x[key] === e[key])
        if (i >= 0) out[i] = mergeApplied(out[i], e, names, traits)
        else out.push(stripNulls(e))
      }
      return out
    }
  }
  return stripNulls(applied)
}

function stripNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stripNulls)
  if (!isPlainObject(v)) return v
  const out: Record<string, unknown> = {}
  for (const [k, x] of Object.entries(v)) if (x !== null) out[k] = stripNulls(x)
  return out
}

/** Removes the field at `path` (FieldsV1 elements); prunes maps left empty. */
function removePath(obj: Record<string, unknown>, path: string[]): void {
  const stack: Array<{container: Record<string, unknown> | unknown[]; key: string | number}> = []
  let cur: unknown = obj
  for (const el of path) {
    if (el === '.') break
    if (el.startsWith('f:')) {
      if (!isPlainObject(cur)) return
      stack.push({container: cur, key: el.slice(2)})
      cur = cur[el.slice(2)]
    } else if (el.startsWith('k:')) {
      if (!Array.isArray(cur)) return
      const k = JSON.parse(el.slice(2)) as Record<string, unknown>
      const i = cur.findIndex((x) => isPlainObject(x) && Object.entries(k).every(([a, b]) => canonical(x[a]) === canonical(b)))
      if (i < 0) return
      stack.push({container: cur, key: i})
      cur = cur[i]
    } else return
    if (cur === undefined) return
  }
  const last = stack.pop()
  if (!last) return
  if (Array.isArray(last.container)) last.container.splice(last.key as number, 1)
  else delete last.container[last.key as string]
  // prune parents that became empty maps (not lists: an empty list can be meaningful)
  for (let i = stack.length - 1; i >= 0; i--) {
    const {container, key} = stack[i]
    const child = Array.isArray(container) ? container[key as number] : container[key as string]
    if (isPlainObject(child) && Object.keys(child).length === 0 && !Array.isArray(container)) delete container[key as string]
    else break
  }
}

export interface ApplyInput {
  /** live object, or undefined to create */
  live: KubeObject | undefined
  applied: KubeObject
  manager: string
  force: boolean
  apiVersion: string
  traits: TypeTraits
}

export interface ApplyResult {
  object: KubeObject
  conflicts: FieldConflict[]
}

/** Computes the object after `manager` applies `applied`; conflicts are reported, not thrown. */
export function serverSideApply(input: ApplyInput): ApplyResult {
  const {live, manager, force, apiVersion, traits} = input
  const applied = clone(input.applied)
  delete applied.metadata.managedFields
  if (traits.statusSubresource) delete applied.status
  const flatA = flatten(applied as Record<string, unknown>, traits)
  const base: KubeObject = live ? clone(live) : {apiVersion: applied.apiVersion, kind: applied.kind, metadata: {name: applied.metadata.name}}
  const flatL = flatten(base as Record<string, unknown>, traits)
  const managed = entries(base)
  const mine = managed.find((e) => e.manager === manager && e.operation === 'Apply' && !e.subresource)
  const oldMine = mine ? setOf(mine) : new Map<string, string[]>()

  const conflicts: FieldConflict[] = []
  const others = managed.filter((e) => e !== mine && !e.subresource)
  const otherSets = new Map<ManagedFieldsEntry, Map<string, string[]>>(others.map((e) => [e, setOf(e)]))
  for (const [e, set] of otherSets) {
    for (const [k, leaf] of flatA) {
      if (!set.has(k)) continue
      const same = flatL.get(k)?.value === leaf.value
      if (same) continue
      // like the apiserver: a field another manager set to a different value conflicts (Apply or Update)
      if (!force) conflicts.push({manager: e.manager, apiVersion: e.apiVersion, field: renderPath(leaf.path)})
      else set.delete(k)
    }
  }
  if (conflicts.length > 0) return {object: base, conflicts}

  const merged = mergeApplied(base, applied, [], traits) as KubeObject
  // fields this manager applied before, no longer applies, and nobody else owns: removed
  const owned = new Set<string>(flatA.keys())
  for (const set of otherSets.values()) for (const k of set.keys()) owned.add(k)
  const dropped = [...oldMine.entries()].filter(([k]) => !owned.has(k))
  const leaves = dropped.filter(([, p]) => p[p.length - 1] !== '.')
  const markers = dropped.filter(([, p]) => p[p.length - 1] === '.').sort((a, b) => b[1].length - a[1].length)
  for (const [, p] of leaves) removePath(merged as Record<string, unknown>, p)
  for (const [, p] of markers) {
    const prefix = p.slice(0, -1)
    const stillUsed = [...owned].some((k) => {
      const q = JSON.parse(k) as string[]
      return q.length > prefix.length && prefix.every((el, i) => q[i] === el)
    })
    if (!stillUsed) removePath(merged as Record<string, unknown>, p)
  }

  const time = nowTimestamp()
  const next: ManagedFieldsEntry[] = []
  for (const e of managed) {
    if (e === mine) continue
    const set = otherSets.get(e)
    if (set) {
      if (set.size === 0) continue
      next.push({...e, fieldsV1: toFieldsV1(set.values())})
    } else next.push(e)
  }
  const unchanged = mine && canonical(mine.fieldsV1) === canonical(toFieldsV1([...flatA.values()].map((l) => l.path))) && canonical(stripMeta(merged)) === canonical(stripMeta(base))
  const entry: ManagedFieldsEntry = {
    manager,
    operation: 'Apply',
    apiVersion,
    time: unchanged ? mine!.time : time,
    fieldsType: 'FieldsV1',
    fieldsV1: toFieldsV1([...flatA.values()].map((l) => l.path)),
  }
  const at = mine ? managed.indexOf(mine) : -1
  if (at >= 0) next.splice(Math.min(at, next.length), 0, entry)
  else next.push(entry)
  merged.metadata.managedFields = next
  return {object: merged, conflicts: []}
}

function stripMeta(o: KubeObject): unknown {
  const c = clone(o)
  delete c.metadata.managedFields
  delete c.metadata.resourceVersion
  return c
}

/**
 * Ownership after a non-apply write by `manager` (create, update, patch): the fields it changed
 * become its own (taken from whoever held them), fields it removed are owned by nobody.
 */
export function recordUpdate(old: KubeObject | undefined, next: KubeObject, manager: string, apiVersion: string, traits: TypeTraits, subresource?: string): ManagedFieldsEntry[] {
  const managed = old ? entries(old) : []
  const flatOld = old ? flatten(old as Record<string, unknown>, traits) : new Map()
  const subTraits = subresource === 'status' ? {...traits, statusSubresource: false} : traits
  const flatNew = flatten(next as Record<string, unknown>, subTraits)
  const flatOldSub = old && subresource === 'status' ? flatten(old as Record<string, unknown>, subTraits) : flatOld
  const changed: string[][] = []
  const removed = new Set<string>()
  for (const [k, l] of flatNew) {
    if (subresource === 'status' && l.path[0] !== 'f:status') continue
    if (flatOldSub.get(k)?.value !== l.value) changed.push(l.path)
  }
  for (const k of flatOldSub.keys()) if (!flatNew.has(k)) removed.add(k)
  if (changed.length === 0 && removed.size === 0) return managed
  const changedKeys = new Set(changed.map(pkey))
  const out: ManagedFieldsEntry[] = []
  let mine: ManagedFieldsEntry | undefined
  for (const e of managed) {
    if (e.manager === manager && e.operation === 'Update' && (e.subresource ?? '') === (subresource ?? '')) {
      mine = e
      continue
    }
    const set = setOf(e)
    let touched = false
    for (const k of [...set.keys()]) {
      if (changedKeys.has(k) || removed.has(k)) {
        set.delete(k)
        touched = true
      }
    }
    if (set.size === 0) continue
    out.push(touched ? {...e, fieldsV1: toFieldsV1(set.values())} : e)
  }
  const mySet = mine ? setOf(mine) : new Map<string, string[]>()
  for (const k of removed) mySet.delete(k)
  for (const p of changed) mySet.set(pkey(p), p)
  if (mySet.size > 0) {
    out.push({
      manager,
      operation: 'Update',
      apiVersion,
      time: nowTimestamp(),
      fieldsType: 'FieldsV1',
      fieldsV1: toFieldsV1(mySet.values()),
      ...(subresource ? {subresource} : {}),
    })
  }
  return out
}
