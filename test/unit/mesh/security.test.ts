import {describe, expect, it} from 'vitest'
import {
  HTTP_METHODS,
  LAB,
  buildAllowPolicy,
  buildDenyAll,
  buildPeerAuthentication,
  buildWorkloadPeerAuthentication,
  parseMtlsMode,
  parseSelector,
  principalFor,
  validateIstioObject,
} from '../../../src/mesh/index.js'
import {expectMeshError} from './helpers.js'

describe('PeerAuthentication builders', () => {
  it('builds the namespace default policy, lab namespace unless told otherwise', () => {
    const pa = buildPeerAuthentication({mode: 'strict'})
    expect(pa).toMatchObject({apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: {name: 'default', namespace: 'mesh-lab'}, spec: {mtls: {mode: 'STRICT'}}})
    expect(buildPeerAuthentication({mode: 'PERMISSIVE', namespace: 'demo'}).metadata.namespace).toBe('demo')
    expect(pa.spec.selector).toBeUndefined()
  })

  it('puts the mesh-wide policy in the root namespace istio-system', () => {
    const pa = buildPeerAuthentication({mode: 'STRICT', mesh: true})
    expect(pa.metadata).toMatchObject({name: 'default', namespace: 'istio-system'})
    expect(buildPeerAuthentication({mode: 'STRICT', mesh: true, namespace: 'istio-system'}).metadata.namespace).toBe('istio-system')
  })

  it('rejects a namespace together with mesh-wide', () => {
    expectMeshError(() => buildPeerAuthentication({mode: 'STRICT', mesh: true, namespace: 'demo'}), 'MESH_PA_SCOPE', 'namespace')
  })

  it('accepts only STRICT or PERMISSIVE for a namespace or the mesh', () => {
    const e = expectMeshError(() => buildPeerAuthentication({mode: 'loose'}), 'MESH_MTLS_MODE', 'mode')
    expect(e.message).toContain('"loose"')
    expectMeshError(() => buildPeerAuthentication({mode: 'DISABLE'}), 'MESH_MTLS_MODE')
    expect(parseMtlsMode('Permissive')).toBe('PERMISSIVE')
    expect(parseMtlsMode('disable', {allowDisable: true})).toBe('DISABLE')
  })

  it('builds a workload policy with per-port modes, DISABLE allowed', () => {
    const pa = buildWorkloadPeerAuthentication({name: 'hello-strict', selector: {app: 'hello'}, mode: 'STRICT', portLevelMtls: {5000: 'disable'}})
    expect(pa.spec).toEqual({selector: {matchLabels: {app: 'hello'}}, mtls: {mode: 'STRICT'}, portLevelMtls: {'5000': {mode: 'DISABLE'}}})
    expect(validateIstioObject(pa)).toEqual([])
  })

  it('rejects a workload policy with a bad port, a bad port mode or no selector', () => {
    expectMeshError(() => buildWorkloadPeerAuthentication({name: 'x', selector: {app: 'hello'}, mode: 'STRICT', portLevelMtls: {70000: 'DISABLE'}}), 'MESH_PORT_RANGE', 'portLevelMtls[70000]')
    expectMeshError(() => buildWorkloadPeerAuthentication({name: 'x', selector: {app: 'hello'}, mode: 'STRICT', portLevelMtls: {5000: 'OFF'}}), 'MESH_MTLS_MODE', 'portLevelMtls[5000]')
    expectMeshError(() => buildWorkloadPeerAuthentication({name: 'x', selector: {}, mode: 'STRICT'}), 'MESH_SELECTOR', 'selector')
  })
})

