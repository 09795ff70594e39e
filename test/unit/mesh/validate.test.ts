import {describe, expect, it} from 'vitest'
import {
  assertValid,
  buildAccessLogTelemetry,
  buildAllowPolicy,
  buildDenyAll,
  buildGateway,
  buildHelloDestinationRule,
  buildHelloVirtualServices,
  buildPeerAuthentication,
  checkSubsetReferences,
  fieldPath,
  isIstioObject,
  istioKinds,
  labBaseline,
  qualifyHost,
  validateIstioObject,
  type MeshCause,
} from '../../../src/mesh/index.js'
import {MeshError} from '../../../src/lib/errors.js'

type Obj = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

const vs = (): Obj => structuredClone(buildHelloVirtualServices({v1: 90, v2: 10})[0])
const ingressVs = (): Obj => structuredClone(buildHelloVirtualServices({v1: 90, v2: 10})[1])
const dr = (): Obj => structuredClone(buildHelloDestinationRule())
const gw = (): Obj => structuredClone(buildGateway())
const pa = (): Obj => structuredClone(buildPeerAuthentication({mode: 'STRICT'}))
const allow = (): Obj => structuredClone(buildAllowPolicy({principals: ['cluster.local/ns/mesh-lab/sa/curl'], methods: ['GET'], paths: ['/hello']}))

const mutate = (base: () => Obj, fn: (o: Obj) => void) => () => {
  const o = base()
  fn(o)
  return o
}

const codesAt = (causes: MeshCause[]) => causes.map((c) => `${c.code} ${c.field}`)

describe('validateIstioObject: valid objects', () => {
  it('accepts everything the builders make', () => {
    const objects = [...labBaseline(), buildDenyAll(), allow(), buildPeerAuthentication({mode: 'STRICT', mesh: true}), buildAccessLogTelemetry()]
    for (const o of objects) expect(validateIstioObject(o), `${o.kind} ${o.metadata.name}`).toEqual([])
  })

  it('accepts richer, hand-written objects (matches, retries, faults, maps with odd keys)', () => {
    const o = vs()
    o.metadata.annotations = {'example.com/owner': 'team-a'}
    o.spec.http.unshift({
      name: 'jason',
      match: [{headers: {'end-user': {exact: 'jason'}}, uri: {prefix: '/'}}],
      route: [{destination: {host: 'hello', subset: 'v2'}}],
      timeout: '0.5s',
      retries: {attempts: 3, perTryTimeout: '1s', retryOn: '5xx,connect-failure'},
      fault: {delay: {fixedDelay: '7s', percentage: {value: 100}}},
    })
    expect(validateIstioObject(o)).toEqual([])
  })

  it('accepts other Istio kinds users apply by hand without false unknown-field reports', () => {
    const objects: Obj[] = [
      {apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: {name: 'ext'}, spec: {hosts: ['api.example.com'], ports: [{number: 443, name: 'https', protocol: 'TLS'}], resolution: 'DNS', location: 'MESH_EXTERNAL'}},
      {apiVersion: 'networking.istio.io/v1', kind: 'Sidecar', metadata: {name: 'default', namespace: 'mesh-lab'}, spec: {egress: [{hosts: ['./*', 'istio-system/*']}], outboundTrafficPolicy: {mode: 'REGISTRY_ONLY'}}},
      {apiVersion: 'security.istio.io/v1', kind: 'RequestAuthentication', metadata: {name: 'jwt'}, spec: {selector: {matchLabels: {app: 'hello'}}, jwtRules: [{issuer: 'x', jwksUri: 'https://x/jwks', outputClaimToHeaders: [{header: 'x-sub', claim: 'sub'}]}]}},
      {apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: {name: 'sticky'}, spec: {host: 'hello', trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: 'u', ttl: '10s'}}}, tls: {mode: 'ISTIO_MUTUAL'}, portLevelSettings: [{port: {number: 5000}, connectionPool: {http: {maxRetries: 3}}}]}}},
      {apiVersion: 'extensions.istio.io/v1alpha1', kind: 'WasmPlugin', metadata: {name: 'w'}, spec: {url: 'oci://example/filter', pluginConfig: {free: {form: 1}}}},
    ]
    for (const o of objects) expect(validateIstioObject(o), o.kind).toEqual([])
  })

  it('ignores server-set metadata and status', () => {
    const o = vs()
    Object.assign(o.metadata, {
      uid: '7d6f', resourceVersion: '12', generation: 3, creationTimestamp: '2026-01-01T00:00:00Z',
      managedFields: [{manager: 'mesh', operation: 'Apply', apiVersion: 'networking.istio.io/v1', fieldsType: 'FieldsV1', fieldsV1: {'f:spec': {'f:hosts': {}}}}],
    })
    o.status = {observedGeneration: 3, anything: {goes: true}}
    expect(validateIstioObject(o)).toEqual([])
  })

  it('validates older API versions with the same rules', () => {
    const o = vs()
    o.apiVersion = 'networking.istio.io/v1beta1'
    expect(validateIstioObject(o)).toEqual([])
    o.apiVersion = 'networking.istio.io/v1alpha3'
    o.spec.http[0].route[0].weight = -1
    expect(codesAt(validateIstioObject(o))).toContain('MESH_WEIGHT_NEGATIVE spec.http[0].route[0].weight')
  })

  it('accepts AuthorizationPolicy CUSTOM with a provider', () => {
    const o = {apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: {name: 'ext', namespace: 'mesh-lab'}, spec: {action: 'CUSTOM', provider: {name: 'ext-authz'}, rules: [{to: [{operation: {paths: ['/admin/*']}}]}]}}
    expect(validateIstioObject(o)).toEqual([])
  })

  it('accepts a workload PeerAuthentication with portLevelMtls', () => {
    const o = pa()
    o.spec.selector = {matchLabels: {app: 'hello'}}
    o.spec.portLevelMtls = {'5000': {mode: 'DISABLE'}}
    expect(validateIstioObject(o)).toEqual([])
  })
})

