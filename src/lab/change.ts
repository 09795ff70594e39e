// The one way a lab command changes the cluster: guard (mesh only overwrites or deletes what it
// manages), server-side apply as field manager `mesh`, then wait until the proxies have it.
// Callers hold the lab lock (withLabLock) around read → change → wait.
import type {KubeObject, ObjectRef} from '../cluster/client.js'
import {FIELD_MANAGER, assertWritable, describeObject} from '../cluster/guard.js'
import {withLabLock} from '../cluster/lock.js'
import {EXIT, MeshError} from '../lib/errors.js'
import {dumpYamlObjects} from '../mesh/yaml.js'
import type {Lab} from './open-target.js'

export interface ChangeOptions {
  /** print/validate only: server-side dry run when the lab is up, nothing stored */
  dryRun?: boolean
  /** take over fields another field manager owns (kubectl's --force-conflicts) */
  forceConflicts?: boolean
  /** how long to wait for the proxies, default 30 s (then MESH_SYNC_TIMEOUT, 69) */
  syncTimeoutMs?: number
  /** how long to wait for another mesh command holding the lab lock, default 30 s */
  lockWaitMs?: number
}

export type ObjectAction = 'created' | 'configured' | 'unchanged' | 'deleted' | 'absent'

export interface ObjectChange {
  apiVersion: string
  kind: string
  name: string
  namespace?: string
  action: ObjectAction
  /** resourceVersion after the change (absent for deletes and dry runs) */
  resourceVersion?: string
}

export interface SyncSummary {
  synced: boolean
  /** embedded: the store version waited for; real: 0 */
  generation: number
  proxies: number
  /** how long the proxies took to acknowledge */
  waitedMs: number
}

export interface ChangeReport {
  dryRun: boolean
  /** a dry run the API server validated (false: the lab was down, client-side checks only) */
  serverValidated: boolean
  /** the objects applied (or that would be), as YAML */
  yaml: string
  /** per object (empty for a dry run with the lab down: the server was not asked) */
  changes: ObjectChange[]
  /** something was created, configured or deleted */
  changed: boolean
  /** absent for dry runs */
  sync?: SyncSummary
}

const refOf = (o: KubeObject): ObjectRef => ({
  apiVersion: o.apiVersion,
  kind: o.kind,
  name: o.metadata.name,
  ...(o.metadata.namespace ? {namespace: o.metadata.namespace} : {}),
})

/** Run fn holding the lab lock (not taken for dry runs, which change nothing). */
export function locked<T>(lab: Lab, opts: ChangeOptions, fn: () => Promise<T>): Promise<T> {
  if (opts.dryRun) return fn()
  return withLabLock(lab.home, fn, {...(opts.lockWaitMs !== undefined ? {waitMs: opts.lockWaitMs} : {})})
}

/** Wait until every proxy acknowledged the config holding `generation` (or everything so far). */
export async function waitForProxies(lab: Lab, generation: number | undefined, opts: ChangeOptions = {}): Promise<SyncSummary> {
  const r = await lab.target.waitForSync({...(generation ? {generation} : {}), timeoutMs: opts.syncTimeoutMs ?? 30_000})
  return {synced: r.synced, generation: r.generation, proxies: r.proxies.length, waitedMs: r.waitedMs}
}

/**
 * Apply objects in order, refusing to overwrite objects mesh does not manage. A dry run with the
 * lab down returns the YAML with serverValidated false. No sync wait here (see applyAndSync).
 */
