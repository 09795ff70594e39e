// VS-1..VS-10 on the compiled route table: which route (and destination) a request gets.
import {describe, expect, it} from 'vitest'
import {compileRetry, compileRouteTable, compileRe2, pickDestination, RETRY_ON, rewritePath, selectRoute, shadowAuthority, type RouteRequest, type RouteTable} from '../../../src/local/dataplane/routing.js'
import type {KubeObject, MeshSnapshot, ProxyIdentity} from '../../../src/local/dataplane/snapshot.js'

const NS = 'mesh-lab'
let age = 0
const obj = (kind: string, name: string, spec: unknown, ns = NS): KubeObject => ({apiVersion: 'networking.istio.io/v1', kind, metadata: {name, namespace: ns, creationTimestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, ++age)).toISOString()}, spec})
const VS = (name: string, spec: unknown, ns = NS) => obj('VirtualService', name, spec, ns)
const GW = (name: string, hosts = ['*'], ns = NS, selector = {istio: 'ingressgateway'}) => obj('Gateway', name, {selector, servers: [{port: {number: 80, name: 'http', protocol: 'HTTP'}, hosts}]}, ns)

function snap(p: Partial<MeshSnapshot>): MeshSnapshot {
  return {
    generation: 7,
    trustDomain: 'cluster.local',
    rootNamespace: 'istio-system',
    services: [
      {name: 'hello', namespace: NS, selector: {app: 'hello'}, ports: [{name: 'http', port: 5000, targetPort: 5000, protocol: 'TCP'}], clusterIP: '10.96.0.10'},
      {name: 'web', namespace: NS, selector: {app: 'web'}, ports: [{name: 'http', port: 80, targetPort: 8080, protocol: 'TCP'}, {name: 'admin', port: 9000, targetPort: 9000, protocol: 'TCP'}]},
      {name: 'other', namespace: 'other-ns', selector: {app: 'other'}, ports: [{name: 'http', port: 8000, targetPort: 8000, protocol: 'TCP'}]},
    ],
    endpoints: [],
    virtualServices: [],
    destinationRules: [],
    gateways: [],
    peerAuthentications: [],
    authorizationPolicies: [],
    ...p,
  }
}

const gwId: ProxyIdentity = {id: 'gw', kind: 'gateway', podName: 'istio-ingressgateway-1-2', namespace: 'istio-system', labels: {istio: 'ingressgateway', app: 'istio-ingressgateway'}, serviceAccount: 'sa', address: '127.0.0.1'}
const sideId = (labels: Record<string, string> = {app: 'sleep'}, ns = NS): ProxyIdentity => ({id: 's', kind: 'sidecar', podName: 'sleep-1-2', namespace: ns, labels, serviceAccount: 'sleep', address: '127.1.1.1'})

function req(authority: string, path = '/', headers: Record<string, string> = {}, method = 'GET'): Omit<RouteRequest, 'port'> {
  const q = path.indexOf('?')
  return {authority, method, path: q < 0 ? path : path.slice(0, q), query: q < 0 ? undefined : path.slice(q + 1), headers}
}

/** The cluster a request routes to, or 'NR'. */
function route(t: RouteTable, r: Omit<RouteRequest, 'port'>, random = () => 0): string {
  const vh = t.virtualHost(r.authority)
  if (!vh) return 'NR'
  const rt = selectRoute(vh.vhost, {...r, port: vh.port})
  if (!rt) return 'NR'
  if (rt.action.kind !== 'forward') return rt.action.kind
  return pickDestination(rt.action, random)!.cluster
}

const V1 = 'outbound|5000|v1|hello.mesh-lab.svc.cluster.local'
const V2 = 'outbound|5000|v2|hello.mesh-lab.svc.cluster.local'
const ALL = 'outbound|5000||hello.mesh-lab.svc.cluster.local'

