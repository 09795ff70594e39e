// Small helpers shared by the store and the server.

/** JSON with object keys sorted, so equal objects give equal strings. */
export function canonical(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null'
  if (Array.isArray(v)) return `[${v.map((x) => canonical(x === undefined ? null : x)).join(',')}]`
  const o = v as Record<string, unknown>
  const keys = Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(',')}}`
}

export const deepEqual = (a: unknown, b: unknown): boolean => canonical(a) === canonical(b)

/**
 * A deep copy with JSON's rules (undefined and functions dropped, in arrays null; non-finite
 * numbers null), as `JSON.parse(JSON.stringify(v))` gives, ~4× faster on store objects: meshd
 * copies every object it reads, writes and sends to each watcher.
 */
export const clone = <T>(v: T): T => (v === undefined ? v : (copyJson(v) as T))

const skipped = (x: unknown) => x === undefined || typeof x === 'function' || typeof x === 'symbol'

function copyJson(v: unknown): unknown {
  if (v === null || typeof v !== 'object') {
    if (typeof v === 'number') return Number.isFinite(v) ? (v === 0 ? 0 : v) : null
    return v
  }
  if (Array.isArray(v)) {
    const out = new Array<unknown>(v.length)
    for (let i = 0; i < v.length; i++) out[i] = skipped(v[i]) ? null : copyJson(v[i])
    return out
  }
  const proto = Object.getPrototypeOf(v) as unknown
  // Dates, Buffers, boxed values, class instances: exactly what JSON makes of them
  if ((proto !== Object.prototype && proto !== null) || typeof (v as {toJSON?: unknown}).toJSON === 'function') return JSON.parse(JSON.stringify(v))
  const out: Record<string, unknown> = {}
  for (const k of Object.keys(v)) {
    const x = (v as Record<string, unknown>)[k]
    if (skipped(x)) continue
    if (k === '__proto__') Object.defineProperty(out, k, {value: copyJson(x), enumerable: true, writable: true, configurable: true})
    else out[k] = copyJson(x)
  }
  return out
}

export const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v)

/** Kubernetes timestamps have whole seconds. */
export const nowTimestamp = (): string => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')
