// Reading a proxy's own counters through its admin endpoint (Envoy's :15000): per-host outlier
// state from /clusters?format=json and counters from /stats/prometheus. The parsers accept both
// the embedded data plane's shape and Envoy's (host stats as a name/value list, socket_address).
import {EXIT, MeshError} from '../lib/errors.js'
import type {ProxyRef, Target} from '../cluster/target.js'

export interface PromSample {
  name: string
  labels: Record<string, string>
  value: number
}

/** Prometheus text exposition → samples (comments skipped; NaN/Inf kept as numbers). */
export function parsePrometheus(text: string): PromSample[] {
  const out: PromSample[] = []
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (!line || line.startsWith('#')) continue
    const brace = line.indexOf('{')
    const space = line.indexOf(' ')
    let name: string
    let rest: string
    const labels: Record<string, string> = {}
    if (brace >= 0 && (space < 0 || brace < space)) {
      name = line.slice(0, brace)
      let i = brace + 1
      // key="value" pairs; values may hold escaped quotes, commas and braces
      while (i < line.length && line[i] !== '}') {
        const eq = line.indexOf('=', i)
        if (eq < 0) break
        const key = line.slice(i, eq).trim().replace(/^,/, '').trim()
        let j = eq + 2 // skip ="
        let v = ''
        while (j < line.length && line[j] !== '"') {
          if (line[j] === '\\' && j + 1 < line.length) {
            const n = line[j + 1]
            v += n === 'n' ? '\n' : n
            j += 2
          } else v += line[j++]
        }
        labels[key] = v
        i = j + 1
        if (line[i] === ',') i++
      }
      rest = line.slice(line.indexOf('}', i) + 1).trim()
    } else {
      name = line.slice(0, space)
      rest = line.slice(space + 1).trim()
    }
    const value = Number(rest.split(/\s+/)[0])
    if (name) out.push({name, labels, value})
  }
  return out
}

/** Sum of the samples of one metric whose labels include `match`. */
export function sumMetric(samples: readonly PromSample[], name: string, match: Record<string, string> = {}): number {
  let t = 0
  for (const s of samples) {
    if (s.name !== name) continue
    if (Object.entries(match).every(([k, v]) => s.labels[k] === v)) t += s.value
  }
  return t
}

export interface HostView {
  /** ip:port */
  address: string
  /** `<pod>.<namespace>` when the proxy knows it (embedded data plane) */
  pod?: string
  ejected: boolean
  /** epoch ms; embedded data plane only */
  lastEjectedAt?: number
  ejectedUntil?: number
  consecutive5xx?: number
  /** times this host was ejected */
  ejections?: number
  rqTotal: number
  rqActive?: number
}

export interface ClusterView {
  name: string
  stats: Record<string, number>
  hosts: HostView[]
  outlierDetection?: Record<string, unknown> | null
}

type Json = Record<string, unknown>
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : undefined)

function hostOf(h: Json): HostView {
  // Envoy: {address: {socket_address: {address, port_value}}, stats: [{name, value}], health_status: {failed_outlier_check}}
  const statList = Array.isArray(h.stats) ? (h.stats as Array<{name?: string; value?: unknown}>) : []
  const stat = (n: string) => num(statList.find((s) => s.name === n)?.value)
  const sock = (h.address as {socket_address?: {address?: string; port_value?: number}} | undefined)?.socket_address
  const address = typeof h.address === 'string' ? h.address : sock ? `${sock.address}:${sock.port_value}` : '?'
  const health = (h.health_status ?? {}) as Json
  return {
    address,
    ...(typeof h.pod === 'string' ? {pod: h.pod} : {}),
    ejected: h.ejected === true || health.failed_outlier_check === true,
    ...(num(h.lastEjectedAt) !== undefined ? {lastEjectedAt: num(h.lastEjectedAt)} : {}),
    ...(num(h.ejectedUntil) !== undefined ? {ejectedUntil: num(h.ejectedUntil)} : {}),
    ...(num(h.consecutive5xx) !== undefined ? {consecutive5xx: num(h.consecutive5xx)} : {}),
    ...(num(h.ejections) !== undefined ? {ejections: num(h.ejections)} : {}),
    rqTotal: num(h.rqTotal) ?? stat('rq_total') ?? 0,
    ...(num(h.rqActive) !== undefined || stat('rq_active') !== undefined ? {rqActive: num(h.rqActive) ?? stat('rq_active')} : {}),
  }
}

/** /clusters?format=json → clusters with per-host state. */
export function parseClusters(body: unknown): ClusterView[] {
  const list = ((body as {cluster_statuses?: unknown[]} | undefined)?.cluster_statuses ?? []) as Json[]
  return list.map((c) => {
    const stats: Record<string, number> = {}
    const s = c.stats
    if (s && typeof s === 'object' && !Array.isArray(s)) for (const [k, v] of Object.entries(s as Json)) if (num(v) !== undefined) stats[k] = num(v)!
    return {
      name: String(c.name ?? ''),
      stats,
      hosts: ((c.host_statuses ?? []) as Json[]).map(hostOf),
      ...(c.outlier_detection !== undefined ? {outlierDetection: c.outlier_detection as Json | null} : {}),
    }
  })
}

/** Envoy's name for the cluster of one subset: outbound|5000|v1|hello.mesh-lab.svc.cluster.local */
export const subsetClusterName = (service: string, namespace: string, port: number, subset: string): string =>
  `outbound|${port}|${subset}|${service}.${namespace}.svc.cluster.local`

/** A proxy's admin endpoint. */
export class ProxyAdmin {
  constructor(
    readonly baseUrl: string,
    private readonly timeoutMs = 5000,
  ) {}

  private async get(path: string): Promise<string> {
    let res: Response
    try {
      res = await fetch(this.baseUrl.replace(/\/$/, '') + path, {signal: AbortSignal.timeout(this.timeoutMs)})
    } catch (e) {
      throw new MeshError('MESH_PROXY_ADMIN_UNREACHABLE', `the proxy admin endpoint ${this.baseUrl} did not answer ${path}: ${(e as Error).message}`, {
        suggestion: 'Check the proxy is running (mesh lab status).',
        exit: EXIT.unavailable,
        cause: e,
      })
    }
    const text = await res.text()
    if (!res.ok) throw new MeshError('MESH_PROXY_ADMIN_UNREACHABLE', `${this.baseUrl}${path} answered ${res.status}`, {suggestion: 'Check the proxy is running (mesh lab status).', exit: EXIT.unavailable})
    return text
  }

  async clusters(): Promise<ClusterView[]> {
    return parseClusters(JSON.parse(await this.get('/clusters?format=json')))
  }

  async metrics(): Promise<PromSample[]> {
    return parsePrometheus(await this.get('/stats/prometheus'))
  }
}

/**
 * The admin endpoint of a proxy when the target can reach it. The reason is for evidence:
 * a check that cannot read counters says so instead of passing silently.
 */
export async function proxyAdmin(target: Target, proxy: ProxyRef): Promise<{admin?: ProxyAdmin; unavailable?: string}> {
  if (typeof target.proxyAdminUrl !== 'function') {
    return {unavailable: `this ${target.kind} target cannot reach proxy admin endpoints`}
  }
  try {
    const url = await target.proxyAdminUrl(proxy)
    if (!url) return {unavailable: `no admin endpoint known for ${proxy === 'gateway' ? 'the ingress gateway' : `${proxy.namespace}/${proxy.pod}`}`}
    return {admin: new ProxyAdmin(url)}
  } catch (e) {
    return {unavailable: (e as Error).message}
  }
}
