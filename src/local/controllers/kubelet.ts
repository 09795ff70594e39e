// The pod lifecycle of the embedded cluster (the kubelet's job): bind and admit new pods
// (sidecar injection), give them a loopback IP, run them through the PodRuntime, and keep
// status.phase / conditions / containerStatuses in line with what the runtime reports.
// A pod owned by a controller whose process dies is marked Failed and deleted so the
// controller replaces it (ADR 0030); bare pods restart in place with a backoff.
import type {KubeObject, Store} from '../api/types.js'
import {canonical, clone} from '../api/util.js'
import type {EventRecorder} from './events.js'
import type {PodIpAllocator} from './ipam.js'
import type {LaunchResult, PodLaunch, PodRuntime, ProbeSpec} from './pod-runtime.js'
import {
  NODE_NAME,
  controllerOf,
  coreTypes,
  isDeleting,
  mergeConditions,
  now,
  objectKey,
  podPhase,
  splitKey,
  statusOf,
  type Condition,
  type CoreTypes,
  type Logger,
} from './util.js'

export const INJECT_ANNOTATION = 'sidecar.istio.io/inject'
export const SIDECAR_STATUS_ANNOTATION = 'sidecar.istio.io/status'
export const INJECTION_LABEL = 'istio-injection'
export const PROXY_CONTAINER = 'istio-proxy'
export const PROXY_IMAGE = 'docker.io/istio/proxyv2:1.28.0'

const BACKOFF_START_MS = 500
const BACKOFF_MAX_MS = 10_000
/** a process that ran this long before dying starts its backoff from the beginning again */
const BACKOFF_RESET_AFTER_MS = 10_000

interface Container {
  name: string
  image?: string
  command?: string[]
  args?: string[]
  env?: Array<{name: string; value?: string; valueFrom?: {fieldRef?: {fieldPath?: string}}}>
  ports?: Array<{containerPort: number; name?: string; protocol?: string}>
  readinessProbe?: {
    httpGet?: {path?: string; port: number | string}
    tcpSocket?: {port: number | string}
    initialDelaySeconds?: number
    periodSeconds?: number
    failureThreshold?: number
    timeoutSeconds?: number
  }
}

interface PodState {
  uid: string
  key: string
  podIP?: string
  launching: boolean
  running: boolean
  ready: boolean
  restartCount: number
  startedAt?: string
  startedAtMs?: number
  /** the runtime refused to start it (e.g. ImageNotEmulated) */
  waiting?: {reason: string; message: string}
  /** last termination, for containerStatuses.lastState */
  lastTermination?: {exitCode: number; signal: string | null; reason: string; finishedAt: string; startedAt?: string}
  /** a terminal phase decided after the process ended */
  terminal?: 'Failed' | 'Succeeded'
  /** replaced by its controller: delete once the Failed status is written */
  deleteWhenFailed?: boolean
  backoffMs: number
  backoffUntil?: number
  terminating: boolean
  pid?: number
}

/** Whether a pod gets our sidecar: its namespace opts in and the pod does not opt out (label or annotation). */
export function wantsSidecar(pod: KubeObject, namespace: KubeObject | undefined): boolean {
  if (namespace?.metadata.labels?.[INJECTION_LABEL] !== 'enabled') return false
  const label = pod.metadata.labels?.[INJECT_ANNOTATION]
  const annotation = pod.metadata.annotations?.[INJECT_ANNOTATION]
  const optOut = (v: string | undefined) => v !== undefined && ['false', 'no', 'n', 'off', '0'].includes(v.toLowerCase())
  return !(optOut(label) || (label === undefined && optOut(annotation)))
}

export const hasSidecar = (pod: KubeObject): boolean => Boolean(pod.metadata.annotations?.[SIDECAR_STATUS_ANNOTATION])

const appContainers = (pod: KubeObject): Container[] =>
  ((pod.spec?.containers ?? []) as Container[]).filter((c) => c.name !== PROXY_CONTAINER)

/** Resolves a named port against the pod's container ports. */
function portNumber(port: number | string | undefined, containers: Container[]): number | undefined {
  if (typeof port === 'number') return port
  if (port === undefined) return undefined
  if (/^\d+$/.test(port)) return Number(port)
  for (const c of containers) for (const p of c.ports ?? []) if (p.name === port) return p.containerPort
  return undefined
}

