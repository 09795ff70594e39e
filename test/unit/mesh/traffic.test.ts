import {describe, expect, it} from 'vitest'
import {
  LAB,
  buildCircuitBreakerDestinationRule,
  buildGateway,
  buildHelloDestinationRule,
  buildHelloVirtualServices,
  checkEjectionPossible,
  effectiveOutlierDetection,
  validateIstioObject,
  type DestinationRule,
} from '../../../src/mesh/index.js'
import {expectMeshError} from './helpers.js'

const split = (vs: {spec: {http?: Array<{route?: Array<{destination?: {subset?: string}; weight?: number}>}>}}) =>
  Object.fromEntries(vs.spec.http![0]!.route!.map((r) => [r.destination!.subset, r.weight]))

describe('buildHelloVirtualServices', () => {
  it('returns the mesh and the ingress VirtualService with the same weights', () => {
    const [mesh, ingress] = buildHelloVirtualServices({v1: 90, v2: 10})
    expect(mesh.metadata).toMatchObject({name: 'hello', namespace: 'mesh-lab'})
    expect(mesh.spec.hosts).toEqual(['hello'])
    expect(mesh.spec.gateways).toEqual(['mesh'])
    expect(ingress.metadata).toMatchObject({name: 'hello-ingress', namespace: 'mesh-lab'})
    expect(ingress.spec.hosts).toEqual(['*'])
    expect(ingress.spec.gateways).toEqual(['hello-gateway'])
    expect(ingress.spec.http![0]!.match).toEqual([{uri: {exact: '/hello'}}])
    expect(split(mesh)).toEqual({v1: 90, v2: 10})
    expect(split(ingress)).toEqual({v1: 90, v2: 10})
    expect(mesh.spec.http![0]!.route).toEqual(ingress.spec.http![0]!.route)
    for (const r of mesh.spec.http![0]!.route!) expect(r.destination).toMatchObject({host: 'hello', port: {number: 5000}})
  })

  it('keeps both destinations at 100/0 and 0/100 so every step has the same shape', () => {
    expect(split(buildHelloVirtualServices({v1: 100, v2: 0})[0])).toEqual({v1: 100, v2: 0})
    expect(split(buildHelloVirtualServices({v1: 0, v2: 100})[1])).toEqual({v1: 0, v2: 100})
  })

  it('does not share route objects between the two (editing one leaves the other)', () => {
    const [mesh, ingress] = buildHelloVirtualServices({v1: 50, v2: 50})
    mesh.spec.http![0]!.route![0]!.weight = 1
    expect(split(ingress)).toEqual({v1: 50, v2: 50})
  })

  it('labels every object as managed by mesh', () => {
    for (const o of buildHelloVirtualServices({v1: 50, v2: 50})) expect(o.metadata.labels).toEqual(LAB.labels)
  })

  it('places them in another namespace on request, and rejects a bad one', () => {
    expect(buildHelloVirtualServices({v1: 50, v2: 50}, {namespace: 'demo'})[1].metadata.namespace).toBe('demo')
    expectMeshError(() => buildHelloVirtualServices({v1: 50, v2: 50}, {namespace: 'Demo_NS'}), 'MESH_NAME_INVALID', 'namespace')
  })

  it('rejects weights that do not add up to 100', () => {
    expectMeshError(() => buildHelloVirtualServices({v1: 90, v2: 20}), 'MESH_WEIGHTS_SUM')
    expectMeshError(() => buildHelloVirtualServices({v1: -5, v2: 105}), 'MESH_WEIGHTS_RANGE')
  })

  it('produces valid objects whose subsets exist in the lab DestinationRule', () => {
    const dr = buildHelloDestinationRule()
    for (const vs of buildHelloVirtualServices({v1: 90, v2: 10})) expect(validateIstioObject(vs, {destinationRules: [dr]})).toEqual([])
  })
})

describe('buildHelloDestinationRule', () => {
  it('defines subsets v1/v2 by the version label', () => {
    const dr = buildHelloDestinationRule()
    expect(dr.metadata).toMatchObject({name: 'hello', namespace: 'mesh-lab'})
    expect(dr.spec.host).toBe('hello')
    expect(dr.spec.subsets).toEqual([
      {name: 'v1', labels: {version: 'v1'}},
      {name: 'v2', labels: {version: 'v2'}},
    ])
  })

  it('carries the lab connection pool and an outlier detection that can eject one of two v1 endpoints', () => {
    const tp = buildHelloDestinationRule().spec.trafficPolicy!
    expect(tp.connectionPool).toEqual({tcp: {maxConnections: 100}, http: {http1MaxPendingRequests: 100, http2MaxRequests: 1000}})
    expect(tp.outlierDetection).toEqual({consecutive5xxErrors: 3, interval: '1s', baseEjectionTime: '10s', maxEjectionPercent: 50})
    expect(checkEjectionPossible(buildHelloDestinationRule(), LAB.v1EndpointsWithFaulty, 'v1')).toBeUndefined()
  })

  it("has a circuit-breaker variant with Istio's task values (SC-6)", () => {
    const tp = buildCircuitBreakerDestinationRule().spec.trafficPolicy!
    expect(tp.connectionPool).toEqual({tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}})
    expect(tp.outlierDetection).toEqual({consecutive5xxErrors: 1, interval: '1s', baseEjectionTime: '3m', maxEjectionPercent: 100})
    expect(buildHelloDestinationRule({variant: 'circuit-breaker'})).toEqual(buildCircuitBreakerDestinationRule())
    expect(validateIstioObject(buildCircuitBreakerDestinationRule())).toEqual([])
  })
})

