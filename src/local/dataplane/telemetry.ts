// Per-proxy telemetry (TM-1..TM-4): Istio standard metrics with the TM-2 labels, Envoy-style
// cluster stats, and access log lines in Istio's default text (or JSON) format. Each proxy has
// its own prom-client Registry; label children are cached so the hot path does no label hashing.
import type {Writable} from 'node:stream'
import {Counter, Gauge, Registry} from 'prom-client'
import type {ClusterStats} from './cluster.js'
import {formatFlags} from './util.js'

export interface WorkloadTags {
  workload: string
  namespace: string
  principal: string
  app: string
  version: string
}

export interface ServiceTags {
  host: string
  name: string
  namespace: string
}

const tagIds = new WeakMap<object, number>()
let nextTagId = 1
/** A stable small id per tags object, for the series cache key. */
function tagId(o: object): number {
  let id = tagIds.get(o)
  if (id === undefined) {
    id = nextTagId++
    tagIds.set(o, id)
  }
  return id
}

export const UNKNOWN_WORKLOAD: WorkloadTags = Object.freeze({workload: 'unknown', namespace: 'unknown', principal: 'unknown', app: 'unknown', version: 'unknown'})
export const UNKNOWN_SERVICE: ServiceTags = Object.freeze({host: 'unknown', name: 'unknown', namespace: 'unknown'})

export type Reporter = 'source' | 'destination'
export type SecurityPolicyLabel = 'mutual_tls' | 'none' | 'unknown'

export interface RequestRecord {
  reporter: Reporter
  source: WorkloadTags
  destination: WorkloadTags
  service: ServiceTags
  code: number
  flags: number
  security: SecurityPolicyLabel
  durationMs: number
  requestBytes: number
  responseBytes: number
}

const SECURITY_CODE: Record<SecurityPolicyLabel, number> = {unknown: 0, none: 1, mutual_tls: 2}

/** TM-2 label names, in the order Istio lists them. */
export const TM2_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'request_protocol',
  'response_code',
  'response_flags',
  'connection_security_policy',
] as const

/** Istio's default buckets. */
const DURATION_BUCKETS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000]
const BYTES_BUCKETS = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000]

/** One label combination's accumulated values (written on the hot path, read at scrape time). */
interface Series {
  labels: Record<string, string>
  count: number
  duration: HistogramData
  reqBytes: HistogramData
  respBytes: HistogramData
}

interface HistogramData {
  /** non-cumulative counts per bucket; the last slot is +Inf */
  counts: Float64Array
  sum: number
}

const newHistogram = (bounds: number[]): HistogramData => ({counts: new Float64Array(bounds.length + 1), sum: 0})

function observe(h: HistogramData, bounds: number[], v: number): void {
  let i = 0
  while (i < bounds.length && v > bounds[i]) i++
  h.counts[i]++
  h.sum += v
}

/**
 * A prom-client collector over our own accumulators. prom-client's labelled children validate and
 * hash all 18 labels on every observation; here the hot path adds to numbers and prom-client's
 * registry formats the exposition at scrape time (ADR-0044).
 */
function seriesMetric(name: string, help: string, series: () => Iterable<Series>, kind: 'counter' | {hist: (s: Series) => HistogramData; bounds: number[]}): object {
  return {
    name,
    help,
    type: kind === 'counter' ? 'counter' : 'histogram',
    aggregator: 'sum',
    async get() {
      const values: {labels: Record<string, string | number>; value: number; metricName?: string}[] = []
      for (const s of series()) {
        if (kind === 'counter') {
          values.push({labels: s.labels, value: s.count})
          continue
        }
        const h = kind.hist(s)
        let acc = 0
        for (let i = 0; i < kind.bounds.length; i++) {
          acc += h.counts[i]
          values.push({labels: {...s.labels, le: kind.bounds[i]}, value: acc, metricName: `${name}_bucket`})
        }
        acc += h.counts[kind.bounds.length]
        values.push({labels: {...s.labels, le: '+Inf'}, value: acc, metricName: `${name}_bucket`})
        values.push({labels: s.labels, value: h.sum, metricName: `${name}_sum`})
        values.push({labels: s.labels, value: acc, metricName: `${name}_count`})
      }
      return {name, help, type: kind === 'counter' ? 'counter' : 'histogram', aggregator: 'sum', values}
    },
    reset() {},
  }
}