describe('validateIstioObject: rejections name the code and the field', () => {
  const cases: Array<[string, string, string, () => unknown]> = [
    // structure (layer 1)
    ['a weight that is a string', 'MESH_SCHEMA', 'spec.http[0].route[1].weight', mutate(vs, (o) => (o.spec.http[0].route[1].weight = 'ten'))],
    ['hosts that is not a list', 'MESH_SCHEMA', 'spec.hosts', mutate(vs, (o) => (o.spec.hosts = 'hello'))],
    ['a destination without host', 'MESH_REQUIRED', 'spec.http[0].route[0].destination.host', mutate(vs, (o) => delete o.spec.http[0].route[0].destination.host)],
    ['an unknown load balancer', 'MESH_SCHEMA', 'spec.trafficPolicy.loadBalancer.simple', mutate(dr, (o) => (o.spec.trafficPolicy.loadBalancer = {simple: 'FASTEST'}))],
    ['uri exact and prefix together', 'MESH_SCHEMA', 'spec.http[0].match[0].uri', mutate(ingressVs, (o) => (o.spec.http[0].match[0].uri.prefix = '/'))],
    ['an mTLS mode LOOSE', 'MESH_SCHEMA', 'spec.mtls.mode', mutate(pa, (o) => (o.spec.mtls.mode = 'LOOSE'))],
    ['an action ALLOWED', 'MESH_SCHEMA', 'spec.action', mutate(allow, (o) => (o.spec.action = 'ALLOWED'))],
    ['a negative consecutive5xxErrors', 'MESH_SCHEMA', 'spec.trafficPolicy.outlierDetection.consecutive5xxErrors', mutate(dr, (o) => (o.spec.trafficPolicy.outlierDetection.consecutive5xxErrors = -1))],
    // unknown fields
    ['an unknown spec field', 'MESH_UNKNOWN_FIELD', 'spec.routes', mutate(vs, (o) => (o.spec.routes = []))],
    ['a misspelt nested field', 'MESH_UNKNOWN_FIELD', 'spec.http[0].route[0].wieght', mutate(vs, (o) => (o.spec.http[0].route[0].wieght = 5))],
    ['an unknown field in a subset', 'MESH_UNKNOWN_FIELD', 'spec.subsets[1].lables', mutate(dr, (o) => (o.spec.subsets[1].lables = {version: 'v2'}))],
    ['an unknown top-level field', 'MESH_UNKNOWN_FIELD', 'specs', mutate(gw, (o) => (o.specs = {}))],
    ['an unknown metadata field', 'MESH_UNKNOWN_FIELD', 'metadata.label', mutate(pa, (o) => (o.metadata.label = {a: 'b'}))],
    ['an unknown AuthorizationPolicy source field', 'MESH_UNKNOWN_FIELD', 'spec.rules[0].from[0].source.principal', mutate(allow, (o) => (o.spec.rules[0].from[0].source.principal = ['x']))],
    // names
    ['a name with capitals', 'MESH_NAME_INVALID', 'metadata.name', mutate(vs, (o) => (o.metadata.name = 'Hello'))],
    ['no name', 'MESH_REQUIRED', 'metadata.name', mutate(vs, (o) => delete o.metadata.name)],
    ['a namespace with a dot', 'MESH_NAME_INVALID', 'metadata.namespace', mutate(vs, (o) => (o.metadata.namespace = 'mesh.lab'))],
    ['a subset name with an underscore', 'MESH_NAME_INVALID', 'spec.subsets[0].name', mutate(dr, (o) => (o.spec.subsets[0].name = 'v_1'))],
    // VirtualService semantics
    ['a negative weight', 'MESH_WEIGHT_NEGATIVE', 'spec.http[0].route[0].weight', mutate(vs, (o) => (o.spec.http[0].route[0].weight = -5))],
    ['all weights 0', 'MESH_WEIGHT_TOTAL_ZERO', 'spec.http[0].route', mutate(vs, (o) => o.spec.http[0].route.forEach((r: Obj) => (r.weight = 0)))],
    ['"*" bound to the mesh gateway', 'MESH_HOST_WILDCARD_MESH', 'spec.hosts[0]', mutate(vs, (o) => (o.spec.hosts = ['*']))],
    ['"*" with gateways omitted (= mesh)', 'MESH_HOST_WILDCARD_MESH', 'spec.hosts[0]', mutate(ingressVs, (o) => delete o.spec.gateways)],
    ['"*" on gateway plus mesh', 'MESH_HOST_WILDCARD_MESH', 'spec.hosts[0]', mutate(ingressVs, (o) => o.spec.gateways.push('mesh'))],
    ['no hosts', 'MESH_REQUIRED', 'spec.hosts', mutate(vs, (o) => (o.spec.hosts = []))],
    ['a bad host', 'MESH_HOST_INVALID', 'spec.hosts[0]', mutate(vs, (o) => (o.spec.hosts = ['hel*lo']))],
    ['a bad gateway reference', 'MESH_GATEWAY_REF', 'spec.gateways[0]', mutate(ingressVs, (o) => (o.spec.gateways = ['a/b/c']))],
    ['a route with no destination', 'MESH_ROUTE_EMPTY', 'spec.http[0].route', mutate(vs, (o) => (o.spec.http[0].route = []))],
    ['a port out of range', 'MESH_PORT_RANGE', 'spec.http[0].route[0].destination.port.number', mutate(vs, (o) => (o.spec.http[0].route[0].destination.port.number = 70000))],
    ['a malformed timeout', 'MESH_DURATION', 'spec.http[0].timeout', mutate(vs, (o) => (o.spec.http[0].timeout = '5 seconds'))],
    ['a fault percentage above 100', 'MESH_PERCENT_RANGE', 'spec.http[0].fault.abort.percentage.value', mutate(vs, (o) => (o.spec.http[0].fault = {abort: {httpStatus: 500, percentage: {value: 150}}}))],
    ['an upper-case header match', 'MESH_HEADER_NAME', 'spec.http[0].match[0].headers["End-User"]', mutate(vs, (o) => (o.spec.http[0].match = [{headers: {'End-User': {exact: 'jason'}}}]))],
    // DestinationRule semantics
    ['a duplicate subset', 'MESH_SUBSET_DUPLICATE', 'spec.subsets[1].name', mutate(dr, (o) => (o.spec.subsets[1].name = 'v1'))],
    ['a subset without labels', 'MESH_SUBSET_LABELS', 'spec.subsets[1].labels', mutate(dr, (o) => (o.spec.subsets[1].labels = {}))],
    ['maxEjectionPercent above 100', 'MESH_PERCENT_RANGE', 'spec.trafficPolicy.outlierDetection.maxEjectionPercent', mutate(dr, (o) => (o.spec.trafficPolicy.outlierDetection.maxEjectionPercent = 150))],
    ['a malformed interval', 'MESH_DURATION', 'spec.trafficPolicy.outlierDetection.interval', mutate(dr, (o) => (o.spec.trafficPolicy.outlierDetection.interval = '1x'))],
    ['a zero baseEjectionTime', 'MESH_DURATION', 'spec.trafficPolicy.outlierDetection.baseEjectionTime', mutate(dr, (o) => (o.spec.trafficPolicy.outlierDetection.baseEjectionTime = '0s'))],
    // Gateway semantics
    ['a gateway without servers', 'MESH_GATEWAY_SERVER', 'spec.servers', mutate(gw, (o) => (o.spec.servers = []))],
    ['a gateway protocol FTP', 'MESH_GATEWAY_SERVER', 'spec.servers[0].port.protocol', mutate(gw, (o) => (o.spec.servers[0].port.protocol = 'FTP'))],
    ['HTTPS without tls', 'MESH_GATEWAY_SERVER', 'spec.servers[0].tls', mutate(gw, (o) => (o.spec.servers[0].port = {number: 443, name: 'https', protocol: 'HTTPS'}))],
    ['a gateway port 0', 'MESH_PORT_RANGE', 'spec.servers[0].port.number', mutate(gw, (o) => (o.spec.servers[0].port.number = 0))],
    // PeerAuthentication semantics
    ['portLevelMtls without a selector', 'MESH_PA_PORT_LEVEL', 'spec.portLevelMtls', mutate(pa, (o) => (o.spec.portLevelMtls = {'5000': {mode: 'DISABLE'}}))],
    // AuthorizationPolicy semantics
    ['a spiffe:// principal', 'MESH_PRINCIPAL', 'spec.rules[0].from[0].source.principals[0]', mutate(allow, (o) => (o.spec.rules[0].from[0].source.principals = ['spiffe://cluster.local/ns/a/sa/b']))],
    ['a wildcard in the middle of notPrincipals', 'MESH_PRINCIPAL', 'spec.rules[0].from[0].source.notPrincipals[0]', mutate(allow, (o) => (o.spec.rules[0].from[0].source.notPrincipals = ['a*b']))],
    ['a bad CIDR', 'MESH_CIDR', 'spec.rules[0].from[0].source.ipBlocks[0]', mutate(allow, (o) => (o.spec.rules[0].from[0].source.ipBlocks = ['10.0.0.0/33']))],
    ['a non-IP block', 'MESH_CIDR', 'spec.rules[0].from[0].source.remoteIpBlocks[0]', mutate(allow, (o) => (o.spec.rules[0].from[0].source.remoteIpBlocks = ['my-laptop']))],
    ['method FETCH', 'MESH_HTTP_METHOD', 'spec.rules[0].to[0].operation.methods[1]', mutate(allow, (o) => (o.spec.rules[0].to[0].operation.methods = ['GET', 'FETCH']))],
    ['a path without a slash', 'MESH_PATH', 'spec.rules[0].to[0].operation.paths[0]', mutate(allow, (o) => (o.spec.rules[0].to[0].operation.paths = ['hello']))],
    ['a port "http"', 'MESH_PORT_RANGE', 'spec.rules[0].to[0].operation.ports[0]', mutate(allow, (o) => (o.spec.rules[0].to[0].operation.ports = ['http']))],
    ['a bad namespace value', 'MESH_NAMESPACE_VALUE', 'spec.rules[0].from[0].source.namespaces[0]', mutate(allow, (o) => (o.spec.rules[0].from[0].source.namespaces = ['Mesh_Lab']))],
    ['CUSTOM without provider', 'MESH_AUTHZ_PROVIDER', 'spec.provider.name', mutate(allow, (o) => (o.spec.action = 'CUSTOM'))],
    ['a provider on ALLOW', 'MESH_AUTHZ_PROVIDER', 'spec.provider', mutate(allow, (o) => (o.spec.provider = {name: 'ext-authz'}))],
    ['an unknown when key', 'MESH_WHEN_KEY', 'spec.rules[0].when[0].key', mutate(allow, (o) => (o.spec.rules[0].when = [{key: 'request.colour', values: ['red']}]))],
    ['a when without values', 'MESH_WHEN_KEY', 'spec.rules[0].when[0]', mutate(allow, (o) => (o.spec.rules[0].when = [{key: 'source.namespace'}]))],
    // kinds
    ['a non-Istio object', 'MESH_KIND_UNKNOWN', 'apiVersion', () => ({apiVersion: 'apps/v1', kind: 'Deployment', metadata: {name: 'x'}})],
    ['an unknown Istio kind', 'MESH_KIND_UNKNOWN', 'kind', () => ({apiVersion: 'networking.istio.io/v1', kind: 'Route', metadata: {name: 'x'}})],
    ['a kind at a version that does not serve it', 'MESH_KIND_UNKNOWN', 'apiVersion', () => ({apiVersion: 'networking.istio.io/v1', kind: 'EnvoyFilter', metadata: {name: 'x'}})],
    ['no kind', 'MESH_REQUIRED', 'kind', () => ({apiVersion: 'networking.istio.io/v1', metadata: {name: 'x'}})],
    ['not an object', 'MESH_SCHEMA', '(object)', () => 'hello'],
  ]

  it.each(cases)('%s → %s at %s', (_label, code, field, make) => {
    const causes = validateIstioObject(make())
    expect(codesAt(causes)).toContain(`${code} ${field}`)
    const cause = causes.find((c) => c.code === code && c.field === field)!
    expect(cause.message.length).toBeGreaterThan(3)
  })

  it('reports each problem once, and several problems together', () => {
    const o = vs()
    o.spec.http[0].route[0].weight = -5
    o.spec.http[0].route[1].destination.extra = true
    o.metadata.name = 'Bad_Name'
    const causes = validateIstioObject(o)
    expect(codesAt(causes).sort()).toEqual(
      ['MESH_NAME_INVALID metadata.name', 'MESH_UNKNOWN_FIELD spec.http[0].route[1].destination.extra', 'MESH_WEIGHT_NEGATIVE spec.http[0].route[0].weight'].sort(),
    )
    const neg = causes.find((c) => c.code === 'MESH_WEIGHT_NEGATIVE')!
    expect(neg.value).toBe(-5)
  })

  it('does not also call the children of a wrongly typed field unknown', () => {
    const o = dr()
    o.spec.trafficPolicy = [{outlierDetection: {}}]
    expect(codesAt(validateIstioObject(o))).toEqual(['MESH_SCHEMA spec.trafficPolicy'])
  })

  it('keeps Telemetry to structure only: unknown fields pass, wrong types do not', () => {
    const t: Obj = structuredClone(buildAccessLogTelemetry())
    t.spec.accessLogging[0].extra = 1
    expect(validateIstioObject(t)).toEqual([])
    t.spec.accessLogging[0].disabled = 'no'
    expect(codesAt(validateIstioObject(t))).toEqual(['MESH_SCHEMA spec.accessLogging[0].disabled'])
  })
})