/** The PodLaunch the runtime gets for a pod (first app container; downward-API env resolved). */
export function podLaunchFor(pod: KubeObject, podIP: string): PodLaunch {
  const containers = appContainers(pod)
  const c = containers[0] ?? ({name: 'main'} as Container)
  const sa = String(pod.spec?.serviceAccountName ?? pod.spec?.serviceAccount ?? 'default')
  const field = (path: string | undefined): string => {
    switch (path) {
      case 'metadata.name':
        return pod.metadata.name
      case 'metadata.namespace':
        return pod.metadata.namespace ?? 'default'
      case 'metadata.uid':
        return pod.metadata.uid ?? ''
      case 'status.podIP':
        return podIP
      case 'status.hostIP':
        return '127.0.0.1'
      case 'spec.nodeName':
        return NODE_NAME
      case 'spec.serviceAccountName':
        return sa
      default: {
        const m = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path ?? '')
        if (m) return (m[1] === 'labels' ? pod.metadata.labels : pod.metadata.annotations)?.[m[2]] ?? ''
        return ''
      }
    }
  }
  const env: Record<string, string> = {}
  for (const e of c.env ?? []) env[e.name] = e.value ?? (e.valueFrom?.fieldRef ? field(e.valueFrom.fieldRef.fieldPath) : '')
  const rp = c.readinessProbe
  let readinessProbe: ProbeSpec | undefined
  if (rp) {
    const probePort = portNumber(rp.httpGet?.port ?? rp.tcpSocket?.port, containers)
    if (probePort !== undefined) {
      readinessProbe = {
        ...(rp.httpGet ? {httpGet: {path: rp.httpGet.path ?? '/', port: probePort}} : {tcpSocket: {port: probePort}}),
        ...(rp.initialDelaySeconds !== undefined ? {initialDelaySeconds: rp.initialDelaySeconds} : {}),
        ...(rp.periodSeconds !== undefined ? {periodSeconds: rp.periodSeconds} : {}),
        ...(rp.failureThreshold !== undefined ? {failureThreshold: rp.failureThreshold} : {}),
        ...(rp.timeoutSeconds !== undefined ? {timeoutSeconds: rp.timeoutSeconds} : {}),
      }
    }
  }
  const restart = String(pod.spec?.restartPolicy ?? 'Always')
  const grace = pod.spec?.terminationGracePeriodSeconds
  return {
    uid: pod.metadata.uid ?? '',
    name: pod.metadata.name,
    namespace: pod.metadata.namespace ?? 'default',
    labels: {...(pod.metadata.labels ?? {})},
    serviceAccount: sa,
    podIP,
    image: c.image ?? '',
    ...(c.command ? {command: [...c.command]} : {}),
    args: [...(c.args ?? [])],
    env,
    containerPorts: containers.flatMap((x) => (x.ports ?? []).map((p) => p.containerPort)),
    sidecar: hasSidecar(pod),
    ...(readinessProbe ? {readinessProbe} : {}),
    restartPolicy: restart === 'Never' || restart === 'OnFailure' ? restart : 'Always',
    ...(typeof grace === 'number' ? {terminationGracePeriodSeconds: grace} : {}),
  }
}

export interface KubeletOptions {
  store: Store
  runtime: PodRuntime
  ips: PodIpAllocator
  events?: EventRecorder
  log: Logger
  /** asks for a reconcile of this pod key (the manager's queue) */
  enqueue: (key: string) => void
  enqueueAfter: (key: string, ms: number) => void
}

export class Kubelet {
  private readonly t: CoreTypes
  private readonly byUid = new Map<string, PodState>()
  private readonly uidByKey = new Map<string, string>()
  private stopping = false

  constructor(private readonly o: KubeletOptions) {
    this.t = coreTypes(o.store)
    o.runtime.setListener({
      exited: (uid, code, signal) => this.onExited(uid, code, signal),
      readiness: (uid, ready) => this.onReadiness(uid, ready),
    })
  }

  /** Claims the IPs of pods already in the store (after a restart) before anything is allocated. */
  reserveExisting(): void {
    for (const p of this.o.store.list(this.t.pod, undefined).items) {
      const ip = (p.status as {podIP?: string} | undefined)?.podIP
      if (ip && this.o.ips.contains(ip)) this.o.ips.reserve(ip)
    }
  }

  /** Pods with a process (or a launch) under way. */
  runningCount(): number {
    return [...this.byUid.values()].filter((s) => s.running || s.launching).length
  }

