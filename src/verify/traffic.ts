// `mesh load`: drive traffic through the ingress and describe it — per-version share, req/s,
// error rate, p99 while it runs; status counts with Envoy response flags at the end (a 503 with
// `x-envoy-overloaded: true` is UO). Frames and summaries are rendered to strings here; the
// command decides where (and whether) to print them.
import {runLoad, type LatencySummary, type LoadSnapshot} from '../checks/load.js'
import type {Target} from '../cluster/target.js'
import {invalid} from '../lib/errors.js'
import {LAB} from '../mesh/lab.js'
import {ingressUnreachable, probeIngress, resolveIngress} from './common.js'

export const LOAD_DEFAULTS = {durationSec: 10, connections: 10, path: LAB.ingressPath} as const

export interface TrafficLoadOptions {
  /** seconds (default 10 when requests is not given) */
  durationSec?: number
  /** stop after this many requests instead */
  requests?: number
  connections?: number
  /** total requests per second; default as fast as possible */
  rate?: number
  /** default /hello */
  path?: string
  method?: string
  ingressUrl?: string
  /** called once with the URL, before the first request */
  onStart?: (url: string) => void
  onProgress?: (s: TrafficSnapshot) => void
  progressIntervalMs?: number
  signal?: AbortSignal
}

export interface TrafficSnapshot {
  elapsedSec: number
  /** responses received */
  requests: number
  requestsPerSec: number
  /** responses per version (from the helloworld body) */
  versions: Record<string, number>
  /** 5xx answers plus connection errors, over everything sent */
  errors: number
  errorRate: number
  latencyMs: LatencySummary
}

export interface StatusLine {
  status: string
  /** Envoy response flag (UO, UH, UF, UT, NR…) or '-' */
  flag: string
  count: number
}

export interface TrafficSummary extends TrafficSnapshot {
  url: string
  method: string
  connections: number
  rate: number | null
  durationSec: number
  stopReason: string
  /** status × flag counts, most frequent first; connection errors as status "error" */
  statuses: StatusLine[]
  /** counts per response flag (only flags that occurred) */
  flags: Record<string, number>
  /** latency buckets for a histogram */
  latencyHistogram: Array<{loMs: number; hiMs: number; count: number}>
  firstError?: string
}

/** The flag Envoy would log for a response, from the header when present, else from the local reply. */
export function responseFlag(status: number, body: string, headers: Record<string, string | string[]>): string {
  const h = headers['x-envoy-response-flags']
  if (h !== undefined) return (Array.isArray(h) ? h.join(',') : h) || '-'
  if (status === 503 && String(headers['x-envoy-overloaded'] ?? '') === 'true') return 'UO'
  if (status === 503 && /reset reason: overflow/.test(body)) return 'UO'
  if (status === 503 && /^no healthy upstream/.test(body)) return 'UH'
  if (status === 503 && /upstream connect error or disconnect\/reset before headers/.test(body)) return /connection failure|connection termination/.test(body) ? 'UF' : 'UC'
  if (status === 504 && /^upstream request timeout/.test(body)) return 'UT'
  if (status === 404 && body === '' && String(headers.server ?? '') === 'istio-envoy') return 'NR'
  if (/^fault filter abort/.test(body)) return 'FI'
  return '-'
}

export function validateLoadInput(o: Pick<TrafficLoadOptions, 'durationSec' | 'requests' | 'connections' | 'rate' | 'path'>): void {
  const pos = (v: number | undefined, f: string, int: boolean) => {
    if (v === undefined) return
    if (!Number.isFinite(v) || v <= 0 || (int && !Number.isInteger(v))) {
      throw invalid(`MESH_INVALID_${f.toUpperCase()}`, `--${f} must be a positive ${int ? 'whole number' : 'number'}, got ${v}`, `Give --${f} as a positive ${int ? 'whole number' : 'number'}.`, f)
    }
  }
  pos(o.durationSec, 'duration', false)
  pos(o.requests, 'requests', true)
  pos(o.connections, 'connections', true)
  pos(o.rate, 'rate', true)
  if (o.durationSec !== undefined && o.requests !== undefined) {
    throw invalid('MESH_LOAD_BOUNDS', 'give either --duration or --requests, not both', 'Bound the load by time (--duration 10) or by count (--requests 500).', 'duration')
  }
  if (o.durationSec !== undefined && o.durationSec > 3600) throw invalid('MESH_INVALID_DURATION', `--duration ${o.durationSec} is more than an hour`, 'Use at most 3600 seconds.', 'duration')
  if (o.path !== undefined && !o.path.startsWith('/')) throw invalid('MESH_CALL_PATH', `path "${o.path}" does not start with "/"`, 'Give a request path such as /hello.', 'path')
}

const ERROR_CLASS = (k: string) => k === '5xx' || k === 'error'

function snapshotOf(s: LoadSnapshot): TrafficSnapshot {
  const versions: Record<string, number> = {}
  for (const [k, v] of Object.entries(s.classes)) if (/^v\d+$/.test(k)) versions[k] = v
  const errors = Object.entries(s.classes)
    .filter(([k]) => ERROR_CLASS(k))
    .reduce((t, [, v]) => t + v, 0)
  const sent = s.completed + s.errors
  return {
    elapsedSec: s.elapsedSec,
    requests: s.completed,
    requestsPerSec: s.requestsPerSec,
    versions,
    errors,
    errorRate: sent ? errors / sent : 0,
    latencyMs: s.latencyMs,
  }
}