describe('subset references', () => {
  it('passes when every subset exists in the DestinationRule', () => {
    expect(checkSubsetReferences(vs(), [dr()])).toEqual([])
    expect(validateIstioObject(vs(), {destinationRules: [dr()]})).toEqual([])
  })

  it('names the route whose subset is missing', () => {
    const o = vs()
    o.spec.http[0].route[1].destination.subset = 'v3'
    const causes = validateIstioObject(o, {destinationRules: [dr()]})
    expect(codesAt(causes)).toEqual(['MESH_SUBSET_MISSING spec.http[0].route[1].destination.subset'])
    expect(causes[0]!.message).toContain('"v3"')
    expect(causes[0]!.message).toContain('v1, v2')
  })

  it('reports a subset with no DestinationRule for its host', () => {
    const other = dr()
    other.spec.host = 'other'
    expect(codesAt(checkSubsetReferences(vs(), [other]))).toEqual([
      'MESH_SUBSET_MISSING spec.http[0].route[0].destination.subset',
      'MESH_SUBSET_MISSING spec.http[0].route[1].destination.subset',
    ])
  })

  it('matches short names and FQDNs in the same namespace, not across namespaces', () => {
    const fq = dr()
    fq.spec.host = 'hello.mesh-lab.svc.cluster.local'
    expect(checkSubsetReferences(vs(), [fq])).toEqual([])
    const elsewhere = dr()
    elsewhere.metadata.namespace = 'demo'
    expect(checkSubsetReferences(vs(), [elsewhere])).toHaveLength(2)
    expect(qualifyHost('hello', 'mesh-lab')).toBe('hello.mesh-lab.svc.cluster.local')
    // like Istio, a name with a dot is taken as fully qualified
    expect(qualifyHost('hello.demo', 'mesh-lab')).toBe('hello.demo')
    expect(qualifyHost('example.com', 'mesh-lab')).toBe('example.com')
  })

  it('is skipped when no DestinationRules are given (apply order is free)', () => {
    const o = vs()
    o.spec.http[0].route[1].destination.subset = 'v3'
    expect(validateIstioObject(o)).toEqual([])
  })
})

