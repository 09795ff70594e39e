import {describe, expect, it} from 'vitest'
import {buildHelloVirtualServices} from '../../../src/mesh/traffic.js'
import {buildAllowPolicy, buildDenyAll, buildPeerAuthentication} from '../../../src/mesh/security.js'
import type {KubeObject} from '../../../src/cluster/client.js'
import {readLabState, readMtls, readPods, readPolicies, readWeights, weightsFromVirtualService} from '../../../src/lab/state.js'
import {FakeClient, FakeTarget, pod} from './fake-cluster.js'

const vs = (v1: number, v2: number) => buildHelloVirtualServices({v1, v2}) as unknown as KubeObject[]
const k = (o: unknown) => o as KubeObject

describe('weights', () => {
  it('reads the split of both VirtualServices', async () => {
    const c = new FakeClient().seed(...vs(90, 10))
    const w = await readWeights(c)
    expect(w).toMatchObject({weights: {v1: 90, v2: 10}, ingress: {v1: 90, v2: 10}, source: 'virtualservice', consistent: true, managed: true, notes: []})
  })

  it('a missing hello VirtualService is the baseline 100/0, with a note', async () => {
    const w = await readWeights(new FakeClient())
    expect(w.weights).toEqual({v1: 100, v2: 0})
    expect(w.source).toBe('default')
    expect(w.ingress).toBeNull()
    expect(w.notes.join(' ')).toMatch(/hello does not exist/)
  })

  it('notices when the ingress routes another split than the sidecars', async () => {
    const [mesh] = vs(50, 50)
    const [, ingress] = vs(100, 0)
    const w = await readWeights(new FakeClient().seed(mesh!, ingress!))
    expect(w.consistent).toBe(false)
    expect(w.notes.join(' ')).toMatch(/ingress routes 100\/0 but the sidecars route 50\/50/)
  })

  it('one destination without a weight takes everything; unknown subsets are noted and scaled out', () => {
    const one = k({apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: {name: 'x'}, spec: {http: [{route: [{destination: {host: 'hello', subset: 'v2'}}]}]}})
    expect(weightsFromVirtualService(one).weights).toEqual({v1: 0, v2: 100})
    const three = k({
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: {name: 'x'},
      spec: {http: [{route: [{destination: {host: 'hello', subset: 'v1'}, weight: 40}, {destination: {host: 'hello', subset: 'v2'}, weight: 40}, {destination: {host: 'hello', subset: 'v3'}, weight: 20}]}]},
    })
    const r = weightsFromVirtualService(three)
    expect(r.weights).toEqual({v1: 50, v2: 50})
    expect(r.notes.join(' ')).toMatch(/subset v3/)
  })
})

describe('mTLS', () => {
  it('namespace policy wins, mesh-wide is inherited, no policy is PERMISSIVE', async () => {
    const c = new FakeClient().seed(
      k(buildPeerAuthentication({mode: 'STRICT', mesh: true})),
      k(buildPeerAuthentication({mode: 'PERMISSIVE', namespace: 'mesh-lab'})),
    )
    const s = await readMtls(c)
    expect(s.mesh).toEqual({mode: 'STRICT', source: 'mesh', policy: 'istio-system/default'})
    expect(s.namespaces.find((n) => n.namespace === 'mesh-lab')).toMatchObject({mode: 'PERMISSIVE', source: 'namespace'})
    expect(s.namespaces.find((n) => n.namespace === 'mesh-legacy')).toMatchObject({mode: 'STRICT', source: 'mesh'})
    const none = await readMtls(new FakeClient())
    expect(none.mesh).toEqual({mode: 'PERMISSIVE', source: 'default'})
    expect(none.namespaces.every((n) => n.mode === 'PERMISSIVE' && n.source === 'default')).toBe(true)
  })

  it('an UNSET namespace policy inherits; workload policies do not set the namespace mode', async () => {
    const c = new FakeClient().seed(
      k({apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: {name: 'default', namespace: 'mesh-lab'}, spec: {}}),
      k({apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: {name: 'w', namespace: 'mesh-lab'}, spec: {selector: {matchLabels: {app: 'hello'}}, mtls: {mode: 'STRICT'}}}),
    )
    const s = await readMtls(c)
    expect(s.namespaces.find((n) => n.namespace === 'mesh-lab')).toMatchObject({mode: 'PERMISSIVE', source: 'default'})
    expect(s.policies.find((p) => p.name === 'w')).toMatchObject({scope: 'workload', mode: 'STRICT', selector: {app: 'hello'}, managed: false})
  })
})

describe('policies and pods', () => {
  it('lists policies with managed flag and a one-line summary', async () => {
    const foreign = k({apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: {name: 'theirs', namespace: 'mesh-lab'}, spec: {action: 'DENY', rules: [{to: [{operation: {methods: ['DELETE']}}]}]}})
    const c = new FakeClient().seed(k(buildDenyAll()), k(buildAllowPolicy({methods: ['GET'], selector: {app: 'hello'}})), foreign)
    const list = await readPolicies(c)
    expect(list.map((p) => [p.name, p.managed, p.denyAll])).toEqual([
      ['allow-get-hello', true, false],
      ['deny-all', true, true],
      ['theirs', false, false],
    ])
    expect(list[0]!.summary).toBe('ALLOW for app=hello: GET')
    expect(list[2]!.summary).toBe('DENY: DELETE')
  })

  it('groups hello pods by version with readiness, faulty replica marked', async () => {
    const c = new FakeClient().seed(
      pod('hello-v1-a', 'mesh-lab', {app: 'hello', version: 'v1'}),
      pod('hello-v1-faulty-a', 'mesh-lab', {app: 'hello', version: 'v1', 'mesh.lab/faulty': 'true'}, {ready: false}),
      pod('hello-v2-a', 'mesh-lab', {app: 'hello', version: 'v2'}),
      pod('curl-a', 'mesh-lab', {app: 'curl'}),
    )
    const p = await readPods(c)
    expect(p.versions.map((v) => [v.version, v.ready, v.total])).toEqual([
      ['v1', 1, 2],
      ['v2', 1, 1],
    ])
    expect(p.versions[0]!.pods.find((x) => x.faulty)?.name).toBe('hello-v1-faulty-a')
    expect(p.clients.map((x) => x.name)).toEqual(['curl-a'])
  })

  it('readLabState reads only the parts asked for and reports proxy sync', async () => {
    const t = new FakeTarget()
    t.fake.seed(...vs(90, 10))
    t.proxies = [{proxy: 'a', kind: 'sidecar', sent: 3, acked: 2, state: 'STALE'}]
    const s = await readLabState(t, {parts: ['weights', 'proxies']})
    expect(s.weights?.weights).toEqual({v1: 90, v2: 10})
    expect(s.proxies).toEqual({synced: false, items: t.proxies})
    expect(s.mtls).toBeUndefined()
    expect(s.target).toEqual({kind: 'embedded', context: 'mesh-local'})
  })
})
