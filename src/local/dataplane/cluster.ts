// Upstream clusters of one client proxy: a cluster is service + port + subset with its own
// endpoints, load balancer, circuit breakers, connection pools and outlier detector (DR-1..DR-9).
// Clusters survive config pushes: a push that only changes endpoints keeps the outlier state
// of hosts that stay; a push that changes the cluster's policy replaces it (as Envoy's CDS
// does), and the old one drains.
import type tls from 'node:tls'
import type {Endpoint, MeshSnapshot, ServiceEntry} from './snapshot.js'
import {clusterPolicy, findDestinationRule, subsetOf, type ClusterPolicy, DEFAULT_POOL, type PoolLimits} from './destination-policy.js'
import {createLoadBalancer, type LbHost, type LoadBalancer} from './lb.js'
import {emptyOutlierStats, OutlierDetector, type Clock, type HostMonitor, type OutlierStats, toEpochMs} from './outlier.js'
import {emptyPoolStats, HostPool, ResourceManager, type PoolStats} from './pool.js'
import {clusterName, serviceFqdn} from './routing.js'
import type {UpstreamClusterInfo} from './security-provider.js'
import {UpstreamConnection} from './upstream.js'
import {labelsMatch, type Random} from './util.js'

export interface RequestStats {
  upstream_rq_retry: number
  upstream_rq_retry_success: number
  upstream_rq_retry_overflow: number
  upstream_rq_retry_limit_exceeded: number
  upstream_rq_timeout: number
  upstream_rq_per_try_timeout: number
  upstream_rq_completed: number
  upstream_rq_2xx: number
  upstream_rq_3xx: number
  upstream_rq_4xx: number
  upstream_rq_5xx: number
  upstream_cx_none_healthy: number
}

/** Envoy cluster stats (cluster.<name>.*), kept by name so they outlive cluster rebuilds. */
export type ClusterStats = PoolStats & OutlierStats & RequestStats

export const emptyClusterStats = (): ClusterStats => ({
  ...emptyPoolStats(),
  ...emptyOutlierStats(),
  upstream_rq_retry: 0,
  upstream_rq_retry_success: 0,
  upstream_rq_retry_overflow: 0,
  upstream_rq_retry_limit_exceeded: 0,
  upstream_rq_timeout: 0,
  upstream_rq_per_try_timeout: 0,
  upstream_rq_completed: 0,
  upstream_rq_2xx: 0,
  upstream_rq_3xx: 0,
  upstream_rq_4xx: 0,
  upstream_rq_5xx: 0,
  upstream_cx_none_healthy: 0,
})

export interface UpstreamHost extends LbHost {
  /** `address:port` */
  key: string
  address: string
  port: number
  endpoint: Endpoint
  active: number
  rqTotal: number
  monitor: HostMonitor | undefined
  pool: HostPool<UpstreamConnection> | undefined
  /** transportKey() of the upstream TLS choice the pool was opened with */
  poolTransport?: string
  /** the newest TLS session the host handed out, and the client context it belongs to */
  tlsSession?: {data: Buffer; context: tls.SecureContext | undefined}
  /** telemetry labels cached by the proxy */
  tags?: unknown
}

export interface ClusterSpec {
  name: string
  kind: 'outbound' | 'inbound' | 'passthrough'
  /** service FQDN ('' for inbound and passthrough) */
  host: string
  service?: ServiceEntry
  port: number
  subset?: string
  policy: ClusterPolicy
  endpoints: {endpoint: Endpoint; address: string; port: number}[]
}

export interface ClusterEnv {
  clock: Clock
  random: Random
  /** local address for upstream sockets */
  localAddress?: string
  upstreamTls?: (endpoint: Endpoint, cluster: UpstreamClusterInfo) => tls.ConnectionOptions | undefined
  stats(name: string): ClusterStats
}