describe('assertValid', () => {
  it('returns a valid object unchanged', () => {
    const o = vs()
    expect(assertValid(o)).toBe(o)
  })

  it('throws MESH_INVALID_RESOURCE (exit 65) with every cause', () => {
    const o = vs()
    o.spec.http[0].route[0].weight = -5
    o.spec.bogus = 1
    let err: unknown
    try {
      assertValid(o)
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(MeshError)
    const e = err as MeshError
    expect(e.code).toBe('MESH_INVALID_RESOURCE')
    expect(e.exit).toBe(65)
    expect(e.message).toContain('VirtualService hello')
    expect(e.causes.map((c) => c.field).sort()).toEqual(['spec.bogus', 'spec.http[0].route[0].weight'])
    expect(e.toJSON()).toMatchObject({code: 'MESH_INVALID_RESOURCE', exitCode: 65})
  })
})

describe('helpers', () => {
  it('formats field paths like spec.http[0].route[1].weight', () => {
    expect(fieldPath(['spec', 'http', 0, 'route', 1, 'weight'])).toBe('spec.http[0].route[1].weight')
    expect(fieldPath(['metadata', 'labels', 'mesh.lab/faulty'])).toBe('metadata.labels["mesh.lab/faulty"]')
  })

  it('knows the Istio kinds and groups', () => {
    expect(istioKinds()).toEqual(expect.arrayContaining(['networking.istio.io/v1 VirtualService', 'security.istio.io/v1 AuthorizationPolicy', 'telemetry.istio.io/v1 Telemetry']))
    expect(isIstioObject(vs())).toBe(true)
    expect(isIstioObject({apiVersion: 'v1', kind: 'Service'})).toBe(false)
    expect(isIstioObject(null)).toBe(false)
  })
})
