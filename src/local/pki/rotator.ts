// Renews a workload certificate before it expires. Proxies hand the new secret to their TLS
// servers/clients (tls.Server#setSecureContext or a per-connection context getter), so new
// connections use the new certificate while open ones carry on untouched.
import type {WorkloadSecret} from '../dataplane/snapshot.js'

export interface CertRotatorOptions {
  /** gets a fresh certificate (ca.issueWorkload, or a request to meshd) */
  issue: () => Promise<WorkloadSecret>
  /** called after every successful issue, including the first */
  onRotate?: (secret: WorkloadSecret, previous: WorkloadSecret | undefined) => void
  /** called when an issue attempt fails; the rotator retries after retryMs */
  onError?: (error: unknown) => void
  /** renew after this fraction of the remaining lifetime at issue time (default 0.5, like Istio's agent) */
  renewFraction?: number
  /** or decide yourself: milliseconds to wait before renewing this secret */
  renewAfterMs?: (secret: WorkloadSecret) => number
  retryMs?: number
  now?: () => number
}

const MIN_DELAY_MS = 50

export class CertRotator {
  private secret: WorkloadSecret | undefined
  private timer: NodeJS.Timeout | undefined
  private stopped = false
  private inflight: Promise<WorkloadSecret> | undefined
  private nextAt: number | undefined
  private readonly opts: CertRotatorOptions

  constructor(opts: CertRotatorOptions) {
    const f = opts.renewFraction ?? 0.5
    if (!(f > 0 && f < 1)) throw new RangeError(`renewFraction must be in (0, 1), got ${f}`)
    this.opts = opts
  }

  get current(): WorkloadSecret | undefined {
    return this.secret
  }

  /** When the next renewal is due (undefined before start or after stop). */
  get nextRotationAt(): Date | undefined {
    return this.nextAt === undefined ? undefined : new Date(this.nextAt)
  }

  /** Issues the first certificate and schedules renewals. */
  async start(): Promise<WorkloadSecret> {
    this.stopped = false
    return this.rotateNow()
  }

  /** Renews now (also used on start); concurrent callers share one issue. */
  rotateNow(): Promise<WorkloadSecret> {
    if (this.inflight) return this.inflight
    const run = (async () => {
      try {
        const next = await this.opts.issue()
        const previous = this.secret
        this.secret = next
        this.schedule(this.delayFor(next))
        this.opts.onRotate?.(next, previous)
        return next
      } catch (error) {
        this.schedule(this.opts.retryMs ?? 1000)
        throw error
      } finally {
        this.inflight = undefined
      }
    })()
    this.inflight = run
    return run
  }

  stop(): void {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    this.nextAt = undefined
  }

  private now(): number {
    return this.opts.now ? this.opts.now() : Date.now()
  }

  private delayFor(secret: WorkloadSecret): number {
    if (this.opts.renewAfterMs) return Math.max(MIN_DELAY_MS, this.opts.renewAfterMs(secret))
    const remaining = Date.parse(secret.notAfter) - this.now()
    return Math.max(MIN_DELAY_MS, remaining * (this.opts.renewFraction ?? 0.5))
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return
    if (this.timer) clearTimeout(this.timer)
    this.nextAt = this.now() + delayMs
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.rotateNow().catch((error) => this.opts.onError?.(error))
    }, delayMs)
    this.timer.unref()
  }
}
