// The kubelet of the embedded cluster: one OS process per pod (dist/local/runtime/pod-main.js),
// its output in <stateDir>/pods/<ns>_<name>.log, readiness from the manifest's probe, exits
// and readiness changes reported to the pod controller. Restart decisions stay with the
// controller: this class never relaunches on its own.

import {spawn, type ChildProcess} from 'node:child_process'
import {once} from 'node:events'
import {appendFileSync, closeSync, existsSync, mkdirSync, openSync, renameSync} from 'node:fs'
import {dirname, join, sep} from 'node:path'
import {fileURLToPath} from 'node:url'
import type {LaunchResult, PodLaunch, PodRuntime, PodRuntimeEvents} from '../controllers/pod-runtime.js'
import {planPod} from './images.js'
import {MAX_SIDECAR_PORT, podLogPath, podsDir, previousPodLogPath} from './paths.js'
import {probeTiming, runProbe} from './probe.js'
import {POD_ENV, type PodInit, type PodMessage} from './protocol.js'
import type {SidecarImpl} from './sidecar-seam.js'

export interface ProcessPodRuntimeOptions {
  /** meshd's state directory; pod logs go to <stateDir>/pods/ */
  stateDir: string
  /** handed to each meshed pod's sidecar (config and certificates come from meshd) */
  meshd: {url: string; token: string; caPem: string}
  /** node executable for pod processes; default: the one running meshd */
  nodeBinary?: string
  /** 'passthrough' forces the plain TCP bridge instead of the mesh sidecar (tests, debugging); default 'auto' */
  sidecarImpl?: SidecarImpl
  /** pod process entry; default dist/local/runtime/pod-main.js beside this module */
  podMainPath?: string
}

/** SIGTERM → SIGKILL when the pod does not say otherwise. */
export const DEFAULT_GRACE_SECONDS = 5

interface PodProcess {
  pod: PodLaunch
  child: ChildProcess
  logPath: string
  ready: boolean
  /** terminate() called or the pod reported it is stopping: no more probes, never ready again */
  stopping: boolean
  gone: boolean
  failures: number
  probeTimer?: NodeJS.Timeout
  exited: Promise<void>
}

const LOOPBACK_V4 = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/

/** Where the compiled pod entry is: beside this file in dist/, or dist/'s twin when this file runs from src/ (vitest). */
export function defaultPodMainPath(): string {
  const here = fileURLToPath(import.meta.url)
  const sibling = join(dirname(here), 'pod-main.js')
  if (existsSync(sibling)) return sibling
  const i = here.lastIndexOf(`${sep}src${sep}`)
  if (i >= 0) {
    const rel = dirname(here.slice(i + `${sep}src${sep}`.length))
    return join(here.slice(0, i), 'dist', rel, 'pod-main.js')
  }
  return sibling
}

export class ProcessPodRuntime implements PodRuntime {
  private readonly pods = new Map<string, PodProcess>()
  private events?: PodRuntimeEvents
  private closed = false

  constructor(private readonly opts: ProcessPodRuntimeOptions) {}

  setListener(events: PodRuntimeEvents): void {
    this.events = events
  }

  /** Log file of a pod's current process (JSON lines). */
  logPath(namespace: string, name: string): string {
    return podLogPath(this.opts.stateDir, namespace, name)
  }

