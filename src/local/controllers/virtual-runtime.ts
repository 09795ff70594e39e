// A PodRuntime that starts nothing: every pod is Running and Ready at once. For tests of the
// API and controllers, and for meshd when no process runtime is available (`--runtime virtual`).
import type {LaunchResult, PodLaunch, PodRuntime, PodRuntimeEvents} from './pod-runtime.js'

export interface VirtualPodRuntimeOptions {
  /** refuse some pods, as a real runtime refuses an image it cannot run */
  refuse?: (pod: PodLaunch) => {reason: string; message: string} | undefined
}

export class VirtualPodRuntime implements PodRuntime {
  private listener?: PodRuntimeEvents
  private readonly pods = new Map<string, PodLaunch>()
  private nextPid = 100_000

  constructor(private readonly opts: VirtualPodRuntimeOptions = {}) {}

  setListener(events: PodRuntimeEvents): void {
    this.listener = events
  }

  async launch(pod: PodLaunch): Promise<LaunchResult> {
    const refused = this.opts.refuse?.(pod)
    if (refused) return {ok: false, ...refused}
    this.pods.set(pod.uid, pod)
    // a virtual pod has no process to probe: it is ready as soon as it "runs"
    setImmediate(() => {
      if (this.pods.has(pod.uid)) this.listener?.readiness(pod.uid, true)
    })
    return {ok: true, pid: this.nextPid++}
  }

  async terminate(uid: string): Promise<void> {
    this.pods.delete(uid)
  }

  async shutdown(): Promise<void> {
    this.pods.clear()
  }

  /** The pods this runtime currently "runs". */
  running(): PodLaunch[] {
    return [...this.pods.values()]
  }

  /** Simulates the pod's process dying (tests of restart and replacement). */
  exit(uid: string, exitCode: number | null = null, signal: string | null = 'SIGKILL'): void {
    if (!this.pods.delete(uid)) return
    this.listener?.exited(uid, exitCode, signal)
  }

  /** Simulates a readiness probe result. */
  setReady(uid: string, ready: boolean): void {
    if (this.pods.has(uid)) this.listener?.readiness(uid, ready)
  }
}
