// Runs the embedded cluster's controllers in meshd's process, on the store directly (like
// informers): one store watch feeds the work queues, and a periodic resync catches anything
// a missed event or a failed write left behind.
import type {KubeObject, ResourceType, Store, WatchEvent} from '../api/types.js'
import {DeploymentController} from './deployment.js'
import {EndpointsController} from './endpoints.js'
import {EventRecorder} from './events.js'
import {PodIpAllocator, ServiceIpAllocator} from './ipam.js'
import {Kubelet} from './kubelet.js'
import type {PodRuntime} from './pod-runtime.js'
import {WorkQueue} from './queue.js'
import {coreTypes, objectKey, sameType, splitKey, statusOf, type CoreTypes, type Logger} from './util.js'

export interface ControllerManagerOptions {
  store: Store
  runtime: PodRuntime
  /** `127.X.0.0/16`: pods get addresses in it, Services cluster IPs from 127.X.255.0/24 */
  podNetwork: string
  log?: Logger
  /** full resync period (default 10 s) */
  resyncMs?: number
  /** record Kubernetes Events for scaling and process deaths (default true) */
  events?: boolean
  /** pods launched at the same time (default 4) */
  launchConcurrency?: number
}

export class ControllerManager {
  readonly podIps: PodIpAllocator
  readonly serviceIps: ServiceIpAllocator
  private readonly t: CoreTypes
  private readonly log: Logger
  private readonly events?: EventRecorder
  private readonly deployments: DeploymentController
  private readonly endpoints: EndpointsController
  private readonly kubelet: Kubelet
  private readonly queues: {deploy: WorkQueue; pod: WorkQueue; svc: WorkQueue; ns: WorkQueue}
  private unwatch?: () => void
  private resyncTimer?: NodeJS.Timeout
  private lastPrune = 0
  private stopped = false

  constructor(private readonly o: ControllerManagerOptions) {
    this.log = o.log ?? (() => undefined)
    this.t = coreTypes(o.store)
    this.podIps = new PodIpAllocator(o.podNetwork)
    this.serviceIps = new ServiceIpAllocator(o.podNetwork)
    this.events = o.events === false ? undefined : new EventRecorder(o.store, 'mesh-controllers', this.log)
    this.deployments = new DeploymentController(o.store, this.events, this.log)
    this.endpoints = new EndpointsController(o.store, this.serviceIps)
    this.queues = {
      deploy: new WorkQueue('deployments', (k) => this.deployments.reconcile(k), this.log),
      pod: new WorkQueue('pods', (k) => this.kubelet.reconcile(k), this.log, o.launchConcurrency ?? 4),
      svc: new WorkQueue('endpoints', (k) => this.endpoints.reconcile(k), this.log),
      ns: new WorkQueue('namespaces', (k) => this.reconcileNamespace(k), this.log),
    }
    this.kubelet = new Kubelet({
      store: o.store,
      runtime: o.runtime,
      ips: this.podIps,
      events: this.events,
      log: this.log,
      enqueue: (k) => this.queues.pod.add(k),
      enqueueAfter: (k, ms) => this.queues.pod.addAfter(k, ms),
    })
  }

  start(): void {
    this.kubelet.reserveExisting()
    this.endpoints.reserveExisting()
    this.unwatch = this.o.store.watch(undefined, this.o.store.currentResourceVersion(), (type, ev) => this.route(type, ev))
    this.resyncAll()
    this.resyncTimer = setInterval(() => this.resyncAll(), this.o.resyncMs ?? 10_000)
    this.resyncTimer.unref()
  }

  /** Resolves when every queue stayed empty across a short pause (store writes land asynchronously). */
  async idle(settleMs = 20): Promise<void> {
    const qs = Object.values(this.queues)
    for (let i = 0; i < 500; i++) {
      await Promise.all(qs.map((q) => q.idle()))
      await new Promise((r) => setTimeout(r, settleMs))
      if (qs.every((q) => q.size() === 0)) return
    }
  }

  /** Stops the controllers and every pod's process; pods stay in the store. */
  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.unwatch?.()
    if (this.resyncTimer) clearInterval(this.resyncTimer)
    for (const q of Object.values(this.queues)) q.stop()
    await this.kubelet.shutdown()
  }

  private route(type: ResourceType, ev: WatchEvent): void {
    if (this.stopped) return
    const o = ev.object
    const key = objectKey(o.metadata.namespace, o.metadata.name)
    if (sameType(type, this.t.pod)) {
      this.queues.pod.add(key)
      const owner = this.deployments.ownerKeyOfPod(o)
      if (owner) this.queues.deploy.add(owner)
      for (const s of this.endpoints.serviceKeys(o.metadata.namespace)) this.queues.svc.add(s)
    } else if (sameType(type, this.t.deployment)) {
      this.queues.deploy.add(key)
    } else if (sameType(type, this.t.service)) {
      if (ev.type === 'DELETED') this.endpoints.released(o)
      this.queues.svc.add(key)
    } else if (sameType(type, this.t.endpoints)) {
      this.queues.svc.add(key)
    } else if (sameType(type, this.t.namespace)) {
      this.queues.ns.add(key)
      // the sidecar decision reads the namespace label: pods not yet admitted look again
      if (ev.type !== 'DELETED') for (const p of this.o.store.list(this.t.pod, o.metadata.name).items) if (!p.spec?.nodeName) this.queues.pod.add(objectKey(p.metadata.namespace, p.metadata.name))
    }
  }

  private resyncAll(): void {
    if (this.stopped) return
    const keys = (t: ResourceType) => this.o.store.list(t, undefined).items.map((x: KubeObject) => objectKey(x.metadata.namespace, x.metadata.name))
    for (const k of keys(this.t.namespace)) this.queues.ns.add(k)
    for (const k of keys(this.t.pod)) this.queues.pod.add(k)
    for (const k of keys(this.t.deployment)) this.queues.deploy.add(k)
    for (const k of keys(this.t.service)) this.queues.svc.add(k)
    for (const k of keys(this.t.endpoints)) this.queues.svc.add(k)
    if (this.events && Date.now() - this.lastPrune > 5 * 60_000) {
      this.lastPrune = Date.now()
      void this.events.prune().catch(() => undefined)
    }
  }

  /** Every namespace has a `default` ServiceAccount, as on Kubernetes. */
  private async reconcileNamespace(key: string): Promise<void> {
    const {name} = splitKey(key)
    const ns = this.o.store.get(this.t.namespace, undefined, name)
    if (!ns || ns.metadata.deletionTimestamp) return
    if (this.o.store.get(this.t.serviceAccount, name, 'default')) return
    try {
      await this.o.store.create(this.t.serviceAccount, {apiVersion: 'v1', kind: 'ServiceAccount', metadata: {name: 'default', namespace: name}})
    } catch (e) {
      const s = statusOf(e)
      if (s !== 409 && s !== 404) throw e
    }
  }
}