describe('gateway context (VS-1)', () => {
  const helloVs = (gateways: string[], ns = NS) => VS('hello', {hosts: ['*'], gateways, http: [{match: [{uri: {exact: '/hello'}}], route: [{destination: {host: 'hello', port: {number: 5000}}}]}]}, ns)

  it('binds a VirtualService to a Gateway by short name in its namespace or by <ns>/<name>', () => {
    for (const gws of [['hello-gateway'], [`${NS}/hello-gateway`]]) {
      const t = compileRouteTable(snap({gateways: [GW('hello-gateway')], virtualServices: [helloVs(gws)]}), {kind: 'gateway', identity: gwId})
      expect(route(t, req('anything.example.com', '/hello'))).toBe(ALL)
      expect(route(t, req('x', '/other'))).toBe('NR') // SC-10: only /hello
    }
  })

  it('ignores Gateways that do not select this proxy, and VirtualServices bound elsewhere', () => {
    const t1 = compileRouteTable(snap({gateways: [GW('hello-gateway', ['*'], NS, {istio: 'egressgateway'})], virtualServices: [helloVs(['hello-gateway'])]}), {kind: 'gateway', identity: gwId})
    expect(route(t1, req('x', '/hello'))).toBe('NR')
    const t2 = compileRouteTable(snap({gateways: [GW('hello-gateway')], virtualServices: [helloVs(['other-gateway'])]}), {kind: 'gateway', identity: gwId})
    expect(route(t2, req('x', '/hello'))).toBe('NR')
    // a short gateway name resolves in the VirtualService's own namespace
    const t3 = compileRouteTable(snap({gateways: [GW('hello-gateway')], virtualServices: [helloVs(['hello-gateway'], 'other-ns')]}), {kind: 'gateway', identity: gwId})
    expect(route(t3, req('x', '/hello'))).toBe('NR')
  })

  it('matches server hosts and VirtualService hosts; wildcards and ports in Host are handled', () => {
    const vs = VS('hello', {hosts: ['hello.example.com'], gateways: ['gw'], http: [{route: [{destination: {host: 'hello'}}]}]})
    const t = compileRouteTable(snap({gateways: [GW('gw', ['*.example.com'])], virtualServices: [vs]}), {kind: 'gateway', identity: gwId})
    expect(route(t, req('hello.example.com'))).toBe(ALL)
    expect(route(t, req('HELLO.example.com:80'))).toBe(ALL)
    expect(route(t, req('other.example.com'))).toBe('NR')
    const narrow = compileRouteTable(snap({gateways: [GW('gw', ['api.example.org'])], virtualServices: [vs]}), {kind: 'gateway', identity: gwId})
    expect(route(narrow, req('hello.example.com'))).toBe('NR')
  })

  it('a server host restricted to a namespace only admits VirtualServices from it', () => {
    const t = compileRouteTable(snap({gateways: [GW('gw', ['other-ns/*'])], virtualServices: [helloVs([`${NS}/gw`])]}), {kind: 'gateway', identity: gwId})
    expect(route(t, req('x', '/hello'))).toBe('NR')
  })

  it('names route configs like Istio: http.<port>', () => {
    const t = compileRouteTable(snap({gateways: [GW('hello-gateway')], virtualServices: [helloVs(['hello-gateway'])]}), {kind: 'gateway', identity: gwId})
    expect(t.routeConfigs.map((r) => r.name)).toEqual(['http.80'])
    expect(t.generation).toBe(7)
  })
})