describe('buildGateway', () => {
  it('serves HTTP on port 80 for any host on the ingress gateway pods', () => {
    const gw = buildGateway()
    expect(gw.metadata).toMatchObject({name: 'hello-gateway', namespace: 'mesh-lab'})
    expect(gw.spec).toEqual({selector: {istio: 'ingressgateway'}, servers: [{port: {number: 80, name: 'http', protocol: 'HTTP'}, hosts: ['*']}]})
    expect(validateIstioObject(gw)).toEqual([])
  })
})

describe('checkEjectionPossible (DR-8)', () => {
  const withOutlier = (od: object | undefined): DestinationRule => {
    const dr = buildHelloDestinationRule()
    if (od === undefined) delete dr.spec.trafficPolicy!.outlierDetection
    else dr.spec.trafficPolicy!.outlierDetection = od
    return dr
  }

  it('allows one ejection of 2 endpoints at 50% and refuses it at 49%', () => {
    expect(checkEjectionPossible(withOutlier({consecutive5xxErrors: 3, maxEjectionPercent: 50}), 2)).toBeUndefined()
    const warn = checkEjectionPossible(withOutlier({consecutive5xxErrors: 3, maxEjectionPercent: 49}), 2)
    expect(warn?.code).toBe('MESH_EJECTION_IMPOSSIBLE')
    expect(warn?.message).toContain('50%')
    expect(warn?.message).toContain('maxEjectionPercent 49')
    expect(warn?.suggestion).not.toBe('')
  })

  it('uses the 10% default when maxEjectionPercent is unset or 0: fewer than 10 endpoints never eject', () => {
    for (const od of [{consecutive5xxErrors: 3}, {consecutive5xxErrors: 3, maxEjectionPercent: 0}]) {
      expect(checkEjectionPossible(withOutlier(od), 9)?.message).toContain('default')
      expect(checkEjectionPossible(withOutlier(od), 10)).toBeUndefined()
    }
  })

  it('warns when a single endpoint would be 100% of a pool capped at 50%', () => {
    expect(checkEjectionPossible(buildHelloDestinationRule(), 1)?.code).toBe('MESH_EJECTION_IMPOSSIBLE')
    expect(checkEjectionPossible(buildCircuitBreakerDestinationRule(), 1)).toBeUndefined()
  })

  it('warns when consecutive5xxErrors is 0 (detection off), unless gateway errors are counted', () => {
    expect(checkEjectionPossible(withOutlier({consecutive5xxErrors: 0, maxEjectionPercent: 100}), 2)?.message).toContain('consecutive5xxErrors is 0')
    expect(checkEjectionPossible(withOutlier({consecutive5xxErrors: 0, consecutiveGatewayErrors: 2, maxEjectionPercent: 100}), 2)).toBeUndefined()
  })

  it('treats an unset consecutive5xxErrors as the default 5, not as off', () => {
    expect(checkEjectionPossible(withOutlier({maxEjectionPercent: 100}), 2)).toBeUndefined()
  })

  it('warns when the DestinationRule has no outlierDetection block, or there are no endpoints', () => {
    expect(checkEjectionPossible(withOutlier(undefined), 2)?.message).toContain('no outlierDetection')
    expect(checkEjectionPossible(buildHelloDestinationRule(), 0)?.message).toContain('no endpoints')
  })

  it("uses a subset's own outlierDetection block instead of the DestinationRule's (DR-2)", () => {
    const dr = buildHelloDestinationRule()
    dr.spec.subsets![0]!.trafficPolicy = {outlierDetection: {consecutive5xxErrors: 1, maxEjectionPercent: 10}}
    expect(effectiveOutlierDetection(dr, 'v1')?.maxEjectionPercent).toBe(10)
    expect(effectiveOutlierDetection(dr, 'v2')?.maxEjectionPercent).toBe(50)
    expect(checkEjectionPossible(dr, 2, 'v1')?.message).toContain('subset v1')
    expect(checkEjectionPossible(dr, 2, 'v2')).toBeUndefined()
  })
})