export interface HostStatus {
  address: string
  pod: string
  ejected: boolean
  /** epoch ms the current ejection ends at the earliest (return happens on the next interval tick) */
  ejectedUntil: number | null
  lastEjectedAt: number | null
  consecutive5xx: number
  consecutiveGatewayErrors: number
  ejections: number
  rqTotal: number
  rqActive: number
  cxActive: number
}

export class Cluster {
  readonly name: string
  hosts: UpstreamHost[] = []
  /** hosts the load balancer may pick right now (healthy, or all of them in panic) */
  candidates: UpstreamHost[] = []
  panic = false
  readonly rm: ResourceManager
  readonly stats: ClusterStats
  readonly outlier: OutlierDetector | undefined
  readonly lb: LoadBalancer<UpstreamHost>
  private byKey = new Map<string, UpstreamHost>()
  private drainingPools: HostPool<UpstreamConnection>[] = []
  readonly info: UpstreamClusterInfo
  closed = false

  constructor(public spec: ClusterSpec, private env: ClusterEnv) {
    this.name = spec.name
    this.stats = env.stats(spec.name)
    this.rm = new ResourceManager(spec.policy.pool)
    this.lb = createLoadBalancer(spec.policy.lb, env.random)
    this.info = {name: spec.name, host: spec.host, port: spec.port, subset: spec.subset, tls: spec.policy.tls}
    if (spec.policy.outlier) {
      this.outlier = new OutlierDetector(spec.policy.outlier, env.clock, this.stats)
      this.stats.ejections_active = 0
      this.outlier.onChange(() => this.refresh())
      this.outlier.start()
    }
    this.updateEndpoints(spec)
  }

  get policy(): ClusterPolicy {
    return this.spec.policy
  }

  /** EDS update: same policy, new endpoint list. */
  updateEndpoints(spec: ClusterSpec): void {
    this.spec = spec
    const next: UpstreamHost[] = []
    const seen = new Set<string>()
    for (const e of spec.endpoints) {
      const key = `${e.address}:${e.port}`
      if (seen.has(key)) continue
      seen.add(key)
      let h = this.byKey.get(key)
      if (h) h.endpoint = e.endpoint
      else h = {key, address: e.address, port: e.port, endpoint: e.endpoint, active: 0, rqTotal: 0, monitor: undefined, pool: undefined}
      next.push(h)
    }
    for (const [key, h] of this.byKey) {
      if (seen.has(key)) continue
      if (h.pool) this.retire(h.pool)
      this.byKey.delete(key)
    }
    for (const h of next) this.byKey.set(h.key, h)
    this.hosts = next
    if (this.outlier) {
      this.outlier.setHosts(seen)
      for (const h of next) h.monitor = this.outlier.monitor(h.key)
    }
    this.refresh()
  }

  /** DR-9: healthy hosts, or every host when the healthy share is below the panic threshold. */
  private refresh(): void {
    const healthy = this.hosts.filter((h) => !h.monitor?.ejected)
    const threshold = this.outlier ? this.outlier.config.panicThresholdPercent : 50
    const pct = this.hosts.length === 0 ? 0 : (100 * healthy.length) / this.hosts.length
    this.panic = this.hosts.length > 0 && pct < threshold
    this.candidates = this.panic ? this.hosts.slice() : healthy
  }

  /**
   * Picks a host (undefined = no healthy upstream). `avoid` implements the previous_hosts retry
   * predicate: Envoy re-picks up to 5 times, then takes what it got.
   */
  pick(hash: number | undefined, avoid?: ReadonlySet<UpstreamHost>): UpstreamHost | undefined {
    const c = this.candidates
    let h = this.lb.pick(c, hash)
    if (avoid && avoid.size > 0 && h !== undefined) {
      for (let i = 0; i < 5 && avoid.has(h!); i++) h = this.lb.pick(c, hash)
    }
    return h
  }

