// HTTP/1.1 connection pool per upstream host with Envoy's cluster-wide circuit breakers
// (DR-4, DR-5). A request first takes a ready (connected, idle) connection; otherwise it
// becomes *pending* — if max_pending_requests is reached it overflows immediately (UO) —
// and a connection is opened if max_connections allows. A request stays pending while its
// connection is being established, exactly as in Envoy, which is what makes Istio's
// circuit-breaking task (SC-6) come out the way it does. Pure: connections come from a factory.
import type {PoolLimits} from './destination-policy.js'

/** Envoy's per-cluster resource manager: counts shared by every host pool of a cluster. */
export class ResourceManager {
  connections = 0
  pending = 0
  requests = 0
  retries = 0
  constructor(public limits: PoolLimits) {}
}

export interface PoolStats {
  upstream_cx_total: number
  upstream_cx_active: number
  upstream_cx_connect_fail: number
  upstream_cx_connect_timeout: number
  upstream_cx_overflow: number
  upstream_cx_destroy: number
  upstream_rq_total: number
  upstream_rq_active: number
  upstream_rq_pending_total: number
  upstream_rq_pending_active: number
  upstream_rq_pending_overflow: number
  upstream_rq_pending_failure_eject: number
}

export const emptyPoolStats = (): PoolStats => ({
  upstream_cx_total: 0,
  upstream_cx_active: 0,
  upstream_cx_connect_fail: 0,
  upstream_cx_connect_timeout: 0,
  upstream_cx_overflow: 0,
  upstream_cx_destroy: 0,
  upstream_rq_total: 0,
  upstream_rq_active: 0,
  upstream_rq_pending_total: 0,
  upstream_rq_pending_active: 0,
  upstream_rq_pending_overflow: 0,
  upstream_rq_pending_failure_eject: 0,
})

/** What the pool needs of a connection. */
export interface PoolConnection {
  /** requests attached to this connection so far */
  served: number
  /** close the connection now (the pool has already accounted for it) */
  destroy(): void
  /** an idle connection that should not be reused any more (e.g. past the server's keep-alive) */
  expired?(now: number): boolean
}

export type PoolFailure = 'overflow' | 'connection_failure' | 'connect_timeout'

/** A request waiting for a connection. */
export interface PoolWaiter<C> {
  onPoolReady(conn: C): void
  onPoolFailure(reason: PoolFailure, error?: Error): void
}

export type Connector<C extends PoolConnection> = (pool: HostPool<C>) => C

export class HostPool<C extends PoolConnection> {
  readonly ready: C[] = []
  readonly busy = new Set<C>()
  readonly connecting = new Set<C>()
  readonly pending: PoolWaiter<C>[] = []
  private draining = false

  constructor(
    private rm: ResourceManager,
    private stats: PoolStats,
    private connector: Connector<C>,
  ) {}

  get connectionCount(): number {
    return this.ready.length + this.busy.size + this.connecting.size
  }

  /** Ask for a connection for one request; the waiter hears back synchronously or later. */
  newStream(w: PoolWaiter<C>): void {
    let c = this.ready.pop()
    if (c !== undefined && c.expired !== undefined) {
      const now = performance.now()
      while (c !== undefined && c.expired?.(now)) {
        this.close(c)
        c = this.ready.pop()
      }
    }
    if (c !== undefined) {
      this.attach(c, w)
      return
    }
    if (this.rm.pending >= this.rm.limits.maxPendingRequests) {
      this.stats.upstream_rq_pending_overflow++
      w.onPoolFailure('overflow')
      return
    }
    this.pending.push(w)
    this.rm.pending++
    this.stats.upstream_rq_pending_total++
    this.stats.upstream_rq_pending_active++
    this.tryCreateConnections()
  }

  /** A waiter gave up (downstream gone, route timeout) before it got a connection. */
  cancel(w: PoolWaiter<C>): void {
    const i = this.pending.indexOf(w)
    if (i < 0) return
    this.pending.splice(i, 1)
    this.rm.pending--
    this.stats.upstream_rq_pending_active--
  }

  private attach(c: C, w: PoolWaiter<C>): void {
    if (this.rm.requests >= this.rm.limits.maxRequests) {
      this.ready.push(c)
      this.stats.upstream_rq_pending_overflow++
      w.onPoolFailure('overflow')
      return
    }
    this.rm.requests++
    this.stats.upstream_rq_total++
    this.stats.upstream_rq_active++
    this.busy.add(c)
    c.served++
    w.onPoolReady(c)
  }

  private tryCreateConnections(): void {
    while (this.pending.length > this.connecting.size) {
      const allowed = this.rm.connections < this.rm.limits.maxConnections
      if (!allowed) this.stats.upstream_cx_overflow++
      // Envoy: a host with no connection at all may always open one, so its queue cannot starve
      // behind other hosts' connections.
      if (allowed || this.connectionCount === 0) this.open()
      else break
    }
  }

  private open(): void {
    this.rm.connections++
    this.stats.upstream_cx_total++
    this.stats.upstream_cx_active++
    const c = this.connector(this)
    this.connecting.add(c)
  }

  // --- events from connections --------------------------------------------------------------

  onConnected(c: C): void {
    if (!this.connecting.delete(c)) return
    this.onUpstreamReady(c)
  }

  private onUpstreamReady(c: C): void {
    const w = this.pending.shift()
    if (w !== undefined) {
      this.rm.pending--
      this.stats.upstream_rq_pending_active--
      this.attach(c, w)
    } else if (this.draining) {
      this.close(c)
    } else {
      this.ready.push(c)
    }
  }

  /** The request on `c` finished; `reusable` false when the connection is broken or was told to close. */
  onStreamDone(c: C, reusable: boolean): void {
    if (!this.busy.delete(c)) return
    this.rm.requests--
    this.stats.upstream_rq_active--
    const max = this.rm.limits.maxRequestsPerConnection
    if (!reusable || (max > 0 && c.served >= max)) this.close(c)
    else this.onUpstreamReady(c)
  }

  /** A connecting connection failed: Envoy fails every pending request of the pool. */
  onConnectFailed(c: C, reason: PoolFailure, error?: Error): void {
    if (!this.connecting.delete(c)) return
    this.released()
    this.stats.upstream_cx_connect_fail++
    if (reason === 'connect_timeout') this.stats.upstream_cx_connect_timeout++
    const purged = this.pending.splice(0)
    this.rm.pending -= purged.length
    this.stats.upstream_rq_pending_active -= purged.length
    for (const w of purged) w.onPoolFailure(reason, error)
    this.tryCreateConnections()
  }

  /**
   * The connection closed on its own (idle timeout, remote close) while idle. A connection that
   * closes under a request is reported through onStreamDone(c, false) by that request instead.
   */
  onClosed(c: C): void {
    const i = this.ready.indexOf(c)
    if (i < 0) return
    this.ready.splice(i, 1)
    this.released()
    if (this.pending.length > 0) this.tryCreateConnections()
  }

  private close(c: C): void {
    this.released()
    this.stats.upstream_cx_destroy++
    c.destroy()
    if (this.pending.length > 0) this.tryCreateConnections()
  }

  private released(): void {
    this.rm.connections--
    this.stats.upstream_cx_active--
  }

  /** The host left the cluster: close idle connections, finish what is in flight. */
  drain(): void {
    this.draining = true
    for (const c of this.ready.splice(0)) this.close(c)
  }

  get isIdle(): boolean {
    return this.connectionCount === 0 && this.pending.length === 0
  }
}