export interface ClusterStatsSource {
  name: string
  stats: ClusterStats
  membershipTotal: number
  membershipHealthy: number
}

const CLUSTER_COUNTERS: (keyof ClusterStats)[] = [
  'upstream_rq_total',
  'upstream_rq_completed',
  'upstream_rq_2xx',
  'upstream_rq_3xx',
  'upstream_rq_4xx',
  'upstream_rq_5xx',
  'upstream_rq_pending_total',
  'upstream_rq_pending_overflow',
  'upstream_rq_retry',
  'upstream_rq_retry_success',
  'upstream_rq_retry_overflow',
  'upstream_rq_retry_limit_exceeded',
  'upstream_rq_timeout',
  'upstream_rq_per_try_timeout',
  'upstream_cx_total',
  'upstream_cx_connect_fail',
  'upstream_cx_connect_timeout',
  'upstream_cx_overflow',
  'upstream_cx_destroy',
  'upstream_cx_none_healthy',
]
const OUTLIER_COUNTERS: (keyof ClusterStats)[] = [
  'ejections_enforced_total',
  'ejections_overflow',
  'ejections_enforced_consecutive_5xx',
  'ejections_detected_consecutive_5xx',
  'ejections_enforced_consecutive_gateway_failure',
  'ejections_detected_consecutive_gateway_failure',
  'ejections_total',
]
const CLUSTER_GAUGES: (keyof ClusterStats)[] = ['upstream_cx_active', 'upstream_rq_active', 'upstream_rq_pending_active']

export class ProxyTelemetry {
  readonly registry = new Registry()
  private series = new Map<string, Series>()

  constructor(clusters: () => Iterable<ClusterStatsSource>) {
    const registers = [this.registry]
    const all = () => this.series.values()
    const reg = (m: object) => this.registry.registerMetric(m as Parameters<Registry['registerMetric']>[0])
    reg(seriesMetric('istio_requests_total', 'Requests handled by this proxy', all, 'counter'))
    reg(seriesMetric('istio_request_duration_milliseconds', 'Request duration in milliseconds', all, {hist: (s) => s.duration, bounds: DURATION_BUCKETS}))
    reg(seriesMetric('istio_request_bytes', 'Request body sizes in bytes', all, {hist: (s) => s.reqBytes, bounds: BYTES_BUCKETS}))
    reg(seriesMetric('istio_response_bytes', 'Response body sizes in bytes', all, {hist: (s) => s.respBytes, bounds: BYTES_BUCKETS}))

    for (const stat of CLUSTER_COUNTERS) {
      new Counter({
        name: `envoy_cluster_${stat}`,
        help: `Envoy cluster stat ${stat}`,
        labelNames: ['cluster_name'],
        registers,
        collect() {
          this.reset()
          for (const c of clusters()) this.inc({cluster_name: c.name}, c.stats[stat])
        },
      })
    }
    for (const stat of OUTLIER_COUNTERS) {
      new Counter({
        name: `envoy_cluster_outlier_detection_${stat}`,
        help: `Envoy outlier detection stat ${stat}`,
        labelNames: ['cluster_name'],
        registers,
        collect() {
          this.reset()
          for (const c of clusters()) this.inc({cluster_name: c.name}, c.stats[stat])
        },
      })
    }
    for (const stat of CLUSTER_GAUGES) {
      new Gauge({
        name: `envoy_cluster_${stat}`,
        help: `Envoy cluster gauge ${stat}`,
        labelNames: ['cluster_name'],
        registers,
        collect() {
          this.reset()
          for (const c of clusters()) this.set({cluster_name: c.name}, c.stats[stat])
        },
      })
    }
    new Gauge({
      name: 'envoy_cluster_outlier_detection_ejections_active',
      help: 'Hosts currently ejected by outlier detection',
      labelNames: ['cluster_name'],
      registers,
      collect() {
        this.reset()
        for (const c of clusters()) this.set({cluster_name: c.name}, c.stats.ejections_active)
      },
    })
    new Gauge({
      name: 'envoy_cluster_membership_total',
      help: 'Hosts in the cluster',
      labelNames: ['cluster_name'],
      registers,
      collect() {
        this.reset()
        for (const c of clusters()) this.set({cluster_name: c.name}, c.membershipTotal)
      },
    })
    new Gauge({
      name: 'envoy_cluster_membership_healthy',
      help: 'Hosts in the cluster not ejected',
      labelNames: ['cluster_name'],
      registers,
      collect() {
        this.reset()
        for (const c of clusters()) this.set({cluster_name: c.name}, c.membershipHealthy)
      },
    })
  }

