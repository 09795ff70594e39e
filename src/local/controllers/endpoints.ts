// Service → cluster IP and Endpoints. Ready pods selected by the Service go to `addresses`,
// the others (with an IP) to `notReadyAddresses`; named targetPorts resolve per pod, so pods
// that name a port differently land in different subsets, as on Kubernetes.
import type {KubeObject, Store} from '../api/types.js'
import {canonical, clone} from '../api/util.js'
import type {ServiceIpAllocator} from './ipam.js'
import {NODE_NAME, coreTypes, isDeleting, isPodReady, isPodTerminal, mapSelects, splitKey, statusOf, type CoreTypes} from './util.js'

interface ServicePortSpec {
  name?: string
  port: number
  targetPort?: number | string
  protocol?: string
}

interface ContainerPort {
  containerPort: number
  name?: string
  protocol?: string
}

/** The container port a Service port sends to on this pod; undefined when a named port is missing. */
export function resolveTargetPort(sp: ServicePortSpec, pod: KubeObject | undefined): number | undefined {
  const tp = sp.targetPort
  if (tp === undefined || tp === null || tp === '' || tp === 0) return sp.port
  if (typeof tp === 'number') return tp
  if (/^\d+$/.test(tp)) return Number(tp)
  const containers = (pod?.spec?.containers ?? []) as Array<{ports?: ContainerPort[]}>
  for (const c of containers) {
    for (const p of c.ports ?? []) if (p.name === tp && (p.protocol ?? 'TCP') === (sp.protocol ?? 'TCP')) return p.containerPort
  }
  return undefined
}

interface Address {
  ip: string
  nodeName: string
  targetRef: {kind: 'Pod'; namespace: string; name: string; uid: string}
}

interface Subset {
  addresses?: Address[]
  notReadyAddresses?: Address[]
  ports: Array<{name?: string; port: number; protocol: string}>
}

/** The Endpoints subsets for a Service and the pods in its namespace. */
export function endpointSubsets(svc: KubeObject, pods: KubeObject[]): Subset[] {
  const ports = (svc.spec?.ports ?? []) as ServicePortSpec[]
  const selector = svc.spec?.selector as Record<string, string> | undefined
  const groups = new Map<string, Subset>()
  const publishNotReady = svc.spec?.publishNotReadyAddresses === true
  for (const pod of pods) {
    if (!mapSelects(selector, pod.metadata.labels) || isDeleting(pod) || isPodTerminal(pod)) continue
    const ip = (pod.status as {podIP?: string} | undefined)?.podIP
    if (!ip) continue
    const resolved = ports
      .map((sp) => ({sp, port: resolveTargetPort(sp, pod)}))
      .filter((x): x is {sp: ServicePortSpec; port: number} => x.port !== undefined)
      .map(({sp, port}) => ({...(sp.name ? {name: sp.name} : {}), port, protocol: sp.protocol ?? 'TCP'}))
    if (ports.length > 0 && resolved.length === 0) continue
    const key = canonical(resolved)
    let subset = groups.get(key)
    if (!subset) groups.set(key, (subset = {ports: resolved}))
    const addr: Address = {
      ip,
      nodeName: NODE_NAME,
      targetRef: {kind: 'Pod', namespace: pod.metadata.namespace ?? 'default', name: pod.metadata.name, uid: pod.metadata.uid ?? ''},
    }
    if (publishNotReady || isPodReady(pod)) (subset.addresses ??= []).push(addr)
    else (subset.notReadyAddresses ??= []).push(addr)
  }
  const byIp = (a: Address, b: Address) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0)
  return [...groups.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([, s]) => ({
      ...(s.addresses ? {addresses: s.addresses.sort(byIp)} : {}),
      ...(s.notReadyAddresses ? {notReadyAddresses: s.notReadyAddresses.sort(byIp)} : {}),
      ports: s.ports,
    }))
}

export class EndpointsController {
  private readonly t: CoreTypes

  constructor(
    private readonly store: Store,
    private readonly ips: ServiceIpAllocator,
  ) {
    this.t = coreTypes(store)
  }