  async launch(pod: PodLaunch): Promise<LaunchResult> {
    if (this.closed) return {ok: false, reason: 'RuntimeShutDown', message: 'the pod runtime is shutting down'}
    const existing = this.pods.get(pod.uid)
    if (existing && !existing.gone) return {ok: true, pid: existing.child.pid as number}

    const planned = planPod(pod)
    if (!planned.ok) return {ok: false, reason: planned.reason, message: planned.message}
    const m = LOOPBACK_V4.exec(pod.podIP)
    if (!m || m.slice(1).some((o) => Number(o) > 255)) {
      return {ok: false, reason: 'InvalidPodIP', message: `pod IP "${pod.podIP}" is not an IPv4 address in 127.0.0.0/8`}
    }
    if (pod.sidecar) {
      const ports = [...pod.containerPorts, ...planned.plan.listeners.map((l) => l.port)]
      const bad = ports.find((p) => p > MAX_SIDECAR_PORT)
      if (bad !== undefined) {
        return {ok: false, reason: 'PortNotSupported', message: `port ${bad} is above ${MAX_SIDECAR_PORT}: with a sidecar the app moves to port + 30000, which would exceed 65535`}
      }
    }
    const entry = this.opts.podMainPath ?? defaultPodMainPath()
    if (!existsSync(entry)) {
      return {ok: false, reason: 'RunContainerError', message: `pod process entry ${entry} is missing; build mesh first (npm run build)`}
    }

    mkdirSync(podsDir(this.opts.stateDir), {recursive: true})
    const logPath = podLogPath(this.opts.stateDir, pod.namespace, pod.name)
    if (existsSync(logPath)) renameSync(logPath, previousPodLogPath(this.opts.stateDir, pod.namespace, pod.name))
    const fd = openSync(logPath, 'a')
    let child: ChildProcess
    try {
      const env: NodeJS.ProcessEnv = {[POD_ENV]: JSON.stringify(pod)}
      // a minimal environment: the container's env lives inside the PodLaunch, and meshd's
      // NODE_OPTIONS or loaders must not leak into pods
      for (const k of ['PATH', 'HOME', 'TMPDIR', 'LANG', 'TZ']) if (process.env[k] !== undefined) env[k] = process.env[k]
      child = spawn(this.opts.nodeBinary ?? process.execPath, [entry], {
        stdio: ['ignore', fd, fd, 'ipc'],
        env,
        cwd: podsDir(this.opts.stateDir),
      })
      // events.once rejects on 'error', which is the failure we want to report
      const spawned = await once(child, 'spawn').then(() => undefined, (e: Error) => e)
      if (spawned) return {ok: false, reason: 'RunContainerError', message: `could not start the pod process: ${spawned.message}`}
    } finally {
      closeSync(fd)
    }

    let markExited!: () => void
    const rec: PodProcess = {
      pod, child, logPath, ready: false, stopping: false, gone: false, failures: 0,
      exited: new Promise<void>((r) => { markExited = r }),
    }
    this.pods.set(pod.uid, rec)
    child.on('error', (e) => this.kubeletLog(rec, 'pod process error', {error: e.message}))
    child.on('message', (msg: PodMessage) => this.onMessage(rec, msg))
    child.on('exit', (code, signal) => {
      rec.gone = true
      clearTimeout(rec.probeTimer)
      this.setReady(rec, false, 'process exited')
      if (this.pods.get(pod.uid) === rec) this.pods.delete(pod.uid)
      this.kubeletLog(rec, 'process exited', {exitCode: code, signal})
      markExited()
      this.events?.exited(pod.uid, code, signal)
    })
    const init: PodInit = {type: 'init', meshd: this.opts.meshd, stateDir: this.opts.stateDir, sidecarImpl: this.opts.sidecarImpl ?? 'auto'}
    child.send(init, undefined, {}, () => {})
    return {ok: true, pid: child.pid as number}
  }

  async terminate(uid: string): Promise<void> {
    const rec = this.pods.get(uid)
    if (!rec || rec.gone) return
    rec.stopping = true
    clearTimeout(rec.probeTimer)
    this.setReady(rec, false, 'terminating')
    const graceMs = (rec.pod.terminationGracePeriodSeconds ?? DEFAULT_GRACE_SECONDS) * 1000
    rec.child.kill('SIGTERM')
    const killer = setTimeout(() => {
      if (!rec.gone) {
        this.kubeletLog(rec, 'grace period over, sending SIGKILL', {graceMs})
        rec.child.kill('SIGKILL')
      }
    }, graceMs)
    await rec.exited
    clearTimeout(killer)
  }

  async shutdown(): Promise<void> {
    this.closed = true
    await Promise.all([...this.pods.keys()].map((uid) => this.terminate(uid)))
  }

  // -------------------------------------------------------------------------------------------

  private onMessage(rec: PodProcess, msg: PodMessage): void {
    if (msg?.type === 'stopping') {
      rec.stopping = true
      clearTimeout(rec.probeTimer)
      this.setReady(rec, false, `pod stopping (${msg.reason})`)
      return
    }
    if (msg?.type !== 'started' || rec.stopping || rec.gone) return
    const probe = rec.pod.readinessProbe
    // no probe: ready as soon as the container runs (its listeners are bound)
    if (!probe) {
      this.setReady(rec, true, 'started, no readiness probe')
      return
    }
    const timing = probeTiming(probe)
    const tick = async (): Promise<void> => {
      if (rec.stopping || rec.gone) return
      const r = await runProbe(probe, rec.pod.podIP, rec.pod.sidecar, timing.timeoutMs)
      if (rec.stopping || rec.gone) return
      if (r.ok) {
        rec.failures = 0
        this.setReady(rec, true, r.detail)
      } else {
        rec.failures++
        if (rec.failures >= timing.failureThreshold) this.setReady(rec, false, `Readiness probe failed: ${r.detail}`)
      }
      rec.probeTimer = setTimeout(() => void tick(), timing.periodMs)
    }
    rec.probeTimer = setTimeout(() => void tick(), timing.initialDelayMs)
  }

  private setReady(rec: PodProcess, ready: boolean, why: string): void {
    if (rec.ready === ready) return
    rec.ready = ready
    this.kubeletLog(rec, ready ? 'ready' : 'not ready', {why})
    this.events?.readiness(rec.pod.uid, ready)
  }

  private kubeletLog(rec: PodProcess, msg: string, fields: Record<string, unknown>): void {
    try {
      appendFileSync(rec.logPath, `${JSON.stringify({time: new Date().toISOString(), level: 'info', src: 'kubelet', pod: `${rec.pod.namespace}/${rec.pod.name}`, msg, ...fields})}\n`)
    } catch {
      // the log is best effort; the events carry the facts
    }
  }
}