describe('sidecar context (VS-1, VS-4)', () => {
  it('routes every way a client can name a service, with or without a port', () => {
    const t = compileRouteTable(snap({}), {kind: 'sidecar', identity: sideId()})
    for (const a of ['hello', 'hello:5000', 'hello.mesh-lab', 'hello.mesh-lab:5000', 'hello.mesh-lab.svc', 'hello.mesh-lab.svc.cluster.local', 'hello.mesh-lab.svc.cluster.local:5000', '10.96.0.10:5000']) {
      expect(route(t, req(a)), a).toBe(ALL) // no VirtualService: default route to the whole service
    }
    expect(route(t, req('hello:5001'))).toBe('NR')
    expect(route(t, req('nope'))).toBe('NR')
    // short names resolve in the caller's namespace only
    expect(route(t, req('other:8000'))).toBe('NR')
    expect(route(t, req('other.other-ns:8000'))).toBe('outbound|8000||other.other-ns.svc.cluster.local')
  })

  it('without a port in Host, a multi-port service is reached on port 80 when it has one', () => {
    const t = compileRouteTable(snap({}), {kind: 'sidecar', identity: sideId()})
    expect(route(t, req('web'))).toBe('outbound|80||web.mesh-lab.svc.cluster.local')
    expect(route(t, req('web:9000'))).toBe('outbound|9000||web.mesh-lab.svc.cluster.local')
  })

  it('applies VirtualServices for mesh (gateways omitted or listing mesh) but not gateway-only ones', () => {
    const mk = (gateways?: string[]) => VS('hello', {hosts: ['hello'], ...(gateways ? {gateways} : {}), http: [{route: [{destination: {host: 'hello', subset: 'v1'}}]}]})
    const id = {kind: 'sidecar' as const, identity: sideId()}
    expect(route(compileRouteTable(snap({virtualServices: [mk()]}), id), req('hello'))).toBe(V1)
    expect(route(compileRouteTable(snap({virtualServices: [mk(['mesh', 'gw'])]}), id), req('hello'))).toBe(V1)
    expect(route(compileRouteTable(snap({virtualServices: [mk(['gw'])]}), id), req('hello'))).toBe(ALL)
  })

  it('the oldest VirtualService wins a host', () => {
    const a = VS('a', {hosts: ['hello'], http: [{route: [{destination: {host: 'hello', subset: 'v1'}}]}]})
    const b = VS('b', {hosts: ['hello.mesh-lab.svc.cluster.local'], http: [{route: [{destination: {host: 'hello', subset: 'v2'}}]}]})
    const t = compileRouteTable(snap({virtualServices: [b, a]}), {kind: 'sidecar', identity: sideId()})
    expect(route(t, req('hello'))).toBe(V1)
    expect(t.warnings.join()).toMatch(/already routed/)
  })

  it('sourceLabels and per-match gateways are decided for the proxy at build time', () => {
    const vs = VS('hello', {hosts: ['hello'], http: [{match: [{sourceLabels: {app: 'sleep'}}], route: [{destination: {host: 'hello', subset: 'v2'}}]}, {route: [{destination: {host: 'hello', subset: 'v1'}}]}]})
    expect(route(compileRouteTable(snap({virtualServices: [vs]}), {kind: 'sidecar', identity: sideId({app: 'sleep'})}), req('hello'))).toBe(V2)
    expect(route(compileRouteTable(snap({virtualServices: [vs]}), {kind: 'sidecar', identity: sideId({app: 'curl'})}), req('hello'))).toBe(V1)
  })
})

