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

export const clone = <T>(v: T): T => (v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T))

export const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v)

/** Kubernetes timestamps have whole seconds. */
export const nowTimestamp = (): string => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')
