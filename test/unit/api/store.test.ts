import {mkdtempSync, rmSync, appendFileSync, readFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterEach, describe, expect, it} from 'vitest'
import {FileStore} from '../../../src/local/api/store.js'
import {MeshApiError} from '../../../src/local/api/errors.js'
import type {KubeObject, WatchEvent} from '../../../src/local/api/types.js'

const dirs: string[] = []
const stores: FileStore[] = []
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'mesh-store-'))
  dirs.push(d)
  return d
}
async function openStore(dir = tmp(), extra: Record<string, unknown> = {}): Promise<FileStore> {
  const s = await FileStore.open({dir, ...extra})
  stores.push(s)
  return s
}
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close()
  for (const d of dirs.splice(0)) rmSync(d, {recursive: true, force: true})
})

const cm = (name: string, ns = 'default', data: Record<string, string> = {}, labels?: Record<string, string>): KubeObject => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: {name, namespace: ns, ...(labels ? {labels} : {})},
  data,
})

const deploy = (name: string, replicas = 1): KubeObject => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: {name, namespace: 'default'},
  spec: {replicas, selector: {matchLabels: {app: name}}, template: {metadata: {labels: {app: name}}, spec: {containers: [{name: 'c', image: 'x'}]}}},
})

describe('FileStore', () => {
  it('assigns identity and a store-wide increasing resourceVersion', async () => {
    const s = await openStore()
    const t = s.typeFor('ConfigMap')!
    const a = await s.create(t, cm('a'))
    const b = await s.create(t, cm('b'))
    expect(a.metadata.uid).toMatch(/^[0-9a-f-]{36}$/)
    expect(a.metadata.creationTimestamp).toMatch(/Z$/)
    expect(a.metadata.generation).toBe(1)
    expect(Number(b.metadata.resourceVersion)).toBeGreaterThan(Number(a.metadata.resourceVersion))
    expect(s.currentResourceVersion()).toBe(b.metadata.resourceVersion)
    await expect(s.create(t, cm('a'))).rejects.toMatchObject({status: 409, reason: 'AlreadyExists'})
  })

  it('refuses objects in a missing namespace and starts with the usual namespaces', async () => {
    const s = await openStore()
    const names = s.list(s.typeFor('ns')!, undefined).items.map((n) => n.metadata.name)
    expect(names).toEqual(expect.arrayContaining(['default', 'kube-system', 'istio-system']))
    await expect(s.create(s.typeFor('cm')!, cm('a', 'nope'))).rejects.toMatchObject({status: 404, message: 'namespaces "nope" not found'})
  })

  it('bumps generation on spec changes only and rejects a stale resourceVersion', async () => {
    const s = await openStore()
    const t = s.typeFor('deployments', 'apps')!
    const d = await s.create(t, deploy('web'))
    const labelled = await s.update(t, {...d, metadata: {...d.metadata, labels: {x: 'y'}}})
    expect(labelled.metadata.generation).toBe(1)
    const scaled = await s.update(t, {...labelled, spec: {...labelled.spec, replicas: 3}})
    expect(scaled.metadata.generation).toBe(2)
    const st = await s.updateStatus(t, {...scaled, status: {replicas: 3}, spec: {...scaled.spec, replicas: 9}})
    expect(st.metadata.generation).toBe(2)
    expect(st.spec.replicas).toBe(3)
    expect(st.status).toEqual({replicas: 3})
    // the main resource ignores status writes
    const again = await s.update(t, {...st, status: {replicas: 0}})
    expect(again.status).toEqual({replicas: 3})
    const err = await s.update(t, {...d, spec: {...d.spec, replicas: 5}}).catch((e) => e)
    expect(err).toBeInstanceOf(MeshApiError)
    expect(err.status).toBe(409)
    expect(err.reason).toBe('Conflict')
  })

  it('lets exactly one of two concurrent updates with the same resourceVersion win', async () => {
    const s = await openStore()
    const t = s.typeFor('cm')!
    const a = await s.create(t, cm('a'))
    const results = await Promise.allSettled([
      s.update(t, {...a, data: {v: '1'}}),
      s.update(t, {...a, data: {v: '2'}}),
    ])
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
    const rejected = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[]
    expect(rejected).toHaveLength(1)
    expect(rejected[0].reason.status).toBe(409)
  })

  it('filters by label and field selectors and pages with limit/continue', async () => {
    const s = await openStore()
    const t = s.typeFor('cm')!
    for (let i = 0; i < 5; i++) await s.create(t, cm(`c${i}`, 'default', {}, {app: i % 2 ? 'odd' : 'even', idx: String(i)}))
    const names = (sel: string) => s.list(t, 'default', {labelSelector: sel}).items.map((o) => o.metadata.name)
    expect(names('app=odd')).toEqual(['c1', 'c3'])
    expect(names('app!=odd')).toEqual(['c0', 'c2', 'c4'])
    expect(names('idx in (0,4),app')).toEqual(['c0', 'c4'])
    expect(names('idx notin (0,4)')).toEqual(['c1', 'c2', 'c3'])
    expect(names('!app')).toEqual([])
    expect(s.list(t, undefined, {fieldSelector: 'metadata.name=c2'}).items.map((o) => o.metadata.name)).toEqual(['c2'])
    const p1 = s.list(t, 'default', {limit: 2})
    expect(p1.items.map((o) => o.metadata.name)).toEqual(['c0', 'c1'])
    const p2 = s.list(t, 'default', {limit: 2, continue: p1.continue})
    const p3 = s.list(t, 'default', {limit: 2, continue: p2.continue})
    expect(p2.items.map((o) => o.metadata.name)).toEqual(['c2', 'c3'])
    expect(p3.items.map((o) => o.metadata.name)).toEqual(['c4'])
    expect(p3.continue).toBeUndefined()
    expect(() => s.list(t, 'default', {labelSelector: 'a in (b'})).toThrow(MeshApiError)
  })

  it('cascades deletes to owned objects and to everything in a deleted namespace', async () => {
    const s = await openStore(tmp(), {namespaceFinalizeDelayMs: 10})
    const ns = s.typeFor('Namespace')!
    const pods = s.typeFor('pods')!
    await s.create(ns, {apiVersion: 'v1', kind: 'Namespace', metadata: {name: 'lab'}})
    const d = await s.create(s.typeFor('deploy')!, {...deploy('web'), metadata: {name: 'web', namespace: 'lab'}})
    const owner = [{apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: d.metadata.uid, controller: true}]
    await s.create(pods, {apiVersion: 'v1', kind: 'Pod', metadata: {name: 'web-1', namespace: 'lab', ownerReferences: owner}})
    await s.create(pods, {apiVersion: 'v1', kind: 'Pod', metadata: {name: 'loose', namespace: 'lab'}})
    await s.delete(s.typeFor('deploy')!, 'lab', 'web')
    expect(s.get(pods, 'lab', 'web-1')).toBeUndefined()
    expect(s.get(pods, 'lab', 'loose')).toBeDefined()
    const terminating = await s.delete(ns, undefined, 'lab')
    expect(terminating.status).toEqual({phase: 'Terminating'})
    // contents stay until the namespace is finalized, but nothing new may be created in it
    expect(s.get(pods, 'lab', 'loose')).toBeDefined()
    await expect(s.create(pods, {apiVersion: 'v1', kind: 'Pod', metadata: {name: 'late', namespace: 'lab'}})).rejects.toMatchObject({status: 403})
    const gone = new Promise<void>((resolve) => {
      const stop = s.watch(ns, s.currentResourceVersion(), (_t, ev) => {
        if (ev.type === 'DELETED' && ev.object.metadata.name === 'lab') {
          stop()
          resolve()
        }
      })
    })
    await gone
    expect(s.get(pods, 'lab', 'loose')).toBeUndefined()
    expect(s.get(ns, undefined, 'lab')).toBeUndefined()
    await expect(s.delete(ns, undefined, 'default')).rejects.toMatchObject({status: 403})
  })

  it('resumes watches from a resourceVersion and answers 410 Expired when it is too old', async () => {
    const s = await openStore(tmp(), {ringSize: 4})
    const t = s.typeFor('cm')!
    const a = await s.create(t, cm('a'))
    await s.update(t, {...a, data: {x: '1'}})
    const seen: WatchEvent[] = []
    const stop = s.watch(t, a.metadata.resourceVersion, (_t, ev) => seen.push(ev))
    await s.delete(t, 'default', 'a')
    stop()
    expect(seen.map((e) => e.type)).toEqual(['MODIFIED', 'DELETED'])
    for (let i = 0; i < 10; i++) await s.create(t, cm(`n${i}`))
    expect(() => s.watch(t, a.metadata.resourceVersion, () => undefined)).toThrow(/too old resource version/)
  })

  it('survives reopen: objects, resourceVersion and a torn journal tail', async () => {
    const dir = tmp()
    const s = await FileStore.open({dir})
    const t = s.typeFor('cm')!
    await s.create(t, cm('a', 'default', {k: 'v'}))
    const b = await s.create(t, cm('b'))
    await s.delete(t, 'default', 'a')
    // simulate kill -9: no close(), and a half-written line at the end
    appendFileSync(join(dir, 'journal.jsonl'), '{"op":"put","t":"core/configmaps","obj":{"metad')
    const s2 = await openStore(dir, {lock: false})
    expect(s2.get(t, 'default', 'a')).toBeUndefined()
    expect(s2.get(t, 'default', 'b')?.metadata.uid).toBe(b.metadata.uid)
    const c = await s2.create(t, cm('c'))
    expect(Number(c.metadata.resourceVersion)).toBeGreaterThan(Number(b.metadata.resourceVersion) + 1)
    await s2.compact()
    expect(readFileSync(join(dir, 'journal.jsonl'), 'utf8')).toBe('')
    await s2.close()
    stores.splice(stores.indexOf(s2), 1)
    const s3 = await openStore(dir)
    expect(s3.get(t, 'default', 'c')).toBeDefined()
    expect(s3.currentResourceVersion()).toBe(c.metadata.resourceVersion)
    await s.close().catch(() => undefined)
  })

  it('serves read-only CRD objects for the Istio kinds', async () => {
    const s = await openStore()
    const crd = s.typeFor('crd')!
    const names = s.list(crd, undefined).items.map((o) => o.metadata.name)
    expect(names).toContain('virtualservices.networking.istio.io')
    expect(names).toContain('authorizationpolicies.security.istio.io')
    await expect(s.delete(crd, undefined, 'virtualservices.networking.istio.io')).rejects.toMatchObject({status: 405})
  })

  it('dry-run writes validate without storing', async () => {
    const s = await openStore()
    const t = s.typeFor('cm')!
    const rv = s.currentResourceVersion()
    const o = await s.create(t, cm('dry'), {dryRun: true})
    expect(o.metadata.name).toBe('dry')
    expect(s.get(t, 'default', 'dry')).toBeUndefined()
    expect(s.currentResourceVersion()).toBe(rv)
  })
})