describe('matching (VS-2, VS-3)', () => {
  const table = (http: unknown[]) => compileRouteTable(snap({virtualServices: [VS('hello', {hosts: ['hello'], http})]}), {kind: 'sidecar', identity: sideId()})
  const to = (subset: string, match?: unknown[]) => ({...(match ? {match} : {}), route: [{destination: {host: 'hello', subset}}]})

  it('first matching route wins, not the longest prefix', () => {
    const t = table([to('v1', [{uri: {prefix: '/'}}]), to('v2', [{uri: {prefix: '/hello'}}])])
    expect(route(t, req('hello', '/hello'))).toBe(V1)
  })

  it('match entries are ORed; fields within one entry are ANDed', () => {
    const t = table([to('v2', [{uri: {exact: '/a'}, method: {exact: 'POST'}}, {headers: {'x-canary': {exact: 'yes'}}}]), to('v1')])
    expect(route(t, req('hello', '/a', {}, 'POST'))).toBe(V2)
    expect(route(t, req('hello', '/a', {}, 'GET'))).toBe(V1)
    expect(route(t, req('hello', '/b', {'x-canary': 'yes'}))).toBe(V2)
  })

  it('uri exact ignores the query; prefix; regex is a full match; ignoreUriCase covers exact and prefix', () => {
    const t = table([to('v2', [{uri: {exact: '/hello'}}, {uri: {regex: '/v[0-9]+/.*'}}, {uri: {prefix: '/API/'}, ignoreUriCase: true}]), to('v1')])
    expect(route(t, req('hello', '/hello?x=1'))).toBe(V2)
    expect(route(t, req('hello', '/hello/'))).toBe(V1)
    expect(route(t, req('hello', '/v12/items'))).toBe(V2)
    expect(route(t, req('hello', '/x/v12/items'))).toBe(V1) // regex must match the whole path
    expect(route(t, req('hello', '/api/users'))).toBe(V2)
    expect(route(t, req('hello', '/HELLO'))).toBe(V1) // exact is case-sensitive without ignoreUriCase
  })

  it('headers: exact (case-sensitive value), prefix, regex, present {}; withoutHeaders inverts (SC-1)', () => {
    const t = table([
      to('v2', [{headers: {'end-user': {exact: 'jason'}}}, {headers: {'x-ver': {prefix: 'beta'}}}, {headers: {'x-id': {regex: '[0-9]{3}'}}}, {headers: {'X-Debug': {}}}]),
      to('v1'),
    ])
    expect(route(t, req('hello', '/', {'end-user': 'jason'}))).toBe(V2)
    expect(route(t, req('hello', '/', {'end-user': 'Jason'}))).toBe(V1)
    expect(route(t, req('hello', '/', {'x-ver': 'beta-3'}))).toBe(V2)
    expect(route(t, req('hello', '/', {'x-id': '1234'}))).toBe(V1)
    expect(route(t, req('hello', '/', {'x-id': '123'}))).toBe(V2)
    expect(route(t, req('hello', '/', {'x-debug': ''}))).toBe(V2)
    const w = table([to('v2', [{withoutHeaders: {'end-user': {exact: 'jason'}}}]), to('v1')])
    expect(route(w, req('hello', '/', {'end-user': 'mary'}))).toBe(V2)
    expect(route(w, req('hello', '/', {'end-user': 'jason'}))).toBe(V1)
    expect(route(w, req('hello', '/'))).toBe(V1) // Envoy: an absent header never matches an inverted value matcher
    const absent = table([to('v2', [{withoutHeaders: {'x-debug': {}}}]), to('v1')])
    expect(route(absent, req('hello', '/'))).toBe(V2)
    expect(route(absent, req('hello', '/', {'x-debug': '1'}))).toBe(V1)
  })

  it('method and queryParams (exact "" matches a bare key)', () => {
    const t = table([to('v2', [{method: {exact: 'DELETE'}}, {queryParams: {debug: {exact: ''}}}, {queryParams: {v: {exact: '2'}}}, {queryParams: {id: {regex: '\\d+'}}}]), to('v1')])
    expect(route(t, req('hello', '/', {}, 'DELETE'))).toBe(V2)
    expect(route(t, req('hello', '/?debug'))).toBe(V2)
    expect(route(t, req('hello', '/?v=2'))).toBe(V2)
    expect(route(t, req('hello', '/?v=3'))).toBe(V1)
    expect(route(t, req('hello', '/?id=42'))).toBe(V2)
    expect(route(t, req('hello', '/?id=4x'))).toBe(V1)
  })

  it('no matching route → NR; an invalid regex never matches and is reported', () => {
    const t = table([to('v2', [{uri: {regex: '(unclosed'}}])])
    expect(route(t, req('hello', '/x'))).toBe('NR')
    expect(t.warnings.join()).toMatch(/invalid regex/)
  })

  it('accepts RE2 spellings JavaScript writes differently', () => {
    expect(compileRe2('(?i)/hello').test('/HELLO')).toBe(true)
    expect(compileRe2('(?P<v>v[0-9])').test('v1')).toBe(true)
  })
})

