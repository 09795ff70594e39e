// Deployment → pods, without ReplicaSets (ADR 0030): the controller owns its pods directly,
// names them `<deployment>-<pod-template-hash>-<suffix>`, scales them, replaces them on a
// template change with maxSurge/maxUnavailable, and reports status like apps/v1 does.
import type {KubeObject, Store} from '../api/types.js'
import {canonical, clone} from '../api/util.js'
import type {EventRecorder} from './events.js'
import {
  controllerOf,
  coreTypes,
  intOrPercent,
  isDeleting,
  isPodReady,
  isPodTerminal,
  mergeConditions,
  objectKey,
  podTemplateHash,
  randomSuffix,
  selectorMatches,
  splitKey,
  statusOf,
  type Condition,
  type CoreTypes,
  type LabelSelector,
  type Logger,
} from './util.js'

export const POD_TEMPLATE_HASH = 'pod-template-hash'

interface Plan {
  create: number
  remove: KubeObject[]
}

/** Which pods to delete first when scaling down: not ready, then not yet running, then the newest. */
export function scaleDownOrder(pods: KubeObject[]): KubeObject[] {
  const rank = (p: KubeObject) => (isPodReady(p) ? 2 : (p.status as {podIP?: string} | undefined)?.podIP ? 1 : 0)
  return [...pods].sort((a, b) => {
    const r = rank(a) - rank(b)
    if (r !== 0) return r
    const ta = String(a.metadata.creationTimestamp ?? '')
    const tb = String(b.metadata.creationTimestamp ?? '')
    if (ta !== tb) return ta < tb ? 1 : -1
    return a.metadata.name < b.metadata.name ? 1 : -1
  })
}

export interface RolloutInput {
  replicas: number
  maxSurge: number
  maxUnavailable: number
  recreate: boolean
  current: KubeObject[]
  old: KubeObject[]
}

/** One step of a rollout: how many new-template pods to create and which pods to delete. */
export function planRollout(i: RolloutInput): Plan {
  const {replicas: r, current, old} = i
  if (i.recreate && old.length > 0) return {create: 0, remove: old}
  if (old.length === 0) {
    if (current.length < r) return {create: r - current.length, remove: []}
    return {create: 0, remove: scaleDownOrder(current).slice(0, current.length - r)}
  }
  let surge = i.maxSurge
  const unavailable = i.maxUnavailable
  if (surge === 0 && unavailable === 0) surge = 1
  const remove: KubeObject[] = []
  if (current.length > r) remove.push(...scaleDownOrder(current).slice(0, current.length - r))
  const keptCurrent = current.filter((p) => !remove.includes(p))
  const create = Math.max(0, Math.min(r - keptCurrent.length, r + surge - (keptCurrent.length + old.length)))
  // old pods that are not ready cost no availability; ready ones go while enough stay ready
  const minAvailable = Math.max(0, r - unavailable)
  let ready = keptCurrent.filter(isPodReady).length + old.filter(isPodReady).length
  for (const p of scaleDownOrder(old)) {
    if (!isPodReady(p)) remove.push(p)
    else if (ready - 1 >= minAvailable) {
      remove.push(p)
      ready--
    }
  }
  return {create, remove}
}

export class DeploymentController {
  private readonly t: CoreTypes

  constructor(
    private readonly store: Store,
    private readonly events: EventRecorder | undefined,
    private readonly log: Logger,
  ) {
    this.t = coreTypes(store)
  }

  /** Keys of deployments to reconcile when a pod changes. */
  ownerKeyOfPod(pod: KubeObject): string | undefined {
    const ref = controllerOf(pod)
    return ref && ref.kind === 'Deployment' ? objectKey(pod.metadata.namespace, ref.name) : undefined
  }

  async reconcile(key: string): Promise<void> {
    const {namespace, name} = splitKey(key)
    const d = this.store.get(this.t.deployment, namespace, name)
    if (!d || isDeleting(d)) return // the store deletes owned pods with the deployment
    const spec = (d.spec ?? {}) as {
      replicas?: number
      selector?: LabelSelector
      template?: {metadata?: {labels?: Record<string, string>; annotations?: Record<string, string>}; spec?: Record<string, unknown>}
      strategy?: {type?: string; rollingUpdate?: {maxSurge?: unknown; maxUnavailable?: unknown}}
      paused?: boolean
    }
    const replicas = typeof spec.replicas === 'number' ? Math.max(0, spec.replicas) : 1
    const hash = podTemplateHash(spec.template)
    const owned = this.store
      .list(this.t.pod, namespace)
      .items.filter((p) => controllerOf(p)?.uid === d.metadata.uid && !isDeleting(p))
    // pods whose process died are deleted by the pod lifecycle; until then they count for nothing
    const active = owned.filter((p) => !isPodTerminal(p))
    const current = active.filter((p) => p.metadata.labels?.[POD_TEMPLATE_HASH] === hash)
    const old = active.filter((p) => p.metadata.labels?.[POD_TEMPLATE_HASH] !== hash)

    const ru = spec.strategy?.rollingUpdate
    const plan = spec.paused
      ? {create: 0, remove: []}
      : planRollout({
          replicas,
          maxSurge: intOrPercent(ru?.maxSurge, replicas, true, '25%'),
          maxUnavailable: intOrPercent(ru?.maxUnavailable, replicas, false, '25%'),
          recreate: spec.strategy?.type === 'Recreate',
          current,
          old,
        })

    if (!selectorMatches(spec.selector, spec.template?.metadata?.labels)) {
      // the API would refuse this on a real cluster; here we simply create nothing
      this.log(`deployment ${key}: spec.selector does not match spec.template.metadata.labels; no pods created`)
      plan.create = 0
    }

    for (const p of plan.remove) {
      try {
        await this.store.delete(this.t.pod, namespace, p.metadata.name)
        this.events?.record(d, 'Normal', 'SuccessfulDelete', `Deleted pod: ${p.metadata.name}`)
      } catch (e) {
        if (statusOf(e) !== 404) throw e
      }
    }
    const created: KubeObject[] = []
    for (let i = 0; i < plan.create; i++) {
      const pod = await this.createPod(d, hash)
      created.push(pod)
      this.events?.record(d, 'Normal', 'SuccessfulCreate', `Created pod: ${pod.metadata.name}`)
    }

    const removed = new Set(plan.remove.map((p) => p.metadata.name))
    const after = [...active.filter((p) => !removed.has(p.metadata.name)), ...created]
    await this.writeStatus(d, replicas, hash, after)
  }

