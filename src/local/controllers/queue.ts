// A controller work queue: keys are deduplicated while waiting, one key is never processed
// twice at the same time, failures come back with a capped backoff.
import {statusOf, type Logger} from './util.js'

export class WorkQueue {
  private readonly pending = new Set<string>()
  private readonly active = new Set<string>()
  /** keys added again while being processed: run once more afterwards */
  private readonly dirty = new Set<string>()
  private readonly timers = new Map<string, NodeJS.Timeout>()
  private readonly failures = new Map<string, number>()
  private workers = 0
  private stopped = false
  private idleWaiters: Array<() => void> = []

  constructor(
    readonly name: string,
    private readonly handler: (key: string) => Promise<void>,
    private readonly log: Logger,
    private readonly concurrency = 1,
  ) {}

  add(key: string): void {
    if (this.stopped) return
    if (this.active.has(key)) this.dirty.add(key)
    else this.pending.add(key)
    this.spawn()
  }

  addAfter(key: string, ms: number): void {
    if (this.stopped) return
    if (ms <= 0) return this.add(key)
    const t = this.timers.get(key)
    if (t) clearTimeout(t)
    const timer = setTimeout(() => {
      this.timers.delete(key)
      this.add(key)
    }, ms)
    timer.unref()
    this.timers.set(key, timer)
  }

  /** Resolves when nothing is queued or running (timers for later retries do not count). */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  /** keys queued or being processed */
  size(): number {
    return this.pending.size + this.active.size
  }

  stop(): void {
    this.stopped = true
    for (const t of this.timers.values()) clearTimeout(t)
    this.timers.clear()
    this.pending.clear()
    this.dirty.clear()
    this.notifyIdle()
  }

  private isIdle(): boolean {
    return this.pending.size === 0 && this.active.size === 0
  }

  private spawn(): void {
    while (this.workers < this.concurrency && this.nextKey() !== undefined) {
      this.workers++
      setImmediate(() => void this.work())
    }
  }

  private nextKey(): string | undefined {
    for (const k of this.pending) if (!this.active.has(k)) return k
    return undefined
  }

  private async work(): Promise<void> {
    try {
      for (let key = this.nextKey(); key !== undefined && !this.stopped; key = this.nextKey()) {
        this.pending.delete(key)
        this.active.add(key)
        try {
          await this.handler(key)
          this.failures.delete(key)
        } catch (e) {
          const n = (this.failures.get(key) ?? 0) + 1
          this.failures.set(key, n)
          const st = statusOf(e)
          // a conflict means someone else wrote first: retry soon, quietly
          if (st !== 409) this.log(`${this.name}: ${key}: ${(e as Error)?.message ?? e} (retry ${n})`)
          this.addAfter(key, st === 409 ? 5 : Math.min(100 * 2 ** (n - 1), 5000))
        } finally {
          this.active.delete(key)
          if (this.dirty.delete(key)) this.pending.add(key)
        }
      }
    } finally {
      this.workers--
      if (this.isIdle()) this.notifyIdle()
      else this.spawn()
    }
  }

  private notifyIdle(): void {
    const w = this.idleWaiters
    this.idleWaiters = []
    for (const r of w) r()
  }
}