describe('destinations (VS-5) and route actions', () => {
  it('weights are weight ÷ sum per request; one destination takes everything whatever its weight', () => {
    const vs = VS('hello', {hosts: ['hello'], http: [{route: [{destination: {host: 'hello', subset: 'v1'}, weight: 9}, {destination: {host: 'hello', subset: 'v2'}, weight: 1}]}]})
    const t = compileRouteTable(snap({virtualServices: [vs]}), {kind: 'sidecar', identity: sideId()})
    expect(route(t, req('hello'), () => 0.899)).toBe(V1)
    expect(route(t, req('hello'), () => 0.9)).toBe(V2)
    const one = compileRouteTable(snap({virtualServices: [VS('h', {hosts: ['hello'], http: [{route: [{destination: {host: 'hello', subset: 'v2'}, weight: 10}]}]})]}), {kind: 'sidecar', identity: sideId()})
    expect(route(one, req('hello'), () => 0.99)).toBe(V2)
    const zero = compileRouteTable(snap({virtualServices: [VS('h', {hosts: ['hello'], http: [{route: [{destination: {host: 'hello', subset: 'v1'}, weight: 100}, {destination: {host: 'hello', subset: 'v2'}, weight: 0}]}]})]}), {kind: 'sidecar', identity: sideId()})
    for (const r of [0, 0.5, 0.999]) expect(route(zero, req('hello'), () => r)).toBe(V1)
  })

  it('a destination short name resolves in the VirtualService namespace; the port comes from the service', () => {
    const vs = VS('r', {hosts: ['hello'], http: [{route: [{destination: {host: 'other.other-ns.svc.cluster.local'}}]}]})
    const t = compileRouteTable(snap({virtualServices: [vs]}), {kind: 'sidecar', identity: sideId()})
    expect(route(t, req('hello'))).toBe('outbound|8000||other.other-ns.svc.cluster.local')
  })

  it('compiles timeout, fault, mirror, headers, rewrite, redirect and direct responses', () => {
    const vs = VS('hello', {
      hosts: ['hello'],
      http: [
        {match: [{uri: {prefix: '/redirect'}}], redirect: {uri: '/new', authority: 'web'}},
        {match: [{uri: {prefix: '/direct'}}], directResponse: {status: 418, body: {string: 'teapot'}}},
        {
          name: 'main',
          match: [{uri: {prefix: '/old'}}],
          rewrite: {uri: '/new'},
          timeout: '0.5s',
          fault: {delay: {fixedDelay: '7s', percentage: {value: 100}}, abort: {httpStatus: 500}},
          mirror: {host: 'hello', subset: 'v2'},
          mirrorPercentage: {value: 25},
          headers: {request: {set: {'X-A': '1'}, add: {'x-b': '2'}, remove: ['x-c']}, response: {set: {'x-d': '4'}}},
          route: [{destination: {host: 'hello', subset: 'v1'}}],
        },
      ],
    })
    const t = compileRouteTable(snap({virtualServices: [vs]}), {kind: 'sidecar', identity: sideId()})
    expect(route(t, req('hello', '/redirect'))).toBe('redirect')
    expect(route(t, req('hello', '/direct'))).toBe('direct')
    const vh = t.virtualHost('hello')!
    const r = selectRoute(vh.vhost, {...req('hello', '/old/page'), port: vh.port})!
    expect(r.name).toBe('main')
    if (r.action.kind !== 'forward') throw new Error('expected forward')
    expect(r.action.timeoutMs).toBe(500)
    // abort without a percentage aborts nothing (VS-8)
    expect(r.action.fault).toEqual({delayMs: 7000, delayPercent: 100, abortStatus: 500, abortPercent: 0})
    expect(r.action.mirrors).toEqual([{cluster: V2, host: 'hello.mesh-lab.svc.cluster.local', percent: 25}])
    expect(r.action.headers?.request).toEqual({set: [['x-a', '1']], add: [['x-b', '2']], remove: ['x-c']})
    expect(rewritePath(r.action.rewrite!, '/old/page', 'q=1')).toBe('/new/page?q=1')
  })

  it('mirrors get a -shadow Host', () => {
    expect(shadowAuthority('hello:5000')).toBe('hello-shadow:5000')
    expect(shadowAuthority('hello.mesh-lab.svc.cluster.local')).toBe('hello.mesh-lab.svc.cluster.local-shadow')
  })
})

describe('retries (VS-6)', () => {
  it('default: 2 retries on connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes with no codes', () => {
    const r = compileRetry(undefined)!
    expect(r.attempts).toBe(2)
    expect(r.statusCodes).toEqual([]) // so a 503 from upstream is not retried by default
    expect(r.retryOn & RETRY_ON['5XX']).toBe(0)
    expect(r.retryOn & RETRY_ON.CONNECT_FAILURE).toBeTruthy()
    expect(r.backoffBaseMs).toBe(25)
    expect(r.avoidPreviousHosts).toBe(true)
  })

  it('attempts 0 (or a retries block without attempts) disables retries', () => {
    expect(compileRetry({attempts: 0})).toBeNull()
    expect(compileRetry({perTryTimeout: '1s'})).toBeNull()
  })

  it('integers in retryOn become retriable status codes; 5xx and gateway-error parse; perTryTimeout', () => {
    const r = compileRetry({attempts: 3, retryOn: 'gateway-error,503,connect-failure', perTryTimeout: '2s'})!
    expect(r.attempts).toBe(3)
    expect(r.statusCodes).toEqual([503])
    expect(r.retryOn).toBe(RETRY_ON.GATEWAY_ERROR | RETRY_ON.CONNECT_FAILURE | RETRY_ON.RETRIABLE_STATUS_CODES)
    expect(r.perTryTimeoutMs).toBe(2000)
    expect(compileRetry({attempts: 1, retryOn: '5xx'})!.retryOn).toBe(RETRY_ON['5XX'])
  })
})