  /** series by source tags → destination tags → service tags → (code, flags, reporter, security): identity and number keys, no string building */
  private index = new Map<WorkloadTags, Map<WorkloadTags, Map<ServiceTags, Map<number, Series>>>>()

  record(r: RequestRecord): void {
    let a = this.index.get(r.source)
    if (a === undefined) this.index.set(r.source, (a = new Map()))
    let b = a.get(r.destination)
    if (b === undefined) a.set(r.destination, (b = new Map()))
    let c = b.get(r.service)
    if (c === undefined) b.set(r.service, (c = new Map()))
    const k = ((r.code * 2 + (r.reporter === 'source' ? 0 : 1)) * 4 + SECURITY_CODE[r.security]) * 2 ** 28 + r.flags
    let s = c.get(k)
    if (s === undefined) {
      s = this.newSeries(r, `${r.reporter}|${tagId(r.source)}|${tagId(r.destination)}|${tagId(r.service)}|${r.code}|${r.flags}|${r.security}`)
      c.set(k, s)
    }
    s.count++
    observe(s.duration, DURATION_BUCKETS, r.durationMs)
    observe(s.reqBytes, BYTES_BUCKETS, r.requestBytes)
    observe(s.respBytes, BYTES_BUCKETS, r.responseBytes)
  }

  private newSeries(r: RequestRecord, key: string): Series {
    let s = this.series.get(key)
    if (s === undefined) {
      const labels = {
        reporter: r.reporter,
        source_workload: r.source.workload,
        source_workload_namespace: r.source.namespace,
        source_principal: r.source.principal,
        source_app: r.source.app,
        source_version: r.source.version,
        destination_workload: r.destination.workload,
        destination_workload_namespace: r.destination.namespace,
        destination_principal: r.destination.principal,
        destination_app: r.destination.app,
        destination_version: r.destination.version,
        destination_service: r.service.host,
        destination_service_name: r.service.name,
        destination_service_namespace: r.service.namespace,
        request_protocol: 'http',
        response_code: String(r.code),
        response_flags: formatFlags(r.flags),
        connection_security_policy: r.security,
      }
      s = {labels, count: 0, duration: newHistogram(DURATION_BUCKETS), reqBytes: newHistogram(BYTES_BUCKETS), respBytes: newHistogram(BYTES_BUCKETS)}
      this.series.set(key, s)
    }
    return s
  }

  metrics(): Promise<string> {
    return this.registry.metrics()
  }
}

// ---------------------------------------------------------------------------------------------
// Access log (TM-4)

export interface AccessLogEntry {
  startTime: number
  method: string
  path: string
  protocol: string
  code: number
  flags: number
  details: string
  upstreamTransportFailureReason?: string
  bytesReceived: number
  bytesSent: number
  durationMs: number
  upstreamServiceTimeMs?: number
  forwardedFor?: string
  userAgent?: string
  requestId?: string
  authority?: string
  upstreamHost?: string
  upstreamCluster?: string
  upstreamLocalAddress?: string
  downstreamLocalAddress: string
  downstreamRemoteAddress: string
  routeName?: string
}

const dash = (v: string | number | undefined): string => (v === undefined || v === '' ? '-' : String(v))