describe('AuthorizationPolicy builders', () => {
  it('deny-all is an ALLOW policy with an empty spec (AZ-3)', () => {
    const p = buildDenyAll()
    expect(p).toMatchObject({apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: {name: 'deny-all', namespace: 'mesh-lab'}, spec: {}})
    expect(Object.keys(p.spec)).toEqual([])
    expect(buildDenyAll('demo').metadata.namespace).toBe('demo')
    expectMeshError(() => buildDenyAll('Not A Namespace'), 'MESH_NAME_INVALID', 'namespace')
  })

  it('builds one ALLOW rule from sources and operations', () => {
    const curl = principalFor('mesh-lab', 'curl')
    expect(curl).toBe('cluster.local/ns/mesh-lab/sa/curl')
    const p = buildAllowPolicy({selector: {app: 'hello'}, principals: [curl], namespaces: ['mesh-lab'], methods: ['get', 'HEAD'], paths: ['/hello', '/api/*']})
    expect(p.metadata.name).toBe('allow-get-head-hello')
    expect(p.spec).toEqual({
      selector: {matchLabels: {app: 'hello'}},
      action: 'ALLOW',
      rules: [{from: [{source: {principals: [curl], namespaces: ['mesh-lab']}}], to: [{operation: {methods: ['GET', 'HEAD'], paths: ['/hello', '/api/*']}}]}],
    })
    expect(validateIstioObject(p)).toEqual([])
  })

  it('leaves out from/to when only the other side is given', () => {
    expect(buildAllowPolicy({methods: ['GET']}).spec.rules).toEqual([{to: [{operation: {methods: ['GET']}}]}])
    expect(buildAllowPolicy({namespaces: ['mesh-lab'], name: 'from-lab'}).spec.rules).toEqual([{from: [{source: {namespaces: ['mesh-lab']}}]}])
  })

  it('accepts every HTTP method and rejects others, naming the index', () => {
    expect(buildAllowPolicy({methods: [...HTTP_METHODS]}).spec.rules![0]!.to![0]!.operation!.methods).toEqual([...HTTP_METHODS])
    const e = expectMeshError(() => buildAllowPolicy({methods: ['GET', 'FETCH']}), 'MESH_HTTP_METHOD', 'methods[1]')
    expect(e.message).toContain('FETCH')
  })

  it('rejects principals with spiffe:// or a wildcard in the middle', () => {
    const e = expectMeshError(() => buildAllowPolicy({principals: ['spiffe://cluster.local/ns/mesh-lab/sa/curl']}), 'MESH_PRINCIPAL', 'principals[0]')
    expect(e.message).toContain('cluster.local/ns/mesh-lab/sa/curl')
    expectMeshError(() => buildAllowPolicy({principals: ['cluster.local/ns/*/sa/curl']}), 'MESH_PRINCIPAL', 'principals[0]')
    expect(buildAllowPolicy({principals: ['*', 'cluster.local/ns/mesh-lab/*', '*/sa/curl']}).spec.rules![0]!.from![0]!.source!.principals).toHaveLength(3)
  })

  it('rejects bad namespaces and paths', () => {
    expectMeshError(() => buildAllowPolicy({namespaces: ['Mesh_Lab']}), 'MESH_NAMESPACE_VALUE', 'namespaces[0]')
    expectMeshError(() => buildAllowPolicy({paths: ['hello']}), 'MESH_PATH', 'paths[0]')
    expectMeshError(() => buildAllowPolicy({paths: ['/a*b']}), 'MESH_PATH', 'paths[0]')
  })

  it('refuses an ALLOW rule with no condition, which would allow everything', () => {
    expectMeshError(() => buildAllowPolicy({}), 'MESH_POLICY_NO_RULES', 'rules')
    expectMeshError(() => buildAllowPolicy({selector: {app: 'hello'}, methods: []}), 'MESH_POLICY_NO_RULES')
  })

  it('parses selectors written key=value', () => {
    expect(parseSelector(['app=hello', 'version=v1'])).toEqual({app: 'hello', version: 'v1'})
    expect(parseSelector('app=hello,version=v2')).toEqual({app: 'hello', version: 'v2'})
    expectMeshError(() => parseSelector('app'), 'MESH_SELECTOR', 'selector')
    expectMeshError(() => parseSelector('=hello'), 'MESH_SELECTOR')
  })

  it('uses the lab namespace by default', () => {
    expect(buildAllowPolicy({methods: ['GET']}).metadata.namespace).toBe(LAB.namespace)
  })
})