  async reconcile(key: string): Promise<void> {
    if (this.stopping) return
    const {namespace, name} = splitKey(key)
    const pod = this.o.store.get(this.t.pod, namespace, name)
    const knownUid = this.uidByKey.get(key)
    if (knownUid && (!pod || pod.metadata.uid !== knownUid)) await this.forget(knownUid)
    if (!pod) return
    const uid = pod.metadata.uid!
    if (isDeleting(pod)) return this.forget(uid)

    if (!pod.spec?.nodeName) return this.admit(pod)

    let st = this.byUid.get(uid)
    if (!st) {
      const phase = podPhase(pod)
      if (phase === 'Failed' || phase === 'Succeeded') {
        // finished before a restart of meshd; a replaced pod that was not deleted yet goes now
        if (phase === 'Failed' && controllerOf(pod)) await this.deletePod(pod)
        return
      }
      st = this.track(pod)
    }

    if (st.terminal) {
      await this.writeStatus(pod, st)
      if (st.deleteWhenFailed) await this.deletePod(pod)
      return
    }

    const due = st.backoffUntil === undefined || Date.now() >= st.backoffUntil
    if (!st.running && !st.launching && !st.waiting && due) {
      st.backoffUntil = undefined
      await this.launch(pod, st)
    }
    const fresh = this.o.store.get(this.t.pod, namespace, name)
    if (fresh && fresh.metadata.uid === uid) await this.writeStatus(fresh, st)
  }

  /** Stops every pod process (meshd shutdown). Pods stay in the store and start again with meshd. */
  async shutdown(): Promise<void> {
    this.stopping = true
    await this.o.runtime.shutdown()
  }

  // ------------------------------------------------------------------ lifecycle steps

  private track(pod: KubeObject): PodState {
    const prev = (pod.status as {containerStatuses?: Array<{restartCount?: number; state?: Record<string, unknown>}>} | undefined)
      ?.containerStatuses?.[0]
    const wasRunning = Boolean(prev?.state?.running)
    const st: PodState = {
      uid: pod.metadata.uid!,
      key: objectKey(pod.metadata.namespace, pod.metadata.name),
      podIP: (pod.status as {podIP?: string} | undefined)?.podIP,
      launching: false,
      running: false,
      ready: false,
      // a pod that was running when meshd stopped restarts, like containers after a node reboot
      restartCount: (prev?.restartCount ?? 0) + (wasRunning ? 1 : 0),
      backoffMs: BACKOFF_START_MS,
      terminating: false,
    }
    if (st.podIP && !this.o.ips.contains(st.podIP)) st.podIP = undefined
    this.byUid.set(st.uid, st)
    this.uidByKey.set(st.key, st.uid)
    return st
  }

  /** Binding and admission in one write: the node, and the sidecar when the namespace asks for it. */
  private async admit(pod: KubeObject): Promise<void> {
    const next = clone(pod)
    next.spec = {...(next.spec ?? {}), nodeName: NODE_NAME}
    const ns = this.o.store.get(this.t.namespace, undefined, pod.metadata.namespace ?? 'default')
    if (wantsSidecar(pod, ns) && !hasSidecar(pod)) {
      const labels = (next.metadata.labels ??= {})
      const app = labels['app.kubernetes.io/name'] ?? labels.app ?? controllerOf(pod)?.name ?? pod.metadata.name
      labels['security.istio.io/tlsMode'] ??= 'istio'
      labels['service.istio.io/canonical-name'] ??= app
      labels['service.istio.io/canonical-revision'] ??= labels['app.kubernetes.io/version'] ?? labels.version ?? 'latest'
      next.metadata.annotations = {
        ...(next.metadata.annotations ?? {}),
        [SIDECAR_STATUS_ANNOTATION]: JSON.stringify({
          initContainers: null,
          containers: [PROXY_CONTAINER],
          volumes: ['istio-envoy', 'istio-data', 'istio-podinfo', 'istio-token', 'istiod-ca-cert'],
          imagePullSecrets: null,
          revision: 'default',
        }),
      }
      const containers = (next.spec.containers ?? []) as Container[]
      if (!containers.some((c) => c.name === PROXY_CONTAINER)) {
        next.spec.containers = [
          ...containers,
          {
            name: PROXY_CONTAINER,
            image: PROXY_IMAGE,
            args: ['proxy', 'sidecar'],
            ports: [{containerPort: 15090, name: 'http-envoy-prom', protocol: 'TCP'}],
            imagePullPolicy: 'IfNotPresent',
            resources: {},
          },
        ]
      }
    }
    next.metadata.resourceVersion = pod.metadata.resourceVersion
    try {
      await this.o.store.update(this.t.pod, next)
    } catch (e) {
      if (statusOf(e) !== 404) throw e
    }
  }