/** Istio's default text format (meshConfig.accessLogFormat unset). */
export function formatAccessLogText(e: AccessLogEntry): string {
  return (
    `[${new Date(e.startTime).toISOString()}] "${e.method} ${e.path} ${e.protocol}" ${e.code} ${formatFlags(e.flags)} ${dash(e.details)} - "${dash(e.upstreamTransportFailureReason)}" ` +
    `${e.bytesReceived} ${e.bytesSent} ${Math.round(e.durationMs)} ${e.upstreamServiceTimeMs === undefined ? '-' : Math.round(e.upstreamServiceTimeMs)} ` +
    `"${dash(e.forwardedFor)}" "${dash(e.userAgent)}" "${dash(e.requestId)}" "${dash(e.authority)}" "${dash(e.upstreamHost)}" ${dash(e.upstreamCluster)} ` +
    `${dash(e.upstreamLocalAddress)} ${e.downstreamLocalAddress} ${e.downstreamRemoteAddress} - ${dash(e.routeName)}\n`
  )
}

/** Istio's JSON access log keys. */
export function formatAccessLogJson(e: AccessLogEntry): string {
  const nul = (v: string | number | undefined) => (v === undefined || v === '' ? null : v)
  return (
    JSON.stringify({
      start_time: new Date(e.startTime).toISOString(),
      method: e.method,
      path: e.path,
      protocol: e.protocol,
      response_code: e.code,
      response_flags: formatFlags(e.flags),
      response_code_details: nul(e.details),
      connection_termination_details: null,
      upstream_transport_failure_reason: nul(e.upstreamTransportFailureReason),
      bytes_received: e.bytesReceived,
      bytes_sent: e.bytesSent,
      duration: Math.round(e.durationMs),
      upstream_service_time: e.upstreamServiceTimeMs === undefined ? null : String(Math.round(e.upstreamServiceTimeMs)),
      x_forwarded_for: nul(e.forwardedFor),
      user_agent: nul(e.userAgent),
      request_id: nul(e.requestId),
      authority: nul(e.authority),
      upstream_host: nul(e.upstreamHost),
      upstream_cluster: nul(e.upstreamCluster),
      upstream_local_address: nul(e.upstreamLocalAddress),
      downstream_local_address: e.downstreamLocalAddress,
      downstream_remote_address: e.downstreamRemoteAddress,
      requested_server_name: null,
      route_name: nul(e.routeName),
    }) + '\n'
  )
}

export interface AccessLogOptions {
  stream: Writable
  format?: 'text' | 'json'
  /**
   * Lines are held and written together at most this often (Envoy's file access log does the
   * same, `file_flush_interval`, 1 s there). 0 writes every line at once. One write per request
   * to a file costs a thread-pool round trip; at thousands of requests a second that was a
   * large share of the gateway's CPU.
   */
  flushIntervalMs?: number
}

/** Bytes held before a flush that does not wait for the interval (Envoy: 64 KiB). */
const ACCESS_LOG_FLUSH_BYTES = 64 * 1024

/** The gateway's and sidecars' log files: short enough that `tail -f` keeps up with a walkthrough. */
export const ACCESS_LOG_FLUSH_MS = 100

export class AccessLogger {
  private fmt: (e: AccessLogEntry) => string
  private held: string[] = []
  private heldBytes = 0
  private timer: NodeJS.Timeout | undefined
  constructor(private opts: AccessLogOptions) {
    this.fmt = opts.format === 'json' ? formatAccessLogJson : formatAccessLogText
  }

  log(e: AccessLogEntry): void {
    const line = this.fmt(e)
    const interval = this.opts.flushIntervalMs ?? 0
    if (interval <= 0) {
      this.opts.stream.write(line)
      return
    }
    this.held.push(line)
    this.heldBytes += line.length
    if (this.heldBytes >= ACCESS_LOG_FLUSH_BYTES) this.flush()
    else if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), interval)
      this.timer.unref()
    }
  }

  /** Writes what is held now (on shutdown, and when the interval or the size limit is reached). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    if (this.held.length === 0) return
    const text = this.held.join('')
    this.held = []
    this.heldBytes = 0
    this.opts.stream.write(text)
  }
}
