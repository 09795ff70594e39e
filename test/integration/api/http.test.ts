// The API at the HTTP level: auth, errors as Status objects, optimistic concurrency, watch,
// server-side apply ownership, discovery and OpenAPI documents.
import {connect} from 'node:net'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {FieldCause} from '../../../src/lib/errors.js'
import type {KubeObject} from '../../../src/local/api/types.js'
import {openWatch, startApi, until, type Harness} from './harness.js'

// A tiny validator, so these tests do not depend on the domain model's rules.
const weightsAtMost100 = (o: KubeObject): FieldCause[] => {
  if (o.kind !== 'VirtualService') return []
  const causes: FieldCause[] = []
  ;((o.spec?.http ?? []) as Array<{route?: Array<{weight?: number}>}>).forEach((h, i) =>
    (h.route ?? []).forEach((r, j) => {
      if ((r.weight ?? 0) > 100) causes.push({field: `spec.http[${i}].route[${j}].weight`, message: 'must be at most 100', value: r.weight})
    }),
  )
  return causes
}

const CM = '/api/v1/namespaces/default/configmaps'
const VS = '/apis/networking.istio.io/v1/namespaces/default/virtualservices'
const cm = (name: string, data: Record<string, string> = {}) => ({apiVersion: 'v1', kind: 'ConfigMap', metadata: {name}, data})

let h: Harness
beforeAll(async () => {
  h = await startApi({validators: [weightsAtMost100], store: {ringSize: 50}})
})
afterAll(async () => {
  await h?.close()
})

describe('authentication and binding', () => {
  it('answers 401 Status without a token or with a wrong one, and serves health anonymously', async () => {
    for (const token of [null, 'wrong-token', `${'x'.repeat(48)}`]) {
      const r = await h.request('GET', '/api/v1/namespaces', {token})
      expect(r.status).toBe(401)
      expect(r.json).toMatchObject({kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401})
    }
    expect((await h.request('GET', '/mesh/v1/anything', {token: null})).status).toBe(401)
    const health = await h.request('GET', '/healthz', {token: null})
    expect([health.status, health.text]).toEqual([200, 'ok'])
    expect((await h.request('GET', '/version', {token: null})).json.gitVersion).toBe('v1.32.3')
    expect((await h.request('GET', '/api/v1/namespaces')).status).toBe(200)
  })

  it('is reachable on 127.0.0.1 only', async () => {
    expect(h.server.address()).toMatchObject({address: '127.0.0.1'})
    const other = await new Promise<string>((resolve) => {
      const s = connect({host: '127.0.0.2', port: h.port})
      s.on('connect', () => {
        s.destroy()
        resolve('connected')
      })
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'))
    })
    expect(other).toBe('ECONNREFUSED')
  })
})