  private async launch(pod: KubeObject, st: PodState): Promise<void> {
    if (!st.podIP) st.podIP = this.o.ips.allocate()
    else this.o.ips.reserve(st.podIP)
    st.launching = true
    let res: LaunchResult
    try {
      res = await this.o.runtime.launch(podLaunchFor(pod, st.podIP))
    } catch (e) {
      res = {ok: false, reason: 'RunContainerError', message: (e as Error)?.message ?? String(e)}
    } finally {
      st.launching = false
    }
    if (st.terminating || this.stopping) {
      if (res.ok) await this.o.runtime.terminate(st.uid).catch(() => undefined)
      return
    }
    if (res.ok) {
      st.running = true
      st.pid = res.pid
      st.startedAt = now()
      st.startedAtMs = Date.now()
      st.waiting = undefined
      // without a readiness probe a running container is ready, as on Kubernetes
      const hasProbe = appContainers(pod).some((c) => c.readinessProbe)
      if (!hasProbe) st.ready = true
      if (st.restartCount > 0) this.o.events?.record(pod, 'Normal', 'Started', `Restarted the pod's process (restart ${st.restartCount})`)
    } else {
      st.waiting = {reason: res.reason, message: res.message}
      this.o.events?.record(pod, 'Warning', res.reason, res.message)
      this.o.log(`pod ${st.key}: not started: ${res.reason}: ${res.message}`)
    }
  }

  private onReadiness(uid: string, ready: boolean): void {
    const st = this.byUid.get(uid)
    if (!st || st.terminating) return
    if (st.ready === ready) return
    st.ready = ready
    this.o.enqueue(st.key)
  }

  private onExited(uid: string, exitCode: number | null, signal: string | null): void {
    const st = this.byUid.get(uid)
    if (!st || st.terminating || this.stopping) return
    const pod = this.podFor(st)
    st.running = false
    st.ready = false
    const reason = signal === 'SIGKILL' ? 'Killed' : exitCode === 0 ? 'Completed' : 'Error'
    st.lastTermination = {exitCode: exitCode ?? 137, signal, reason, finishedAt: now(), startedAt: st.startedAt}
    if (!pod) return
    const how = signal ? `killed by ${signal}` : `exited with code ${exitCode}`
    const policy = String(pod.spec?.restartPolicy ?? 'Always')
    const ok = exitCode === 0 && !signal
    if (controllerOf(pod)) {
      // the owner replaces it with a new pod (ADR 0030)
      st.terminal = ok && policy !== 'Always' ? 'Succeeded' : 'Failed'
      st.deleteWhenFailed = true
      this.o.events?.record(pod, 'Warning', 'ProcessExited', `The pod's process ${how}; ${controllerOf(pod)!.kind} ${controllerOf(pod)!.name} will replace the pod`)
      this.o.log(`pod ${st.key}: process ${how}; deleting it for its ${controllerOf(pod)!.kind} to replace`)
      this.o.enqueue(st.key)
      return
    }
    if (policy === 'Always' || (policy === 'OnFailure' && !ok)) {
      if (st.startedAtMs !== undefined && Date.now() - st.startedAtMs >= BACKOFF_RESET_AFTER_MS) st.backoffMs = BACKOFF_START_MS
      const delay = st.backoffMs
      st.backoffMs = Math.min(st.backoffMs * 2, BACKOFF_MAX_MS)
      st.backoffUntil = Date.now() + delay
      st.restartCount++
      this.o.events?.record(pod, 'Warning', 'BackOff', `The pod's process ${how}; restarting it in ${delay} ms`)
      this.o.enqueue(st.key)
      this.o.enqueueAfter(st.key, delay)
      return
    }
    st.terminal = ok ? 'Succeeded' : 'Failed'
    this.o.enqueue(st.key)
  }

  private podFor(st: PodState): KubeObject | undefined {
    const {namespace, name} = splitKey(st.key)
    const pod = this.o.store.get(this.t.pod, namespace, name)
    return pod && pod.metadata.uid === st.uid ? pod : undefined
  }

