// Outlier detection for one cluster of one client proxy (DR-6..DR-9), following Envoy's
// consecutive-5xx / consecutive-gateway-failure detectors: counters per upstream host,
// inline ejection when a counter reaches its threshold, the max-ejection-percent cap,
// ejection time base × multiplier, return only on interval ticks. Pure: the clock is injected.
import type {OutlierConfig} from './destination-policy.js'

export interface Clock {
  /** monotonic milliseconds */
  now(): number
  setInterval(fn: () => void, ms: number): unknown
  clearInterval(handle: unknown): void
}

export const realClock: Clock = {
  now: () => performance.now(),
  setInterval(fn, ms) {
    const t = setInterval(fn, ms)
    t.unref()
    return t
  },
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
}

/** Monotonic clock time → wall-clock epoch ms (for admin output). */
export const toEpochMs = (monotonic: number): number => performance.timeOrigin + monotonic

export class HostMonitor {
  consecutive5xx = 0
  consecutiveGateway = 0
  ejected = false
  /** number of times this host was ejected */
  numEjections = 0
  /** the ejection-time multiplier */
  backoff = 0
  lastEjection: number | undefined
  lastUnejection: number | undefined

  constructor(readonly key: string) {}
}

export interface OutlierStats {
  ejections_enforced_total: number
  ejections_active: number
  ejections_overflow: number
  ejections_enforced_consecutive_5xx: number
  ejections_detected_consecutive_5xx: number
  ejections_enforced_consecutive_gateway_failure: number
  ejections_detected_consecutive_gateway_failure: number
  ejections_total: number
}

export const emptyOutlierStats = (): OutlierStats => ({
  ejections_enforced_total: 0,
  ejections_active: 0,
  ejections_overflow: 0,
  ejections_enforced_consecutive_5xx: 0,
  ejections_detected_consecutive_5xx: 0,
  ejections_enforced_consecutive_gateway_failure: 0,
  ejections_detected_consecutive_gateway_failure: 0,
  ejections_total: 0,
})

export type EjectionListener = (host: HostMonitor, ejected: boolean) => void

export class OutlierDetector {
  readonly hosts = new Map<string, HostMonitor>()
  private timer: unknown
  private listeners: EjectionListener[] = []

  constructor(
    readonly config: OutlierConfig,
    readonly clock: Clock,
    /** counters live outside so they survive a cluster being rebuilt under the same name */
    readonly stats: OutlierStats = emptyOutlierStats(),
  ) {}

  onChange(fn: EjectionListener): void {
    this.listeners.push(fn)
  }

  /** Starts the interval timer (ticks at start + k × interval). */
  start(): void {
    if (this.timer === undefined) this.timer = this.clock.setInterval(() => this.tick(), this.config.intervalMs)
  }

  /** Stops the timer; late results (requests still in flight on a replaced cluster) are ignored. */
  stop(): void {
    if (this.timer !== undefined) this.clock.clearInterval(this.timer)
    this.timer = undefined
    this.stopped = true
  }

  private stopped = false

  /** Sets the host membership; monitors of hosts that stay keep their state. */
  setHosts(keys: Iterable<string>): void {
    const keep = new Set(keys)
    for (const [k, m] of this.hosts) {
      if (keep.has(k)) continue
      if (m.ejected) this.stats.ejections_active--
      this.hosts.delete(k)
    }
    for (const k of keep) if (!this.hosts.has(k)) this.hosts.set(k, new HostMonitor(k))
  }

  monitor(key: string): HostMonitor | undefined {
    return this.hosts.get(key)
  }

  /**
   * One result from an upstream host: an HTTP status, or 503 for a connect failure/reset and
   * 504 for a timeout (DR-7). Returns true when this result ejected the host.
   */
  putResult(key: string, status: number): boolean {
    const m = this.hosts.get(key)
    if (!m || this.stopped) return false
    const c = this.config
    let ejected = false
    if (status >= 500 && status < 600) {
      if (status >= 502 && status <= 504) {
        if (++m.consecutiveGateway === c.consecutiveGateway) ejected = this.detected(m, 'gateway') || ejected
      } else {
        m.consecutiveGateway = 0
      }
      if (++m.consecutive5xx === c.consecutive5xx) ejected = this.detected(m, '5xx') || ejected
    } else {
      m.consecutive5xx = 0
      m.consecutiveGateway = 0
    }
    return ejected
  }

  /** A detector fired: try to eject (DR-8), then restart that detector's count. */
  private detected(m: HostMonitor, type: '5xx' | 'gateway'): boolean {
    if (m.ejected) return false // an ejected host's count runs on until it returns
    if (type === '5xx') this.stats.ejections_detected_consecutive_5xx++
    else this.stats.ejections_detected_consecutive_gateway_failure++
    const ejected = this.eject(m, type)
    if (type === '5xx') m.consecutive5xx = 0
    else m.consecutiveGateway = 0
    return ejected
  }

  private eject(m: HostMonitor, type: '5xx' | 'gateway'): boolean {
    const c = this.config
    // DR-8 cap: 100 × (ejected + 1) ÷ hosts ≤ maxEjectionPercent
    const pct = (100 * (this.stats.ejections_active + 1)) / this.hosts.size
    if (pct > Math.min(100, c.maxEjectionPercent)) {
      this.stats.ejections_overflow++
      return false
    }
    if (type === '5xx') this.stats.ejections_total++
    if (!(type === '5xx' ? c.enforce5xx : c.enforceGateway)) return false
    this.stats.ejections_active++
    this.stats.ejections_enforced_total++
    if (type === '5xx') this.stats.ejections_enforced_consecutive_5xx++
    else this.stats.ejections_enforced_consecutive_gateway_failure++
    m.ejected = true
    m.numEjections++
    m.lastEjection = this.clock.now()
    if (m.backoff * c.baseEjectionMs < c.maxEjectionMs + c.baseEjectionMs) m.backoff++
    for (const l of this.listeners) l(m, true)
    return true
  }

  /** How long the current ejection lasts at least (return happens on the first tick after). */
  ejectionDuration(m: HostMonitor): number {
    return Math.min(this.config.baseEjectionMs * m.backoff, this.config.maxEjectionMs)
  }

  /** Earliest monotonic time the host may return (it returns on the first interval tick at or after it). */
  ejectedUntil(m: HostMonitor): number | undefined {
    return m.ejected && m.lastEjection !== undefined ? m.lastEjection + this.ejectionDuration(m) : undefined
  }

  /** The interval timer: return hosts whose time is up, then decay multipliers of healthy hosts. */
  tick(): void {
    const now = this.clock.now()
    for (const m of this.hosts.values()) {
      if (!m.ejected || m.lastEjection === undefined) continue
      if (this.ejectionDuration(m) <= now - m.lastEjection) {
        this.stats.ejections_active--
        m.ejected = false
        m.consecutive5xx = 0
        m.consecutiveGateway = 0
        m.lastUnejection = now
        for (const l of this.listeners) l(m, false)
      }
    }
    for (const m of this.hosts.values()) {
      if (m.ejected || m.lastUnejection === undefined) continue
      if (now - m.lastUnejection >= this.config.intervalMs && m.backoff > 0) m.backoff--
    }
  }
}
