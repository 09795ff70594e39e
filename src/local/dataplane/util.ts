// Small helpers shared by the data plane: durations, label selectors, response flags,
// workload names. Pure; no sockets.

/** Parses a protobuf Duration as it appears in Istio YAML ("1s", "0.5s", "100ms", "3m", "1h"). Returns ms, or undefined. */
export function parseDuration(v: unknown): number | undefined {
  if (v === undefined || v === null || v === '') return undefined
  if (typeof v === 'number') return v * 1000
  if (typeof v === 'object') {
    const o = v as {seconds?: number | string; nanos?: number}
    return Number(o.seconds ?? 0) * 1000 + Number(o.nanos ?? 0) / 1e6
  }
  const s = String(v).trim()
  // Go-style durations may chain units: 1m30s
  const re = /(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)/g
  let total = 0
  let consumed = 0
  let m: RegExpExecArray | null
  while ((m = re.exec(s)) !== null) {
    if (m.index !== consumed) return undefined
    consumed = m.index + m[0].length
    const n = Number(m[1])
    switch (m[2]) {
      case 'h': total += n * 3_600_000; break
      case 'm': total += n * 60_000; break
      case 's': total += n * 1000; break
      case 'ms': total += n; break
      case 'us': case 'µs': total += n / 1000; break
      case 'ns': total += n / 1e6; break
    }
  }
  if (consumed !== s.length || consumed === 0) return undefined
  return total
}

/** Equality-based label selector (Service.spec.selector, Gateway.spec.selector, subset labels). */
export function labelsMatch(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector) return true
  for (const k in selector) {
    if (!labels || labels[k] !== selector[k]) return false
  }
  return true
}

/** Envoy response flags in Envoy's own print order, so "UF,URX" reads as Envoy writes it. */
export const FLAG = {
  LH: 1 << 0,
  UH: 1 << 1,
  UT: 1 << 2,
  LR: 1 << 3,
  UR: 1 << 4,
  UF: 1 << 5,
  UC: 1 << 6,
  UO: 1 << 7,
  NR: 1 << 8,
  DI: 1 << 9,
  FI: 1 << 10,
  RL: 1 << 11,
  UAEX: 1 << 12,
  RLSE: 1 << 13,
  DC: 1 << 14,
  URX: 1 << 15,
  SI: 1 << 16,
  IH: 1 << 17,
  DPE: 1 << 18,
  UMSDR: 1 << 19,
  NFCF: 1 << 20,
  DT: 1 << 21,
  UPE: 1 << 22,
  NC: 1 << 23,
  OM: 1 << 24,
  DF: 1 << 25,
  DO: 1 << 26,
  DR: 1 << 27,
} as const
export type FlagName = keyof typeof FLAG
const FLAG_ENTRIES = Object.entries(FLAG) as [FlagName, number][]
const flagCache = new Map<number, string>()

/** "-" when no flag is set, else the names joined with commas. */
export function formatFlags(bits: number): string {
  if (bits === 0) return '-'
  let s = flagCache.get(bits)
  if (s === undefined) {
    s = FLAG_ENTRIES.filter(([, b]) => (bits & b) !== 0).map(([n]) => n).join(',')
    if (flagCache.size < 4096) flagCache.set(bits, s)
  }
  return s
}

/**
 * The workload (Deployment) name of a pod: `hello-v1-6d9f7c8b4-x2k4p` → `hello-v1`.
 * Kubernetes names ReplicaSet pods `<deployment>-<pod-template-hash>-<5 chars>`.
 */
export function workloadName(podName: string): string {
  const m = /^(.+)-[a-z0-9]{5,10}-[a-z0-9]{5}$/.exec(podName)
  if (m) return m[1]
  const s = /^(.+)-[a-z0-9]{5}$/.exec(podName)
  return s ? s[1] : podName
}

export function spiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`
}

/** Splits `host[:port]` (and `[v6]:port`); the port is undefined when absent or invalid. */
export function splitAuthority(authority: string): {host: string; port: number | undefined} {
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']')
    const host = authority.slice(1, end)
    const rest = authority.slice(end + 1)
    return {host, port: rest.startsWith(':') ? toPort(rest.slice(1)) : undefined}
  }
  const i = authority.lastIndexOf(':')
  if (i < 0) return {host: authority.toLowerCase(), port: undefined}
  return {host: authority.slice(0, i).toLowerCase(), port: toPort(authority.slice(i + 1))}
}

function toPort(s: string): number | undefined {
  const n = Number(s)
  return Number.isInteger(n) && n > 0 && n < 65536 ? n : undefined
}

export const IPV4 = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/

/** Envoy-style random 0 ≤ x < 1 source, injectable for tests. */
export type Random = () => number
