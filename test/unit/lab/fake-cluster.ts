// An in-memory cluster behind the Target interface for the lab library's unit tests: an object
// store with the KubeClient methods src/lab uses (apply, get, list, delete, waitForList), a
// resourceVersion counter, and a record of every call and sync wait.
import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import type {ApplyOptions, ApplyResult, DeleteOptions, KubeClient, KubeObject, ListQuery, ObjectRef, WaitOptions} from '../../../src/cluster/client.js'
import type {ProxySyncStatus, SyncResult, Target, WaitForSyncOptions} from '../../../src/cluster/target.js'
import {EXIT, MeshError} from '../../../src/lib/errors.js'
import {labFor, type Lab} from '../../../src/lab/open-target.js'

const key = (r: {kind: string; namespace?: string; name: string}) => `${r.kind}/${r.namespace ?? ''}/${r.name}`

function matchesSelector(labels: Record<string, string> | undefined, selector?: string): boolean {
  if (!selector) return true
  return selector.split(',').every((term) => {
    const t = term.trim()
    const ne = t.indexOf('!=')
    if (ne > 0) return (labels ?? {})[t.slice(0, ne)] !== t.slice(ne + 2)
    const eq = t.indexOf('=')
    if (eq > 0) return (labels ?? {})[t.slice(0, eq)] === t.slice(eq + 1)
    return (labels ?? {})[t] !== undefined
  })
}

export interface ApplyCall {
  objects: KubeObject[]
  opts: ApplyOptions
}

export class FakeClient {
  readonly objects = new Map<string, KubeObject>()
  readonly applyCalls: ApplyCall[] = []
  readonly deleteCalls: Array<{ref: ObjectRef; opts: DeleteOptions}> = []
  rv = 100
  /** ms each apply takes (lets concurrency tests interleave) */
  applyDelayMs = 0
  /** called after each stored apply/delete, e.g. to let controllers react */
  onWrite?: (obj: KubeObject, type: 'apply' | 'delete') => void

  seed(...objs: KubeObject[]): this {
    for (const o of objs) this.objects.set(key({kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name}), {...structuredClone(o), metadata: {...structuredClone(o.metadata), resourceVersion: String(++this.rv), creationTimestamp: new Date(Date.now() + this.rv).toISOString()}})
    return this
  }

  async apply(objects: KubeObject | KubeObject[], opts: ApplyOptions = {}): Promise<ApplyResult[]> {
    const list = Array.isArray(objects) ? objects : [objects]
    this.applyCalls.push({objects: structuredClone(list), opts: {...opts}})
    const out: ApplyResult[] = []
    for (const o of list) {
      if (this.applyDelayMs) await new Promise((r) => setTimeout(r, this.applyDelayMs))
      const k = key({kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name})
      const before = this.objects.get(k)
      const merged: KubeObject = {...structuredClone(o), metadata: {...(before?.metadata ?? {}), ...structuredClone(o.metadata)}, ...(before?.status ? {status: before.status} : {})}
      const same = before && JSON.stringify({...before, metadata: {...before.metadata, resourceVersion: undefined, creationTimestamp: undefined}}) === JSON.stringify({...merged, metadata: {...merged.metadata, resourceVersion: undefined, creationTimestamp: undefined}})
      const action: ApplyResult['action'] = !before ? 'created' : same ? 'unchanged' : 'configured'
      if (opts.dryRun) {
        out.push({apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, namespace: o.metadata.namespace, action, object: merged})
        continue
      }
      if (action !== 'unchanged') {
        merged.metadata.resourceVersion = String(++this.rv)
        merged.metadata.creationTimestamp ??= new Date().toISOString()
        this.objects.set(k, merged)
        this.onWrite?.(merged, 'apply')
      }
      out.push({apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, namespace: o.metadata.namespace, action, object: structuredClone(this.objects.get(k)!)})
    }
    return out
  }

  async get<T extends KubeObject = KubeObject>(ref: ObjectRef): Promise<T | undefined> {
    const o = this.objects.get(key(ref))
    return o ? (structuredClone(o) as T) : undefined
  }