/** Drive the load and summarize it. Connection refused on the very first request → 69. */
export async function runTrafficLoad(target: Target, o: TrafficLoadOptions = {}): Promise<TrafficSummary> {
  validateLoadInput(o)
  const base = await resolveIngress(target, o.ingressUrl)
  const path: string = o.path ?? LOAD_DEFAULTS.path
  await probeIngress(base, path)
  const url = base + path
  o.onStart?.(url)
  const method = (o.method ?? 'GET').toUpperCase()
  const tally = new Map<string, number>()
  const flags: Record<string, number> = {}
  const connections = o.connections ?? LOAD_DEFAULTS.connections
  const r = await runLoad({
    url,
    method,
    connections,
    ...(o.requests !== undefined ? {amount: o.requests} : {durationSec: o.durationSec ?? LOAD_DEFAULTS.durationSec}),
    ...(o.rate !== undefined ? {rate: o.rate} : {}),
    classify: (status, body, headers) => {
      const flag = responseFlag(status, body, headers)
      const k = `${status}\u0000${flag}`
      tally.set(k, (tally.get(k) ?? 0) + 1)
      if (flag !== '-') flags[flag] = (flags[flag] ?? 0) + 1
      if (status >= 500) return '5xx'
      const v = /Hello version: (v\d+)/.exec(body)?.[1]
      if (v) return v
      return status >= 400 ? '4xx' : 'other'
    },
    ...(o.onProgress ? {onProgress: (s: LoadSnapshot) => o.onProgress!(snapshotOf(s)), progressIntervalMs: o.progressIntervalMs ?? 500} : {}),
    ...(o.signal ? {signal: o.signal} : {}),
  })
  if (r.completed === 0 && r.errors > 0) throw ingressUnreachable(base, r.firstError ?? 'every request failed to connect')
  const statuses: StatusLine[] = [...tally.entries()].map(([k, count]) => {
    const [status, flag] = k.split('\u0000') as [string, string]
    return {status, flag, count}
  })
  if (r.errors > 0) statuses.push({status: 'error', flag: '-', count: r.errors})
  statuses.sort((a, b) => b.count - a.count || a.status.localeCompare(b.status))
  return {
    ...snapshotOf(r),
    url,
    method,
    connections: Math.min(connections, o.requests ?? connections, o.rate ?? connections),
    rate: o.rate ?? null,
    durationSec: r.durationSec,
    stopReason: r.stopReason,
    statuses,
    flags,
    latencyHistogram: r.latencyHistogram,
    ...(r.firstError ? {firstError: r.firstError} : {}),
  }
}

// ------------------------------------------------------------------ rendering (strings only)

const BAR = 24

function bar(share: number, width = BAR): string {
  const full = Math.round(Math.max(0, Math.min(1, share)) * width)
  return '█'.repeat(full) + '░'.repeat(width - full)
}

const ms = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2))
const pct = (v: number) => `${(v * 100).toFixed(1)}%`

/** Version shares as bars; v1 and v2 always shown so an absent version reads as 0%. */
export function versionBars(versions: Record<string, number>, total: number): string[] {
  const names = [...new Set(['v1', 'v2', ...Object.keys(versions)])].sort()
  return names.map((v) => {
    const n = versions[v] ?? 0
    const share = total ? n / total : 0
    return `${v.padEnd(3)} ${bar(share)} ${pct(share).padStart(6)}  ${n}`
  })
}

/** The live view: one block redrawn in place on a terminal. */
export function renderLoadFrame(s: TrafficSnapshot, target: {url: string; limit: string}): string[] {
  return [
    `${target.url}  ${s.elapsedSec.toFixed(1)} s / ${target.limit}`,
    ...versionBars(s.versions, s.requests),
    `${s.requestsPerSec.toFixed(0)} req/s   errors ${pct(s.errorRate)}   p99 ${s.latencyMs.count ? `${ms(s.latencyMs.p99)} ms` : '–'}   ${s.requests} responses`,
  ]
}

/** One line per progress tick for logs (CI, pipes). */
export function renderLoadLine(s: TrafficSnapshot): string {
  const v = Object.entries(s.versions)
    .sort()
    .map(([k, n]) => `${k} ${pct(s.requests ? n / s.requests : 0)}`)
    .join(' ')
  return `${s.elapsedSec.toFixed(1)}s  ${s.requests} responses  ${s.requestsPerSec.toFixed(0)} req/s  ${v || 'no version answers'}  errors ${pct(s.errorRate)}  p99 ${s.latencyMs.count ? `${ms(s.latencyMs.p99)} ms` : '–'}`
}

/**
 * The summary printed at the end. Status lines read "200     43" / "503 UO  17": a flag appears
 * only when it occurred, so `UO` is in the output exactly when something overflowed.
 */
export function renderLoadSummary(s: TrafficSummary): string[] {
  const lines = [
    `${s.method} ${s.url}: ${s.requests} responses in ${s.durationSec.toFixed(2)} s (${s.requestsPerSec.toFixed(1)} req/s) over ${s.connections} connection${s.connections === 1 ? '' : 's'}${s.rate ? ` at ${s.rate} req/s` : ''}`,
    '',
    ...versionBars(s.versions, s.requests),
    '',
    'status  count',
    ...s.statuses.map((x) => `${(x.flag === '-' ? x.status : `${x.status} ${x.flag}`).padEnd(7)} ${x.count}`),
    '',
    `errors ${s.errors} of ${s.requests + (s.statuses.find((x) => x.status === 'error')?.count ?? 0)} (${pct(s.errorRate)})`,
  ]
  const l = s.latencyMs
  if (l.count) lines.push(`latency ms  p50 ${ms(l.p50)}  p90 ${ms(l.p90)}  p99 ${ms(l.p99)}  p99.9 ${ms(l.p999)}  max ${ms(l.max)}`)
  if (s.firstError) lines.push(`first connection error: ${s.firstError}`)
  return lines
}
