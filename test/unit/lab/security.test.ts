import {describe, expect, it} from 'vitest'
import type {KubeObject} from '../../../src/cluster/client.js'
import {buildDenyAll, buildPeerAuthentication} from '../../../src/mesh/security.js'
import {setMtls} from '../../../src/lab/mtls.js'
import {allowPolicy, denyAll, resetPolicies} from '../../../src/lab/policy.js'
import {resetLab} from '../../../src/lab/reset.js'
import {readMtls, readPolicies, readWeights} from '../../../src/lab/state.js'
import {buildHelloVirtualServices} from '../../../src/mesh/traffic.js'
import {fakeLab, ns, pod} from './fake-cluster.js'

const k = (o: unknown) => o as KubeObject
const foreignPolicy = k({apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: {name: 'platform-audit', namespace: 'mesh-lab', labels: {team: 'platform'}}, spec: {action: 'AUDIT', rules: [{}]}})

describe('mtls', () => {
  it('sets the namespace policy (default mesh-lab) and reports the mode before', async () => {
    const {lab, client, target} = fakeLab()
    client.seed(ns('mesh-lab'), k(buildPeerAuthentication({mode: 'PERMISSIVE', namespace: 'mesh-lab'})))
    const r = await setMtls(lab, 'strict')
    expect(r).toMatchObject({scope: 'namespace', namespace: 'mesh-lab', from: 'PERMISSIVE', to: 'STRICT'})
    expect(client.find('PeerAuthentication', 'mesh-lab', 'default')?.spec).toEqual({mtls: {mode: 'STRICT'}})
    expect(target.syncCalls).toHaveLength(1)
    expect((await readMtls(client)).namespaces.find((n) => n.namespace === 'mesh-lab')?.mode).toBe('STRICT')
  })

  it('--mesh writes the root namespace policy', async () => {
    const {lab, client} = fakeLab()
    client.seed(ns('istio-system'))
    const r = await setMtls(lab, 'STRICT', {mesh: true})
    expect(r).toMatchObject({scope: 'mesh', namespace: 'istio-system', from: 'PERMISSIVE', to: 'STRICT'})
    expect((await readMtls(client)).mesh).toMatchObject({mode: 'STRICT', source: 'mesh'})
  })

  it.each([
    ['loose', {}, 'MESH_MTLS_MODE'],
    ['strict', {mesh: true, namespace: 'mesh-lab'}, 'MESH_PA_SCOPE'],
    ['strict', {namespace: 'Not_A_Namespace'}, 'MESH_NAME_INVALID'],
  ])('%s %j is refused with %s and nothing changes', async (mode, opts, code) => {
    const {lab, client} = fakeLab()
    client.seed(ns('mesh-lab'), k(buildPeerAuthentication({mode: 'PERMISSIVE', namespace: 'mesh-lab'})))
    const before = client.versions()
    await expect(setMtls(lab, mode, opts)).rejects.toMatchObject({code, exit: 65})
    expect(client.applyCalls).toHaveLength(0)
    expect(client.versions()).toEqual(before)
  })

  it('an unknown namespace is MESH_NAMESPACE_NOT_FOUND (65)', async () => {
    const {lab, client} = fakeLab()
    await expect(setMtls(lab, 'strict', {namespace: 'nope'})).rejects.toMatchObject({code: 'MESH_NAMESPACE_NOT_FOUND', exit: 65})
    expect(client.applyCalls).toHaveLength(0)
  })
})