  poolFor(h: UpstreamHost): HostPool<UpstreamConnection> {
    if (h.pool) return h.pool
    const limits: PoolLimits = this.spec.policy.pool
    const env = this.env
    const info = this.info
    h.poolTransport = transportKey(env.upstreamTls?.(h.endpoint, info))
    const pool: HostPool<UpstreamConnection> = new HostPool<UpstreamConnection>(this.rm, this.stats, (p) => {
      const t = env.upstreamTls?.(h.endpoint, info)
      // Resume the host's last TLS session (as Envoy's upstream TLS session cache does): it skips
      // the certificate exchange and signatures, which are most of a new mTLS connection's cost.
      // Only with the same client context, so a rotated certificate gets a full handshake.
      const s = h.tlsSession
      const resume = t && s && s.context === t.secureContext ? {...t, session: s.data} : t
      return new UpstreamConnection(p, {
        address: h.address,
        port: h.port,
        localAddress: env.localAddress,
        connectTimeoutMs: limits.connectTimeoutMs,
        idleTimeoutMs: limits.idleTimeoutMs,
        tls: resume,
        onSession: t ? (data) => (h.tlsSession = {data, context: t.secureContext}) : undefined,
      })
    })
    h.pool = pool
    return pool
  }

  /**
   * After a config push: a host whose upstream transport changed (auto mTLS now plaintext because
   * the server port became DISABLE, a DestinationRule `tls` mode change) gets a fresh pool; the
   * old one drains (idle connections close, in-flight requests finish), as Envoy drains the
   * connection pools of an updated cluster. Certificate rotation alone keeps the pool.
   */
  revalidateTransport(): void {
    for (const h of this.hosts) {
      if (!h.pool || h.poolTransport === undefined) continue
      if (transportKey(this.env.upstreamTls?.(h.endpoint, this.info)) === h.poolTransport) continue
      this.retire(h.pool)
      h.pool = undefined
      h.poolTransport = undefined
      h.tlsSession = undefined
    }
  }

  private retire(pool: HostPool<UpstreamConnection>): void {
    pool.drain()
    this.drainingPools = this.drainingPools.filter((p) => !p.isIdle)
    if (!pool.isIdle) this.drainingPools.push(pool)
  }

  /** The cluster left the config (or was replaced): stop the timer, drain every pool. */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.outlier?.stop()
    if (this.outlier) this.stats.ejections_active = 0
    for (const h of this.hosts) if (h.pool) this.retire(h.pool)
  }

  /** Hard stop: destroy every connection (proxy shutdown). */
  destroy(): void {
    this.close()
    for (const h of this.hosts) {
      const p = h.pool
      if (!p) continue
      for (const c of [...p.ready, ...p.busy, ...p.connecting]) c.destroy()
    }
    for (const p of this.drainingPools) for (const c of [...p.ready, ...p.busy, ...p.connecting]) c.destroy()
  }

  hostStatuses(): HostStatus[] {
    return this.hosts.map((h) => {
      const m = h.monitor
      const until = m && this.outlier ? this.outlier.ejectedUntil(m) : undefined
      return {
        address: h.key,
        pod: `${h.endpoint.podName}.${h.endpoint.namespace}`,
        ejected: m?.ejected ?? false,
        ejectedUntil: until === undefined ? null : Math.round(toEpochMs(until)),
        lastEjectedAt: m?.lastEjection === undefined ? null : toEpochMs(m.lastEjection),
        consecutive5xx: m?.consecutive5xx ?? 0,
        consecutiveGatewayErrors: m?.consecutiveGateway ?? 0,
        ejections: m?.numEjections ?? 0,
        rqTotal: h.rqTotal,
        rqActive: h.active,
        cxActive: h.pool?.connectionCount ?? 0,
      }
    })
  }
}

