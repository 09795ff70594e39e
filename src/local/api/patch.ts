// JSON merge patch (RFC 7386) and strategic merge patch for the built-in types kubectl patches.
import {badRequest} from './errors.js'
import {clone, isPlainObject} from './util.js'

/** RFC 7386: objects merge recursively, null deletes, anything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return clone(patch)
  const out: Record<string, unknown> = isPlainObject(target) ? clone(target) : {}
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k]
    else out[k] = mergePatch(out[k], v)
  }
  return out
}

/**
 * The merge key of a list in a built-in type, by the field's path (names only, list indices
 * dropped): containers merge by name, container ports by containerPort, Service ports by port…
 * Lists without a key are replaced as a whole, as Kubernetes does for them.
 */
export function listMergeKey(path: readonly string[], field: string): string | undefined {
  switch (field) {
    case 'containers':
    case 'initContainers':
    case 'ephemeralContainers':
    case 'volumes':
    case 'env':
    case 'imagePullSecrets':
      return 'name'
    case 'volumeMounts':
      return 'mountPath'
    case 'volumeDevices':
      return 'devicePath'
    case 'hostAliases':
      return 'ip'
    case 'conditions':
      return 'type'
    case 'ownerReferences':
      return 'uid'
    case 'ports': {
      const parent = path[path.length - 1]
      if (parent === 'containers' || parent === 'initContainers' || parent === 'ephemeralContainers') return 'containerPort'
      // Service spec.ports and EndpointSubset ports
      return path.includes('subsets') ? undefined : 'port'
    }
    default:
      return undefined
  }
}

/** Primitive lists that strategic merge treats as sets (merge, not replace). */
const PRIMITIVE_MERGE = new Set(['finalizers'])

const DIRECTIVE = '$patch'

/**
 * Strategic merge patch as kubectl sends it for built-in types: maps merge, keyed lists merge
 * by their key, `$patch: delete|replace|merge`, `$setElementOrder/<f>` and
 * `$deleteFromPrimitiveList/<f>` directives; `$retainKeys` is accepted and ignored.
 */
export function strategicMergePatch(target: unknown, patch: unknown, path: string[] = []): unknown {
  if (!isPlainObject(patch)) return clone(patch)
  if (patch[DIRECTIVE] === 'replace') {
    const {[DIRECTIVE]: _d, ...rest} = patch
    return stripDirectives(rest)
  }
  if (patch[DIRECTIVE] === 'delete') return undefined
  const out: Record<string, unknown> = isPlainObject(target) ? clone(target) : {}
  const orders: Record<string, unknown[]> = {}
  for (const [k, v] of Object.entries(patch)) {
    if (k === DIRECTIVE || k === '$retainKeys') continue
    if (k.startsWith('$setElementOrder/')) {
      if (Array.isArray(v)) orders[k.slice('$setElementOrder/'.length)] = v
      continue
    }
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const f = k.slice('$deleteFromPrimitiveList/'.length)
      if (Array.isArray(out[f]) && Array.isArray(v)) out[f] = (out[f] as unknown[]).filter((x) => !v.includes(x))
      continue
    }
    if (v === null) {
      delete out[k]
      continue
    }
    if (Array.isArray(v)) {
      const key = listMergeKey(path, k)
      if (key) out[k] = mergeKeyedList(Array.isArray(out[k]) ? (out[k] as unknown[]) : [], v, key, [...path, k])
      else if (PRIMITIVE_MERGE.has(k)) {
        const cur = Array.isArray(out[k]) ? (out[k] as unknown[]) : []
        out[k] = [...cur, ...v.filter((x) => !cur.includes(x))]
      } else out[k] = stripDirectives(v)
      continue
    }
    if (isPlainObject(v)) {
      const merged = strategicMergePatch(out[k], v, [...path, k])
      if (merged === undefined) delete out[k]
      else out[k] = merged
      continue
    }
    out[k] = v
  }
  for (const [f, order] of Object.entries(orders)) {
    const key = listMergeKey(path, f)
    if (key && Array.isArray(out[f])) out[f] = reorder(out[f] as unknown[], order, key)
  }
  return out
}

function mergeKeyedList(cur: unknown[], patch: unknown[], key: string, path: string[]): unknown[] {
  if (patch.some((e) => isPlainObject(e) && e[DIRECTIVE] === 'replace')) {
    return patch.filter((e) => !(isPlainObject(e) && e[DIRECTIVE] === 'replace')).map(stripDirectives)
  }
  const out = clone(cur)
  for (const el of patch) {
    if (!isPlainObject(el)) throw badRequest(`strategic merge patch: an element of ${path.join('.')} is not an object`)
    const k = el[key]
    const idx = out.findIndex((x) => isPlainObject(x) && x[key] === k)
    if (el[DIRECTIVE] === 'delete') {
      if (idx >= 0) out.splice(idx, 1)
      continue
    }
    if (idx >= 0) out[idx] = strategicMergePatch(out[idx], el, path)
    else out.push(strategicMergePatch(undefined, el, path))
  }
  return out
}

function reorder(list: unknown[], order: unknown[], key: string): unknown[] {
  const pos = new Map<unknown, number>()
  order.forEach((o, i) => isPlainObject(o) && pos.set(o[key], i))
  // elements named in the order come first in that order; others keep their relative order after
  return [...list].sort((a, b) => {
    const pa = isPlainObject(a) && pos.has(a[key]) ? pos.get(a[key])! : Number.MAX_SAFE_INTEGER
    const pb = isPlainObject(b) && pos.has(b[key]) ? pos.get(b[key])! : Number.MAX_SAFE_INTEGER
    return pa - pb
  })
}

function stripDirectives(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stripDirectives)
  if (!isPlainObject(v)) return v
  const out: Record<string, unknown> = {}
  for (const [k, x] of Object.entries(v)) {
    if (k.startsWith('$')) continue
    out[k] = stripDirectives(x)
  }
  return out
}