describe('policy', () => {
  it('deny-all and allow apply validated policies; the allow name is derived from methods and workload', async () => {
    const {lab, client} = fakeLab()
    client.seed(ns('mesh-lab'))
    await denyAll(lab)
    const r = await allowPolicy(lab, {to: 'hello', methods: ['get', 'POST'], paths: ['/hello'], fromPrincipals: ['cluster.local/ns/mesh-lab/sa/curl'], fromNamespaces: ['mesh-lab']})
    expect(r.policy).toEqual({namespace: 'mesh-lab', name: 'allow-get-post-hello'})
    const stored = client.find('AuthorizationPolicy', 'mesh-lab', 'allow-get-post-hello')!
    expect(stored.spec).toEqual({
      selector: {matchLabels: {app: 'hello'}},
      action: 'ALLOW',
      rules: [{from: [{source: {principals: ['cluster.local/ns/mesh-lab/sa/curl'], namespaces: ['mesh-lab']}}], to: [{operation: {methods: ['GET', 'POST'], paths: ['/hello']}}]}],
    })
    expect(client.find('AuthorizationPolicy', 'mesh-lab', 'deny-all')!.spec).toEqual({})
    // the same request again changes nothing
    const again = await allowPolicy(lab, {to: 'hello', methods: ['GET', 'POST'], paths: ['/hello'], fromPrincipals: ['cluster.local/ns/mesh-lab/sa/curl'], fromNamespaces: ['mesh-lab']})
    expect(again.changed).toBe(false)
  })

  it.each([
    [{methods: ['FETCH']}, 'MESH_HTTP_METHOD'],
    [{paths: ['hello']}, 'MESH_PATH'],
    [{fromPrincipals: ['spiffe://cluster.local/ns/x/sa/y']}, 'MESH_PRINCIPAL'],
    [{to: 'hello'}, 'MESH_POLICY_NO_RULES'],
  ])('allow %j is refused with %s and nothing changes', async (opts, code) => {
    const {lab, client} = fakeLab()
    client.seed(ns('mesh-lab'))
    const before = client.versions()
    await expect(allowPolicy(lab, opts)).rejects.toMatchObject({code, exit: 65})
    expect(client.applyCalls).toHaveLength(0)
    expect(client.versions()).toEqual(before)
  })

  it('reset deletes only mesh-managed policies and reports the ones it left', async () => {
    const {lab, client} = fakeLab()
    client.seed(ns('mesh-lab'), k(buildDenyAll()), foreignPolicy)
    const dry = await resetPolicies(lab, {dryRun: true})
    expect(dry.deleted).toEqual([{namespace: 'mesh-lab', name: 'deny-all'}])
    expect(client.find('AuthorizationPolicy', 'mesh-lab', 'deny-all')).toBeDefined()
    const r = await resetPolicies(lab)
    expect(r.deleted).toEqual([{namespace: 'mesh-lab', name: 'deny-all'}])
    expect(r.kept.map((p) => p.name)).toEqual(['platform-audit'])
    expect((await readPolicies(client)).map((p) => p.name)).toEqual(['platform-audit'])
    expect(r.sync?.synced).toBe(true)
  })
})

describe('lab reset', () => {
  it('restores 100/0, PERMISSIVE and the faulty replica at 0; removes mesh policies only; waits for the workloads', async () => {
    const {lab, client, target} = fakeLab()
    client.seed(
      ns('mesh-lab'),
      ns('istio-system'),
      ...(buildHelloVirtualServices({v1: 0, v2: 100}) as unknown as KubeObject[]),
      k(buildPeerAuthentication({mode: 'STRICT', namespace: 'mesh-lab'})),
      k(buildPeerAuthentication({mode: 'STRICT', mesh: true})),
      k(buildDenyAll()),
      foreignPolicy,
      pod('hello-v1-faulty-x', 'mesh-lab', {app: 'hello', version: 'v1', 'mesh.lab/faulty': 'true'}),
    )
    // a stand-in for the deployment controller: scaling the faulty Deployment to 0 removes its pod
    // a stand-in for the deployment controller: Deployments roll out a moment later, and scaling
    // the faulty one to 0 removes its pod
    client.onWrite = (o, type) => {
      if (type !== 'apply' || o.kind !== 'Deployment') return
      setTimeout(() => {
        o.status = {observedGeneration: 1, replicas: o.spec.replicas, readyReplicas: o.spec.replicas}
        o.metadata.generation = 1
        if (o.metadata.name === 'hello-v1-faulty' && o.spec.replicas === 0) client.objects.delete('Pod/mesh-lab/hello-v1-faulty-x')
      }, 20)
    }
    const r = await resetLab(lab, {podTimeoutMs: 5000})
    expect(target.syncCalls.length).toBeGreaterThanOrEqual(2)
    expect((await readWeights(client)).weights).toEqual({v1: 100, v2: 0})
    const mtls = await readMtls(client)
    expect(mtls.mesh.source).toBe('default')
    expect(mtls.namespaces.find((n) => n.namespace === 'mesh-lab')).toMatchObject({mode: 'PERMISSIVE', source: 'namespace'})
    expect(client.find('Deployment', 'mesh-lab', 'hello-v1-faulty')?.spec.replicas).toBe(0)
    expect(client.find('DestinationRule', 'mesh-lab', 'hello')?.spec.trafficPolicy.outlierDetection.maxEjectionPercent).toBe(50)
    expect(r.deletedPolicies).toEqual([{namespace: 'mesh-lab', name: 'deny-all'}])
    expect(r.deletedPeerAuthentications).toEqual([{namespace: 'istio-system', name: 'default'}])
    expect(r.kept.policies.map((p) => p.name)).toEqual(['platform-audit'])
    expect(client.find('Pod', 'mesh-lab', 'hello-v1-faulty-x')).toBeUndefined()
    expect(client.applyCalls.every((c) => c.opts.fieldManager === 'mesh')).toBe(true)
    expect(r.sync?.synced).toBe(true)
  })
})