describe('errors', () => {
  it('400 for a malformed body, and keeps serving', async () => {
    const r = await h.request('POST', CM, {body: '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {'})
    expect(r.status).toBe(400)
    expect(r.json).toMatchObject({kind: 'Status', reason: 'BadRequest', code: 400})
    const y = await h.request('PATCH', `${VS}/x?fieldManager=t`, {body: 'spec: [unclosed', contentType: 'application/apply-patch+yaml'})
    expect(y.status).toBe(400)
    expect((await h.request('POST', CM, {body: cm('after-bad')})).status).toBe(201)
  })

  it('404 for a missing object or namespace, 409 AlreadyExists, 405, 415', async () => {
    const nf = await h.request('GET', `${CM}/nope`)
    expect(nf.status).toBe(404)
    expect(nf.json).toMatchObject({reason: 'NotFound', message: 'configmaps "nope" not found', details: {name: 'nope', kind: 'configmaps'}})
    const nsMissing = await h.request('POST', '/api/v1/namespaces/ghost/configmaps', {body: cm('a')})
    expect(nsMissing.status).toBe(404)
    expect(nsMissing.json.message).toBe('namespaces "ghost" not found')
    await h.request('POST', CM, {body: cm('dup')})
    const dup = await h.request('POST', CM, {body: cm('dup')})
    expect([dup.status, dup.json.reason]).toEqual([409, 'AlreadyExists'])
    expect((await h.request('PUT', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/virtualservices.networking.istio.io', {body: {}})).status).toBe(405)
    expect((await h.request('PATCH', `${CM}/dup`, {body: '{}', contentType: 'text/plain'})).status).toBe(415)
    expect((await h.request('GET', '/apis/nothing.example.com/v1/things')).status).toBe(404)
  })

  it('422 Invalid naming the field, from the validator hook, on create, patch and apply', async () => {
    const vs = {apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: {name: 'split'}, spec: {hosts: ['a'], http: [{route: [{destination: {host: 'a'}, weight: 150}]}]}}
    const created = await h.request('POST', VS, {body: vs})
    expect(created.status).toBe(422)
    expect(created.json).toMatchObject({reason: 'Invalid', details: {kind: 'VirtualService', causes: [{field: 'spec.http[0].route[0].weight', reason: 'FieldValueInvalid'}]}})
    expect(created.json.message).toContain('spec.http[0].route[0].weight: Invalid value: 150: must be at most 100')
    vs.spec.http[0].route[0].weight = 100
    expect((await h.request('POST', VS, {body: vs})).status).toBe(201)
    const patched = await h.request('PATCH', `${VS}/split`, {body: [{op: 'replace', path: '/spec/http/0/route/0/weight', value: 101}], contentType: 'application/json-patch+json'})
    expect([patched.status, patched.json.details.causes[0].field]).toEqual([422, 'spec.http[0].route[0].weight'])
    const applied = await h.request('PATCH', `${VS}/split?fieldManager=me&force=true`, {
      body: 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: split}\nspec:\n  hosts: [a]\n  http: [{route: [{destination: {host: a}, weight: 300}]}]\n',
      contentType: 'application/apply-patch+yaml',
    })
    expect(applied.status).toBe(422)
    expect((await h.request('GET', `${VS}/split`)).json.spec.http[0].route[0].weight).toBe(100)
  })
})

describe('writes', () => {
  it('two concurrent PUTs with the same resourceVersion: exactly one 409 Conflict', async () => {
    const created = (await h.request('POST', CM, {body: cm('race', {v: '0'})})).json
    const [a, b] = await Promise.all([
      h.request('PUT', `${CM}/race`, {body: {...created, data: {v: 'a'}}}),
      h.request('PUT', `${CM}/race`, {body: {...created, data: {v: 'b'}}}),
    ])
    const codes = [a.status, b.status].sort()
    expect(codes).toEqual([200, 409])
    const loser = a.status === 409 ? a : b
    expect(loser.json).toMatchObject({reason: 'Conflict', code: 409})
    const winner = a.status === 200 ? 'a' : 'b'
    expect((await h.request('GET', `${CM}/race`)).json.data.v).toBe(winner)
  })

  it('dryRun=All validates without storing', async () => {
    const r = await h.request('POST', `${CM}?dryRun=All`, {body: cm('dry')})
    expect(r.status).toBe(201)
    expect((await h.request('GET', `${CM}/dry`)).status).toBe(404)
    const del = await h.request('DELETE', `${CM}/after-bad?dryRun=All`)
    expect(del.status).toBe(200)
    expect((await h.request('GET', `${CM}/after-bad`)).status).toBe(200)
  })

  it('lists with label selectors, field selectors and limit/continue', async () => {
    for (const [n, tier] of [['l1', 'web'], ['l2', 'db'], ['l3', 'web']]) {
      await h.request('POST', CM, {body: {...cm(n), metadata: {name: n, labels: {tier, group: 'lists'}}}})
    }
    const names = async (q: string) => ((await h.request('GET', `${CM}?${q}`)).json.items as KubeObject[]).map((o) => o.metadata.name)
    expect(await names('labelSelector=tier%3Dweb')).toEqual(['l1', 'l3'])
    expect(await names('labelSelector=group%3Dlists,tier%20notin%20(web)')).toEqual(['l2'])
    expect(await names('fieldSelector=metadata.name%3Dl3')).toEqual(['l3'])
    const p1 = (await h.request('GET', `${CM}?labelSelector=group%3Dlists&limit=2`)).json
    expect(p1.items).toHaveLength(2)
    expect(p1.metadata.continue).toBeTruthy()
    const p2 = (await h.request('GET', `${CM}?labelSelector=group%3Dlists&limit=2&continue=${encodeURIComponent(p1.metadata.continue)}`)).json
    expect(p2.items.map((o: KubeObject) => o.metadata.name)).toEqual(['l3'])
    expect(p2.metadata.continue).toBeUndefined()
    expect((await h.request('GET', `${CM}?labelSelector=a%20in%20(b`)).status).toBe(400)
  })

  it('deployment scale and status subresources', async () => {
    const dep = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {name: 'sub'},
      spec: {selector: {matchLabels: {app: 'sub'}}, template: {metadata: {labels: {app: 'sub'}}, spec: {containers: [{name: 'c', image: 'i'}]}}},
    }
    const d = (await h.request('POST', '/apis/apps/v1/namespaces/default/deployments', {body: dep})).json
    expect(d.spec.replicas).toBe(1)
    const scale = await h.request('GET', '/apis/apps/v1/namespaces/default/deployments/sub/scale')
    expect(scale.json).toMatchObject({kind: 'Scale', apiVersion: 'autoscaling/v1', spec: {replicas: 1}, status: {selector: 'app=sub'}})
    const scaled = await h.request('PATCH', '/apis/apps/v1/namespaces/default/deployments/sub/scale', {body: {spec: {replicas: 4}}, contentType: 'application/merge-patch+json'})
    expect(scaled.json.spec.replicas).toBe(4)
    const st = await h.request('PATCH', '/apis/apps/v1/namespaces/default/deployments/sub/status', {body: {status: {replicas: 4}, spec: {replicas: 9}}, contentType: 'application/merge-patch+json'})
    expect([st.json.status.replicas, st.json.spec.replicas]).toEqual([4, 4])
    const mismatched = await h.request('POST', '/apis/apps/v1/namespaces/default/deployments', {body: {...dep, metadata: {name: 'bad'}, spec: {...dep.spec, selector: {matchLabels: {app: 'other'}}}}})
    expect([mismatched.status, mismatched.json.details.causes[0].field]).toEqual([422, 'spec.template.metadata.labels'])
  })
})

describe('watch', () => {
  it('resumes from a resourceVersion and sees the later events in order', async () => {
    const a = (await h.request('POST', CM, {body: cm('w1')})).json
    await h.request('PUT', `${CM}/w1`, {body: {...a, data: {x: '1'}}})
    await h.request('POST', CM, {body: cm('w2')})
    const w = openWatch(h, `${CM}?watch=1&resourceVersion=${a.metadata.resourceVersion}`)
    await w.ready
    await h.request('DELETE', `${CM}/w1`)
    const evs = await until(() => (w.events.length >= 3 ? w.events : undefined), 'three watch events')
    w.stop()
    expect(evs.map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual(['MODIFIED w1', 'ADDED w2', 'DELETED w1'])
    const rvs = evs.map((e) => Number(e.object.metadata.resourceVersion))
    expect([...rvs].sort((x, y) => x - y)).toEqual(rvs)
  })

  it('without a resourceVersion starts with the current objects; too old → ERROR 410 Expired', async () => {
    const w = openWatch(h, `${CM}?watch=true&fieldSelector=metadata.name%3Dw2`)
    await w.ready
    await until(() => w.events.length >= 1, 'the initial ADDED')
    w.stop()
    expect(w.events[0]).toMatchObject({type: 'ADDED', object: {metadata: {name: 'w2'}}})
    // push the first events out of the 50-event window
    for (let i = 0; i < 60; i++) await h.request('POST', CM, {body: cm(`fill-${i}`)})
    const old = openWatch(h, `${CM}?watch=1&resourceVersion=1`)
    await old.ready
    await until(() => old.events.length >= 1, 'the ERROR event')
    old.stop()
    expect(old.events[0]).toMatchObject({type: 'ERROR', object: {kind: 'Status', code: 410, reason: 'Expired'}})
  })
})

describe('server-side apply', () => {
  const apply = (manager: string, body: string, force = false) =>
    h.request('PATCH', `${CM}/ssa?fieldManager=${manager}${force ? '&force=true' : ''}`, {body, contentType: 'application/apply-patch+yaml'})
  const doc = (data: Record<string, string>) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n${Object.entries(data).map(([k, v]) => `  ${k}: "${v}"`).join('\n')}\n`

  it('creates on apply, records managedFields, conflicts between managers unless forced, and removes dropped fields', async () => {
    const first = await apply('alice', doc({a: '1', b: '2'}))
    expect(first.status).toBe(201)
    expect(first.json.metadata.managedFields).toEqual([
      expect.objectContaining({manager: 'alice', operation: 'Apply', fieldsType: 'FieldsV1', fieldsV1: {'f:data': {'f:a': {}, 'f:b': {}}}}),
    ])
    // same value: shared ownership, no conflict
    expect((await apply('bob', doc({b: '2', c: '3'}))).status).toBe(200)
    const clash = await apply('bob', doc({a: '9'}))
    expect(clash.status).toBe(409)
    expect(clash.json).toMatchObject({reason: 'Conflict', details: {causes: [{reason: 'FieldManagerConflict', field: '.data.a', message: 'conflict with "alice" using v1'}]}})
    const forced = await apply('bob', doc({a: '9', b: '2'}), true)
    expect(forced.status).toBe(200)
    expect(forced.json.data).toEqual({a: '9', b: '2'})
    // c was only bob's and is no longer applied by bob: removed. a now belongs to bob alone.
    const owners = Object.fromEntries((forced.json.metadata.managedFields as Array<{manager: string; fieldsV1: {'f:data': object}}>).map((m) => [m.manager, Object.keys(m.fieldsV1['f:data']).sort()]))
    expect(owners).toEqual({alice: ['f:b'], bob: ['f:a', 'f:b']})
    // alice stops applying b; bob still owns it, so it stays
    const dropped = await apply('alice', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {}\n')
    expect(dropped.json.data).toEqual({a: '9', b: '2'})
    const missing = await h.request('PATCH', `${CM}/ssa`, {body: doc({a: '1'}), contentType: 'application/apply-patch+yaml'})
    expect(missing.status).toBe(422)
  })

  it('merges keyed lists of built-in kinds and keeps fields other managers own', async () => {
    const dep = (image: string, env?: string) =>
      `apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: ssa-dep}\nspec:\n  selector: {matchLabels: {app: x}}\n  template:\n    metadata: {labels: {app: x}}\n    spec:\n      containers:\n      - name: main\n        image: ${image}\n${env ? `        env: [{name: E, value: "${env}"}]\n` : ''}`
    const path = '/apis/apps/v1/namespaces/default/deployments/ssa-dep'
    expect((await h.request('PATCH', `${path}?fieldManager=ci`, {body: dep('img:1'), contentType: 'application/apply-patch+yaml'})).status).toBe(201)
    const sidecar = `apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: ssa-dep}\nspec:\n  template:\n    spec:\n      containers:\n      - name: helper\n        image: helper:1\n`
    expect((await h.request('PATCH', `${path}?fieldManager=ops`, {body: sidecar, contentType: 'application/apply-patch+yaml'})).status).toBe(200)
    const r = await h.request('PATCH', `${path}?fieldManager=ci`, {body: dep('img:2', 'on'), contentType: 'application/apply-patch+yaml'})
    expect(r.status).toBe(200)
    expect(r.json.spec.template.spec.containers.map((c: {name: string; image: string}) => `${c.name}=${c.image}`)).toEqual(['main=img:2', 'helper=helper:1'])
    expect(r.json.metadata.generation).toBe(3)
    const conflict = await h.request('PATCH', `${path}?fieldManager=ops`, {
      body: sidecar.replace('- name: helper\n        image: helper:1', '- name: main\n        image: img:3'),
      contentType: 'application/apply-patch+yaml',
    })
    expect(conflict.json.details?.causes?.[0]?.field).toBe('.spec.template.spec.containers[name="main"].image')
  })
})

describe('discovery and OpenAPI', () => {
  it('serves aggregated discovery with short names when asked', async () => {
    const accept = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json'
    const apis = await h.request('GET', '/apis', {accept})
    expect(apis.headers['content-type']).toBe('application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList')
    const net = apis.json.items.find((g: {metadata: {name: string}}) => g.metadata.name === 'networking.istio.io')
    const vs = net.versions[0].resources.find((r: {resource: string}) => r.resource === 'virtualservices')
    expect(vs).toMatchObject({shortNames: ['vs'], scope: 'Namespaced', responseKind: {kind: 'VirtualService'}, categories: ['istio-io', 'networking-istio-io']})
    const core = await h.request('GET', '/api', {accept})
    expect(core.json.items[0].versions[0].resources.map((r: {resource: string}) => r.resource)).toContain('pods')
    const legacy = await h.request('GET', '/apis/apps/v1')
    expect(legacy.json.resources.map((r: {name: string}) => r.name)).toEqual(['deployments', 'deployments/status', 'deployments/scale'])
    expect((await h.request('GET', '/apis')).json.kind).toBe('APIGroupList')
  })

  it('publishes OpenAPI v3 documents whose PATCH operations carry the group-version-kind', async () => {
    const index = (await h.request('GET', '/openapi/v3')).json
    const url = index.paths['apis/networking.istio.io/v1'].serverRelativeURL
    expect(url).toMatch(/^\/openapi\/v3\/apis\/networking.istio.io\/v1\?hash=/)
    const doc = (await h.request('GET', url)).json
    const patch = doc.paths['/apis/networking.istio.io/v1/namespaces/{namespace}/virtualservices/{name}'].patch
    expect(patch['x-kubernetes-group-version-kind']).toEqual({group: 'networking.istio.io', version: 'v1', kind: 'VirtualService'})
    expect(patch.parameters.map((p: {name: string}) => p.name)).toContain('fieldValidation')
    expect(doc.components.schemas['io.istio.networking.v1.VirtualService']['x-kubernetes-group-version-kind']).toEqual([{group: 'networking.istio.io', version: 'v1', kind: 'VirtualService'}])
    expect((await h.request('GET', '/openapi/v2')).status).toBe(404)
  })
})