  private async createPod(d: KubeObject, hash: string): Promise<KubeObject> {
    const tmpl = clone(d.spec?.template ?? {}) as {metadata?: Record<string, unknown>; spec?: Record<string, unknown>}
    const meta = (tmpl.metadata ?? {}) as {labels?: Record<string, string>; annotations?: Record<string, string>}
    const base = `${d.metadata.name}-${hash}`
    for (let attempt = 0; ; attempt++) {
      const pod: KubeObject = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: `${base}-${randomSuffix()}`,
          namespace: d.metadata.namespace,
          labels: {...(meta.labels ?? {}), [POD_TEMPLATE_HASH]: hash},
          ...(meta.annotations ? {annotations: meta.annotations} : {}),
          ownerReferences: [
            {apiVersion: 'apps/v1', kind: 'Deployment', name: d.metadata.name, uid: d.metadata.uid!, controller: true, blockOwnerDeletion: true},
          ],
        },
        spec: withPodDefaults(tmpl.spec ?? {}),
      }
      try {
        return await this.store.create(this.t.pod, pod)
      } catch (e) {
        if (statusOf(e) === 409 && attempt < 5) continue // name taken: another suffix
        throw e
      }
    }
  }

  private async writeStatus(d: KubeObject, replicas: number, hash: string, pods: KubeObject[]): Promise<void> {
    const ready = pods.filter(isPodReady).length
    const updated = pods.filter((p) => p.metadata.labels?.[POD_TEMPLATE_HASH] === hash).length
    const updatedReady = pods.filter((p) => p.metadata.labels?.[POD_TEMPLATE_HASH] === hash && isPodReady(p)).length
    const available = ready
    const complete = updated === replicas && pods.length === replicas && updatedReady === replicas
    const prev = d.status as {conditions?: Condition[]} | undefined
    const conditions = mergeConditions(
      prev?.conditions,
      [
        available >= replicas
          ? {type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: `${available} of ${replicas} replicas available`}
          : {type: 'Available', status: 'False', reason: 'MinimumReplicasUnavailable', message: `${available} of ${replicas} replicas available`},
        complete
          ? {type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable', message: `pods with template ${hash} are available`}
          : {type: 'Progressing', status: 'True', reason: 'ReplicaSetUpdated', message: `rolling out pods with template ${hash}: ${updatedReady} of ${replicas} ready`},
      ],
      true,
    )
    // zero counts are omitted, as apps/v1 does
    const status: Record<string, unknown> = {
      observedGeneration: d.metadata.generation,
      ...(pods.length ? {replicas: pods.length} : {}),
      ...(updated ? {updatedReplicas: updated} : {}),
      ...(ready ? {readyReplicas: ready} : {}),
      ...(available ? {availableReplicas: available} : {}),
      ...(replicas - available > 0 ? {unavailableReplicas: replicas - available} : {}),
      conditions,
    }
    if (canonical(status) === canonical(d.status ?? {})) return
    try {
      await this.store.updateStatus(this.t.deployment, {...d, metadata: {...d.metadata, resourceVersion: undefined}, status})
    } catch (e) {
      if (statusOf(e) !== 404) throw e
    }
  }
}

/** The defaults the API server fills in on a pod spec. */
export function withPodDefaults(spec: Record<string, unknown>): Record<string, unknown> {
  const out = clone(spec)
  out.restartPolicy ??= 'Always'
  out.dnsPolicy ??= 'ClusterFirst'
  out.schedulerName ??= 'default-scheduler'
  out.securityContext ??= {}
  const sa = (out.serviceAccountName as string | undefined) ?? (out.serviceAccount as string | undefined) ?? 'default'
  out.serviceAccountName = sa
  out.serviceAccount = sa
  if (Array.isArray(out.containers)) {
    out.containers = (out.containers as Array<Record<string, unknown>>).map((c) => ({
      terminationMessagePath: '/dev/termination-log',
      terminationMessagePolicy: 'File',
      imagePullPolicy: String(c.image ?? '').endsWith(':latest') || !String(c.image ?? '').includes(':') ? 'Always' : 'IfNotPresent',
      resources: {},
      ...c,
      ...(Array.isArray(c.ports) ? {ports: (c.ports as Array<Record<string, unknown>>).map((p) => ({protocol: 'TCP', ...p}))} : {}),
    }))
  }
  return out
}