  private async deletePod(pod: KubeObject): Promise<void> {
    const cur = this.o.store.get(this.t.pod, pod.metadata.namespace, pod.metadata.name)
    if (!cur || cur.metadata.uid !== pod.metadata.uid) return
    try {
      await this.o.store.delete(this.t.pod, pod.metadata.namespace, pod.metadata.name)
    } catch (e) {
      if (statusOf(e) !== 404) throw e
    }
  }

  /** The pod is gone (or going): stop its process and give its address back. */
  private async forget(uid: string): Promise<void> {
    const st = this.byUid.get(uid)
    if (!st) return
    st.terminating = true
    this.byUid.delete(uid)
    if (this.uidByKey.get(st.key) === uid) this.uidByKey.delete(st.key)
    try {
      await this.o.runtime.terminate(uid)
    } catch (e) {
      this.o.log(`pod ${st.key}: terminate failed: ${(e as Error).message}`)
    }
    if (st.podIP) this.o.ips.release(st.podIP)
  }

  // ------------------------------------------------------------------ status

  private async writeStatus(pod: KubeObject, st: PodState): Promise<void> {
    const status = podStatus(pod, st)
    if (canonical(status) === canonical(pod.status ?? {})) return
    try {
      await this.o.store.updateStatus(this.t.pod, {...pod, metadata: {...pod.metadata, resourceVersion: undefined}, status})
    } catch (e) {
      if (statusOf(e) !== 404) throw e
    }
  }
}

function podStatus(pod: KubeObject, st: PodState): Record<string, unknown> {
  const prev = (pod.status ?? {}) as {conditions?: Condition[]; startTime?: string; containerStatuses?: Array<Record<string, unknown>>}
  const ready = st.running && st.ready && !st.terminal
  const phase = st.terminal ?? (st.running ? 'Running' : 'Pending')
  const conditions = mergeConditions(prev.conditions, [
    {type: 'Initialized', status: 'True'},
    ready ? {type: 'Ready', status: 'True'} : {type: 'Ready', status: 'False', reason: 'ContainersNotReady', message: 'containers with unready status'},
    ready
      ? {type: 'ContainersReady', status: 'True'}
      : {type: 'ContainersReady', status: 'False', reason: 'ContainersNotReady', message: 'containers with unready status'},
    {type: 'PodScheduled', status: 'True'},
  ]).map((c) => ({...c, lastProbeTime: null}))

  const waitingState = (): Record<string, unknown> => {
    if (st.waiting) return {waiting: {reason: st.waiting.reason, message: st.waiting.message}}
    if (st.backoffUntil !== undefined)
      return {waiting: {reason: 'CrashLoopBackOff', message: `back-off restarting the pod's process (restart ${st.restartCount})`}}
    return {waiting: {reason: 'ContainerCreating'}}
  }
  const state: Record<string, unknown> = st.terminal
    ? {
        terminated: {
          exitCode: st.lastTermination?.exitCode ?? 0,
          reason: st.lastTermination?.reason ?? 'Error',
          ...(st.lastTermination?.signal ? {signal: signalNumber(st.lastTermination.signal)} : {}),
          startedAt: st.lastTermination?.startedAt ?? null,
          finishedAt: st.lastTermination?.finishedAt ?? now(),
        },
      }
    : st.running
      ? {running: {startedAt: st.startedAt}}
      : waitingState()
  const lastState = st.lastTermination && !st.terminal
    ? {
        terminated: {
          exitCode: st.lastTermination.exitCode,
          reason: st.lastTermination.reason,
          startedAt: st.lastTermination.startedAt ?? null,
          finishedAt: st.lastTermination.finishedAt,
        },
      }
    : {}
  const containers = (pod.spec?.containers ?? []) as Container[]
  const containerStatuses = containers.map((c) => ({
    name: c.name,
    image: c.image ?? '',
    imageID: '',
    ...(st.pid ? {containerID: `mesh://${st.pid}`} : {}),
    ready,
    started: st.running && !st.terminal,
    restartCount: st.restartCount,
    state,
    lastState,
  }))
  return {
    phase,
    conditions,
    hostIP: '127.0.0.1',
    hostIPs: [{ip: '127.0.0.1'}],
    ...(st.podIP ? {podIP: st.podIP, podIPs: [{ip: st.podIP}]} : {}),
    startTime: prev.startTime ?? now(),
    containerStatuses,
    qosClass: 'BestEffort',
  }
}

const SIGNALS: Record<string, number> = {SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGTERM: 15}
const signalNumber = (s: string): number => SIGNALS[s] ?? 0
