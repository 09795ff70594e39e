// `mesh lab reset`: the lab back to its starting point — the manifests (faulty replica at 0),
// the Istio baseline (100/0, namespace PERMISSIVE, baseline DestinationRule and Gateway), no
// mesh-managed AuthorizationPolicies and no other mesh-managed PeerAuthentications — then wait
// for the faulty pods to go and the proxies to acknowledge. Objects mesh does not manage are
// never deleted; they are reported.
import {join} from 'node:path'
import type {KubeObject, ObjectRef} from '../cluster/client.js'
import {labFilesRoot, loadManifests} from '../cluster/lab.js'
import {labBaseline} from '../mesh/baseline.js'
import {LAB} from '../mesh/lab.js'
import {SECURITY_API} from '../mesh/security.js'
import {applyAndSync, locked, waitForProxies, type ChangeOptions, type ChangeReport} from './change.js'
import type {Lab} from './open-target.js'
import {readMtls, readPolicies, type PeerAuthInfo, type PolicyInfo} from './state.js'

export interface ResetOptions extends ChangeOptions {
  /** how long to wait for the lab's Deployments to roll out and the faulty pods to go, default 60 s */
  podTimeoutMs?: number
}

export interface ResetResult extends ChangeReport {
  deletedPolicies: Array<{namespace: string; name: string}>
  deletedPeerAuthentications: Array<{namespace: string; name: string}>
  /** objects mesh does not manage, left as they were */
  kept: {policies: PolicyInfo[]; peerAuthentications: PeerAuthInfo[]}
  elapsedMs: number
}

/** Everything `lab reset` applies, in apply order. */
export function baselineObjects(): KubeObject[] {
  const manifests = loadManifests(join(labFilesRoot(), 'manifests'))
  return [...manifests, ...(labBaseline() as unknown as KubeObject[])]
}

const BASELINE_PA = `${LAB.namespace}/default`

export async function resetLab(lab: Lab, opts: ResetOptions = {}): Promise<ResetResult> {
  const started = Date.now()
  const objects = baselineObjects()
  return locked(lab, opts, async () => {
    let deletes: ObjectRef[] = []
    let kept: ResetResult['kept'] = {policies: [], peerAuthentications: []}
    if (lab.up) {
      const [policies, mtls] = await Promise.all([readPolicies(lab.target.client), readMtls(lab.target.client)])
      const pas = mtls.policies.filter((p) => `${p.namespace}/${p.name}` !== BASELINE_PA)
      deletes = [
        ...policies.filter((p) => p.managed).map((p) => ({apiVersion: SECURITY_API, kind: 'AuthorizationPolicy', name: p.name, namespace: p.namespace})),
        ...pas.filter((p) => p.managed).map((p) => ({apiVersion: SECURITY_API, kind: 'PeerAuthentication', name: p.name, namespace: p.namespace})),
      ]
      kept = {policies: policies.filter((p) => !p.managed), peerAuthentications: pas.filter((p) => !p.managed)}
    }
    const report = await applyAndSync(lab, objects, opts, deletes)
    if (!opts.dryRun) {
      await waitForWorkloads(lab, objects, opts.podTimeoutMs ?? 60_000)
      // new or replaced pods change the endpoints the proxies must know: wait for that config too
      report.sync = await waitForProxies(lab, undefined, opts)
    }
    const byKind = (kind: string) => report.changes.filter((c) => c.kind === kind && c.action === 'deleted').map((c) => ({namespace: c.namespace ?? '', name: c.name}))
    return {
      ...report,
      deletedPolicies: byKind('AuthorizationPolicy'),
      deletedPeerAuthentications: byKind('PeerAuthentication'),
      kept,
      elapsedMs: Date.now() - started,
    }
  })
}

const rolledOut = (d: KubeObject | undefined): boolean => {
  if (!d) return false
  const want = (d.spec?.replicas as number | undefined) ?? 1
  const st = (d.status ?? {}) as {readyReplicas?: number; observedGeneration?: number; replicas?: number}
  return (st.observedGeneration ?? 0) >= (d.metadata.generation ?? 0) && (st.readyReplicas ?? 0) >= want && (st.replicas ?? 0) <= want
}

/** Every Deployment of the baseline rolled out (Ready replicas as asked) and the faulty replica's pods gone. */
async function waitForWorkloads(lab: Lab, objects: KubeObject[], timeoutMs: number): Promise<void> {
  const client = lab.target.client
  const deployments = objects.filter((o) => o.kind === 'Deployment')
  for (const namespace of [...new Set(deployments.map((d) => d.metadata.namespace ?? 'default'))]) {
    const names = deployments.filter((d) => (d.metadata.namespace ?? 'default') === namespace).map((d) => d.metadata.name)
    await client.waitForList('apps/v1', 'Deployment', {namespace}, (items) => names.every((n) => rolledOut(items.find((i) => i.metadata.name === n))), {
      timeoutMs,
      description: `the lab Deployments in ${namespace} (${names.join(', ')}) to be ready`,
    })
  }
  await client.waitForList('v1', 'Pod', {namespace: LAB.namespace, labelSelector: `${LAB.faultyLabel}=true`}, (items) => items.length === 0, {
    timeoutMs,
    description: `the faulty replica's pods in ${LAB.namespace} to terminate`,
  })
}
