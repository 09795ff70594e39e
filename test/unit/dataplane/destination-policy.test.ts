// DR-1/DR-2: which DestinationRule applies and how its policies combine per cluster.
import {describe, expect, it} from 'vitest'
import {outboundClusterSpecs} from '../../../src/local/dataplane/cluster.js'
import {clusterPolicy, findDestinationRule, mergeTrafficPolicy} from '../../../src/local/dataplane/destination-policy.js'
import type {KubeObject, MeshSnapshot} from '../../../src/local/dataplane/snapshot.js'

let age = 0
const DR = (name: string, ns: string, spec: unknown): KubeObject => ({apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: {name, namespace: ns, creationTimestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, ++age)).toISOString()}, spec})

const dr = DR('hello', 'mesh-lab', {
  host: 'hello',
  trafficPolicy: {
    loadBalancer: {simple: 'ROUND_ROBIN'},
    connectionPool: {tcp: {maxConnections: 10}},
    outlierDetection: {consecutive5xxErrors: 3},
    portLevelSettings: [{port: {number: 9000}, connectionPool: {tcp: {maxConnections: 2}}}],
  },
  subsets: [
    {name: 'v1', labels: {version: 'v1'}},
    {name: 'v2', labels: {version: 'v2'}, trafficPolicy: {connectionPool: {http: {http1MaxPendingRequests: 1}}}},
  ],
})

describe('DR-2 policy inheritance', () => {
  it('a subset without a policy inherits the DR policy', () => {
    expect(mergeTrafficPolicy(dr, 5000, 'v1')).toEqual({loadBalancer: {simple: 'ROUND_ROBIN'}, connectionPool: {tcp: {maxConnections: 10}}, outlierDetection: {consecutive5xxErrors: 3}})
  })

  it('a subset block replaces the whole block: no field-level merge', () => {
    const p = clusterPolicy(dr, 5000, 'v2')
    expect(p.pool.maxPendingRequests).toBe(1)
    expect(p.pool.maxConnections).toBe(4_294_967_295) // tcp.maxConnections of the DR level is gone
    expect(p.lb.kind).toBe('ROUND_ROBIN')
    expect(p.outlier?.consecutive5xx).toBe(3)
  })

  it('a matching portLevelSettings entry replaces the DR policy wholesale', () => {
    const p = clusterPolicy(dr, 9000, 'v1')
    expect(p.pool.maxConnections).toBe(2)
    expect(p.lb.kind).toBe('LEAST_REQUEST') // not inherited from the top level
    expect(p.outlier).toBeUndefined()
  })

  it('a policy change changes the cluster key (clusters are rebuilt), an unrelated field does not', () => {
    expect(clusterPolicy(dr, 5000, 'v1').key).toBe(clusterPolicy(structuredClone(dr), 5000, 'v1').key)
    const changed = structuredClone(dr)
    changed.spec.trafficPolicy.outlierDetection.consecutive5xxErrors = 4
    expect(clusterPolicy(changed, 5000, 'v1').key).not.toBe(clusterPolicy(dr, 5000, 'v1').key)
  })
})

describe('which DestinationRule applies', () => {
  const snap = (drs: KubeObject[]): MeshSnapshot => ({
    generation: 1,
    trustDomain: 'cluster.local',
    rootNamespace: 'istio-system',
    services: [{name: 'hello', namespace: 'mesh-lab', selector: {app: 'hello'}, ports: [{port: 5000, targetPort: 5000, protocol: 'TCP'}]}],
    endpoints: [
      {address: '127.5.0.2', podName: 'a', namespace: 'mesh-lab', labels: {app: 'hello', version: 'v1'}, serviceAccount: 'hello', sidecar: true, ready: true, ports: [5000]},
      {address: '127.5.0.3', podName: 'b', namespace: 'mesh-lab', labels: {app: 'hello', version: 'v2'}, serviceAccount: 'hello', sidecar: true, ready: true, ports: [5000]},
      {address: '127.5.0.4', podName: 'c', namespace: 'mesh-lab', labels: {app: 'hello', version: 'v2'}, serviceAccount: 'hello', sidecar: true, ready: false, ports: [5000]},
      {address: '127.5.0.5', podName: 'd', namespace: 'other', labels: {app: 'hello', version: 'v1'}, serviceAccount: 'hello', sidecar: true, ready: true, ports: [5000]},
    ],
    virtualServices: [],
    destinationRules: drs,
    gateways: [],
    peerAuthentications: [],
    authorizationPolicies: [],
  })

  it('prefers the client namespace, then the service namespace, then the root namespace', () => {
    const inSvc = DR('a', 'mesh-lab', {host: 'hello.mesh-lab.svc.cluster.local'})
    const inRoot = DR('b', 'istio-system', {host: 'hello.mesh-lab.svc.cluster.local'})
    const inClient = DR('c', 'client', {host: 'hello.mesh-lab.svc.cluster.local'})
    const s = snap([inRoot, inSvc, inClient])
    expect(findDestinationRule(s, 'hello.mesh-lab.svc.cluster.local', 'client')).toBe(inClient)
    expect(findDestinationRule(s, 'hello.mesh-lab.svc.cluster.local', 'elsewhere')).toBe(inSvc)
    expect(findDestinationRule(snap([inRoot]), 'hello.mesh-lab.svc.cluster.local', 'elsewhere')).toBe(inRoot)
  })

  it('builds one cluster per port and per subset; endpoints by selector, subset labels, namespace and readiness', () => {
    const specs = outboundClusterSpecs(snap([dr]), 'istio-system')
    const byName = Object.fromEntries(specs.map((s) => [s.name, s.endpoints.map((e) => e.address)]))
    expect(byName).toEqual({
      'outbound|5000||hello.mesh-lab.svc.cluster.local': ['127.5.0.2', '127.5.0.3'],
      'outbound|5000|v1|hello.mesh-lab.svc.cluster.local': ['127.5.0.2'],
      'outbound|5000|v2|hello.mesh-lab.svc.cluster.local': ['127.5.0.3'],
    })
  })
})