export async function applyObjects(lab: Lab, objects: KubeObject[], opts: ChangeOptions = {}): Promise<{changes: ObjectChange[]; serverValidated: boolean; maxVersion: number}> {
  // lab down: what the server would do is unknown, so no per-object actions are claimed
  if (opts.dryRun && !lab.up) return {changes: [], serverValidated: false, maxVersion: 0}
  const client = lab.target.client
  // read once: the guard checks what is there, and apply tells created/configured/unchanged from it
  const current = await Promise.all(objects.map((o) => client.get(refOf(o))))
  for (const c of current) assertWritable(c, 'overwrite')
  const results = await client.apply(objects, {fieldManager: FIELD_MANAGER, force: opts.forceConflicts ?? false, dryRun: opts.dryRun ?? false, current})
  let maxVersion = 0
  const changes = results.map((r) => {
    const rv = r.object?.metadata?.resourceVersion
    if (rv && /^\d+$/.test(rv)) maxVersion = Math.max(maxVersion, Number(rv))
    return {
      apiVersion: r.apiVersion,
      kind: r.kind,
      name: r.name,
      ...(r.namespace ? {namespace: r.namespace} : {}),
      action: r.action,
      ...(!opts.dryRun && rv ? {resourceVersion: rv} : {}),
    } satisfies ObjectChange
  })
  return {changes, serverValidated: true, maxVersion}
}

/**
 * Delete objects mesh manages; objects without the managed-by label are refused
 * (MESH_NOT_MANAGED). Missing objects are reported as `absent`.
 */
export async function deleteObjects(lab: Lab, refs: ObjectRef[], opts: ChangeOptions = {}): Promise<ObjectChange[]> {
  if (opts.dryRun && !lab.up) return []
  const client = lab.target.client
  const out: ObjectChange[] = []
  for (const ref of refs) {
    const existing = await client.get(ref)
    if (!existing) {
      out.push({...ref, action: 'absent'})
      continue
    }
    assertWritable(existing, 'delete')
    const gone = await client.delete(ref, {dryRun: opts.dryRun ?? false})
    out.push({...ref, action: gone ? 'deleted' : 'absent'})
  }
  return out
}

/** Apply (and delete), then wait for the proxies. The caller holds the lock. */
export async function applyAndSync(lab: Lab, objects: KubeObject[], opts: ChangeOptions = {}, deletes: ObjectRef[] = []): Promise<ChangeReport> {
  const applied = await applyObjects(lab, objects, opts)
  const deleted = deletes.length ? await deleteObjects(lab, deletes, opts) : []
  const changes = [...applied.changes, ...deleted]
  const changed = changes.some((c) => c.action !== 'unchanged' && c.action !== 'absent')
  const report: ChangeReport = {dryRun: Boolean(opts.dryRun), serverValidated: applied.serverValidated, yaml: dumpYamlObjects(objects), changes, changed}
  if (opts.dryRun) return report
  // deletes have no resourceVersion to wait for: then wait for everything written so far
  report.sync = await waitForProxies(lab, deleted.length ? undefined : applied.maxVersion || undefined, opts)
  return report
}

/** A namespace the change goes to must exist; the lab's own namespace missing means the lab is not set up. */
export async function requireNamespace(lab: Lab, namespace: string, labNamespaces: readonly string[]): Promise<void> {
  if (!lab.up) return
  const ns = await lab.target.client.get({apiVersion: 'v1', kind: 'Namespace', name: namespace})
  if (ns) return
  if (labNamespaces.includes(namespace)) {
    throw new MeshError('MESH_LAB_NOT_READY', `namespace ${namespace} does not exist on context ${lab.target.context}: the lab's workloads are not deployed`, {
      suggestion: 'Run mesh lab up (or mesh lab reset) to deploy the lab.',
      exit: EXIT.unavailable,
      field: 'namespace',
    })
  }
  throw new MeshError('MESH_NAMESPACE_NOT_FOUND', `namespace "${namespace}" does not exist on context ${lab.target.context}`, {
    suggestion: 'Give an existing namespace with --namespace (kubectl get namespaces lists them).',
    exit: EXIT.invalidInput,
    field: 'namespace',
  })
}

export const describeChange = (c: ObjectChange): string => `${describeObject({kind: c.kind, metadata: {name: c.name, namespace: c.namespace}})} ${c.action}`