  /** Claims the cluster IPs Services already have (after a restart). */
  reserveExisting(): void {
    for (const s of this.store.list(this.t.service, undefined).items) {
      const ip = s.spec?.clusterIP
      if (typeof ip === 'string' && this.ips.contains(ip)) this.ips.reserve(ip)
    }
  }

  /** Service keys in a namespace, to reconcile when one of its pods changes. */
  serviceKeys(namespace: string | undefined): string[] {
    return this.store.list(this.t.service, namespace).items.map((s) => `${s.metadata.namespace}/${s.metadata.name}`)
  }

  async reconcile(key: string): Promise<void> {
    const {namespace, name} = splitKey(key)
    const svc = this.store.get(this.t.service, namespace, name)
    const ep = this.store.get(this.t.endpoints, namespace, name)
    if (!svc) {
      if (ep) await this.store.delete(this.t.endpoints, namespace, name).catch((e) => ignore404(e))
      return
    }
    const current = await this.ensureDefaults(svc)
    if (!current) return
    const selector = current.spec?.selector as Record<string, string> | undefined
    // a Service without a selector has hand-made Endpoints: leave them alone
    if (!selector || Object.keys(selector).length === 0) return
    const subsets = endpointSubsets(current, this.store.list(this.t.pod, namespace).items)
    const labels = {...(current.metadata.labels ?? {})}
    const body: KubeObject = {
      apiVersion: 'v1',
      kind: 'Endpoints',
      metadata: {name, namespace, ...(Object.keys(labels).length ? {labels} : {})},
      ...(subsets.length ? {subsets} : {}),
    }
    if (!ep) {
      // a 409 (created meanwhile) comes back through the queue's retry, which updates instead
      await this.store.create(this.t.endpoints, body)
      return
    }
    if (canonical(ep.subsets ?? []) === canonical(subsets) && canonical(ep.metadata.labels ?? {}) === canonical(labels)) return
    const next = clone(ep)
    if (subsets.length) next.subsets = subsets
    else delete next.subsets
    if (Object.keys(labels).length) next.metadata.labels = labels
    else delete next.metadata.labels
    await this.store.update(this.t.endpoints, next)
  }

  /** Fills what the API server defaults on a Service: cluster IP, type, port protocol and targetPort. */
  private async ensureDefaults(svc: KubeObject): Promise<KubeObject | undefined> {
    const spec = (svc.spec ?? {}) as Record<string, unknown>
    const type = (spec.type as string | undefined) ?? 'ClusterIP'
    const next = clone(svc)
    const ns = (next.spec ??= {}) as Record<string, unknown>
    ns.type = type
    ns.sessionAffinity ??= 'None'
    if (Array.isArray(ns.ports)) {
      ns.ports = (ns.ports as ServicePortSpec[]).map((p) => ({...p, protocol: p.protocol ?? 'TCP', targetPort: p.targetPort ?? p.port}))
    }
    let allocated: string | undefined
    if (type !== 'ExternalName' && (ns.clusterIP === undefined || ns.clusterIP === '')) {
      allocated = this.ips.allocate()
      ns.clusterIP = allocated
      ns.clusterIPs = [allocated]
    }
    if (type !== 'ExternalName') {
      ns.ipFamilies ??= ['IPv4']
      ns.ipFamilyPolicy ??= 'SingleStack'
      ns.internalTrafficPolicy ??= 'Cluster'
    }
    if (canonical(next) === canonical(svc)) return svc
    try {
      return await this.store.update(this.t.service, next)
    } catch (e) {
      if (allocated) this.ips.release(allocated)
      if (statusOf(e) === 404) return undefined
      throw e
    }
  }

  /** A deleted Service gives its cluster IP back. */
  released(svc: KubeObject): void {
    const ip = svc.spec?.clusterIP
    if (typeof ip === 'string' && this.ips.contains(ip)) this.ips.release(ip)
  }
}

function ignore404(e: unknown): void {
  if (statusOf(e) !== 404) throw e
}