  async list<T extends KubeObject = KubeObject>(_apiVersion: string, kind: string, query: ListQuery = {}): Promise<T[]> {
    return [...this.objects.values()]
      .filter((o) => o.kind === kind && (!query.namespace || o.metadata.namespace === query.namespace) && matchesSelector(o.metadata.labels, query.labelSelector))
      .map((o) => structuredClone(o) as T)
  }

  async delete(ref: ObjectRef, opts: DeleteOptions = {}): Promise<boolean> {
    this.deleteCalls.push({ref, opts})
    const k = key(ref)
    const o = this.objects.get(k)
    if (!o) return false
    if (!opts.dryRun) {
      this.objects.delete(k)
      this.rv++
      this.onWrite?.(o, 'delete')
    }
    return true
  }

  async waitForList(apiVersion: string, kind: string, query: ListQuery, test: (items: KubeObject[]) => boolean, opts: WaitOptions = {}): Promise<KubeObject[]> {
    const deadline = Date.now() + (opts.timeoutMs ?? 1000)
    for (;;) {
      const items = await this.list(apiVersion, kind, query)
      if (test(items)) return items
      if (Date.now() > deadline) throw new MeshError('MESH_WAIT_TIMEOUT', `timed out waiting for ${opts.description ?? kind}`, {exit: EXIT.unavailable})
      await new Promise((r) => setTimeout(r, 5))
    }
  }

  /** resourceVersion of every stored object, to show "nothing changed" */
  versions(): Record<string, string> {
    return Object.fromEntries([...this.objects.entries()].map(([k, o]) => [k, o.metadata.resourceVersion ?? '']))
  }

  find(kind: string, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.objects.get(key({kind, namespace, name}))
  }
}

export class FakeTarget implements Target {
  readonly kind: 'embedded' | 'real'
  readonly context: string
  readonly kubeconfigPath = '/dev/null'
  readonly fake = new FakeClient()
  readonly syncCalls: WaitForSyncOptions[] = []
  proxies: ProxySyncStatus[] = [{proxy: 'istio-ingressgateway.istio-system', kind: 'gateway', sent: 1, acked: 1, state: 'SYNCED'}]
  ingress = 'http://127.0.0.1:9'

  constructor(opts: {kind?: 'embedded' | 'real'; context?: string} = {}) {
    this.kind = opts.kind ?? 'embedded'
    this.context = opts.context ?? 'mesh-local'
  }

  get client(): KubeClient {
    return this.fake as unknown as KubeClient
  }

  async ingressUrl(): Promise<string> {
    return this.ingress
  }

  async waitForSync(opts?: number | WaitForSyncOptions): Promise<SyncResult> {
    const o = typeof opts === 'number' ? {generation: opts} : (opts ?? {})
    this.syncCalls.push(o)
    return {synced: true, generation: o.generation ?? this.fake.rv, proxies: this.proxies, waitedMs: 1}
  }

  async proxyStatus(): Promise<ProxySyncStatus[]> {
    return this.proxies
  }

  async install() {
    return {alreadyInstalled: true, details: {}}
  }

  async uninstall() {
    return {wasInstalled: true, details: {}}
  }
}

export const tempHome = () => mkdtempSync(join(tmpdir(), 'mesh-lab-unit-'))

export function fakeLab(opts: {up?: boolean; home?: string; target?: FakeTarget} = {}): {lab: Lab; target: FakeTarget; client: FakeClient} {
  const target = opts.target ?? new FakeTarget()
  const lab = labFor(target, opts.home ?? tempHome(), {up: opts.up ?? true})
  return {lab, target, client: target.fake}
}

export const ns = (name: string, labels: Record<string, string> = {}): KubeObject => ({apiVersion: 'v1', kind: 'Namespace', metadata: {name, labels: {'app.kubernetes.io/managed-by': 'mesh', ...labels}}})

export function pod(name: string, namespace: string, labels: Record<string, string>, opts: {ip?: string; ready?: boolean} = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {name, namespace, labels},
    status: {phase: 'Running', podIP: opts.ip ?? '127.1.0.1', conditions: [{type: 'Ready', status: opts.ready === false ? 'False' : 'True'}]},
  }
}