/** Every outbound cluster a proxy in `proxyNamespace` has: each service port, plus one per DR subset. */
export function outboundClusterSpecs(snapshot: MeshSnapshot, proxyNamespace: string): ClusterSpec[] {
  const out: ClusterSpec[] = []
  for (const svc of snapshot.services) {
    const fqdn = serviceFqdn(svc)
    const dr = findDestinationRule(snapshot, fqdn, proxyNamespace)
    const selected = Object.keys(svc.selector ?? {}).length === 0 ? [] : snapshot.endpoints.filter((e) => e.namespace === svc.namespace && e.ready && labelsMatch(svc.selector, e.labels))
    const subsets = ((dr?.spec?.subsets ?? []) as any[]).map((s) => String(s?.name ?? '')).filter((s) => s !== '')
    for (const p of svc.ports) {
      if (p.protocol && p.protocol.toUpperCase() !== 'TCP') continue
      const mk = (subset: string | undefined): ClusterSpec => {
        const labels = subset ? subsetOf(dr, subset)?.labels : undefined
        const eps = labels ? selected.filter((e) => labelsMatch(labels, e.labels)) : selected
        return {
          name: clusterName(p.port, subset, fqdn),
          kind: 'outbound',
          host: fqdn,
          service: svc,
          port: p.port,
          subset,
          policy: clusterPolicy(dr, p.port, subset),
          endpoints: eps.map((endpoint) => ({endpoint, address: endpoint.address, port: p.targetPort})),
        }
      }
      out.push(mk(undefined))
      for (const s of subsets) out.push(mk(s))
    }
  }
  return out
}

/** What identifies an upstream transport apart from key material (which rotates under open connections). */
export function transportKey(o: tls.ConnectionOptions | undefined): string {
  if (!o) return 'plaintext'
  return ['tls', o.servername ?? '', (o.ALPNProtocols as string[] | undefined)?.join(',') ?? '', o.cert || o.secureContext ? 'client-cert' : '', o.rejectUnauthorized === false ? 'insecure' : ''].join('|')
}

/** Policy of clusters that no DestinationRule shapes (inbound, passthrough). */
export const PLAIN_POLICY: ClusterPolicy = {lb: {kind: 'ROUND_ROBIN'}, pool: DEFAULT_POOL, key: 'plain'}

export class ClusterManager {
  readonly clusters = new Map<string, Cluster>()
  private statsByName = new Map<string, ClusterStats>()
  readonly env: ClusterEnv

  constructor(env: Omit<ClusterEnv, 'stats'>) {
    this.env = {...env, stats: (name) => this.statsFor(name)}
  }

  statsFor(name: string): ClusterStats {
    let s = this.statsByName.get(name)
    if (!s) {
      s = emptyClusterStats()
      this.statsByName.set(name, s)
    }
    return s
  }

  allStats(): Map<string, ClusterStats> {
    return this.statsByName
  }

  get(name: string): Cluster | undefined {
    return this.clusters.get(name)
  }

  /** Applies a full set of cluster specs (CDS + EDS); returns names added/replaced/removed. */
  update(specs: ClusterSpec[], keep: (name: string) => boolean = () => false): {added: string[]; replaced: string[]; removed: string[]} {
    const res = {added: [] as string[], replaced: [] as string[], removed: [] as string[]}
    const names = new Set<string>()
    for (const spec of specs) {
      names.add(spec.name)
      const cur = this.clusters.get(spec.name)
      if (cur && cur.policy.key === spec.policy.key) {
        cur.updateEndpoints(spec)
        cur.revalidateTransport()
        continue
      }
      if (cur) {
        cur.close()
        res.replaced.push(spec.name)
      } else res.added.push(spec.name)
      this.clusters.set(spec.name, new Cluster(spec, this.env))
    }
    for (const [name, c] of this.clusters) {
      if (names.has(name) || keep(name)) continue
      c.close()
      this.clusters.delete(name)
      res.removed.push(name)
    }
    return res
  }

  /** Adds or refreshes one cluster outside the snapshot (inbound, passthrough). */
  ensure(spec: ClusterSpec): Cluster {
    const cur = this.clusters.get(spec.name)
    if (cur && cur.policy.key === spec.policy.key) {
      cur.updateEndpoints(spec)
      return cur
    }
    cur?.close()
    const c = new Cluster(spec, this.env)
    this.clusters.set(spec.name, c)
    return c
  }

  destroy(): void {
    for (const c of this.clusters.values()) c.destroy()
    this.clusters.clear()
  }
}
