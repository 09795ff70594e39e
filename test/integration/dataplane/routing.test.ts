// Routing through a real gateway proxy to real node:http upstreams on random loopback
// addresses (VS-2..VS-10, SC-1, SC-4, SC-5).
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {Pool} from 'undici'
import {createProxy, type Proxy} from '../../../src/local/dataplane/proxy.js'
import type {MeshSnapshot} from '../../../src/local/dataplane/snapshot.js'
import {dr, endpoint, gateway, gatewayId, get, load, randomPort, service, snapshot, startUpstream, vs, type Reply, type Upstream} from './helpers.js'

const HELLO = {app: 'hello'}
let port: number
let v1: Upstream
let v2: Upstream
let proxy: Proxy
let url: string
let pool: Pool
const logLines: string[] = []

const subsets = dr('hello', {host: 'hello', subsets: [{name: 'v1', labels: {version: 'v1'}}, {name: 'v2', labels: {version: 'v2'}}]})

function base(extra: Partial<MeshSnapshot> = {}): MeshSnapshot {
  return snapshot({
    services: [service('hello', 5000, port, HELLO)],
    endpoints: [endpoint(v1, {app: 'hello', version: 'v1'}), endpoint(v2, {app: 'hello', version: 'v2'})],
    gateways: [gateway('hello-gateway')],
    destinationRules: [subsets],
    ...extra,
  })
}

let generation = 1
function apply(http: unknown[], extra: Partial<MeshSnapshot> = {}) {
  proxy.applySnapshot({...base(extra), generation: ++generation, virtualServices: [vs('hello', {hosts: ['*'], gateways: ['hello-gateway'], http}), ...(extra.virtualServices ?? [])]})
}

async function send(path = '/hello', headers: Record<string, string> = {}, method = 'GET'): Promise<Reply> {
  const res = await pool.request({path, method: method as 'GET', headers})
  return {status: res.statusCode, body: await res.body.text(), headers: res.headers}
}

const version = (r: Reply) => /Hello version: (v\d)/.exec(r.body)?.[1]

beforeAll(async () => {
  port = randomPort()
  v1 = await startUpstream('v1', {port})
  v2 = await startUpstream('v2', {port})
  const stream = {write: (s: string) => (logLines.push(s), true)} as unknown as NodeJS.WritableStream
  proxy = await createProxy({identity: gatewayId(), listeners: [{role: 'gateway', host: '127.0.0.1', port: 0}], snapshot: base(), accessLog: {stream: stream as never}})
  url = `http://127.0.0.1:${proxy.addresses[0].port}`
  pool = new Pool(url, {connections: 10})
})

afterAll(async () => {
  await pool?.close()
  await proxy?.close()
  await v1?.close()
  await v2?.close()
})

afterEach(() => {
  v1.status = 200
  v2.status = 200
  v1.delayMs = 0
  v2.delayMs = 0
  v1.seen.length = 0
  v2.seen.length = 0
})

describe('weighted routing (VS-5, SC-2)', () => {
  it('90/10 over 2,000 requests lands inside the binomial 99.9% interval, and each upstream saw what the client saw', async () => {
    apply([{route: [{destination: {host: 'hello', subset: 'v1'}, weight: 90}, {destination: {host: 'hello', subset: 'v2'}, weight: 10}]}])
    const h1 = v1.hits
    const h2 = v2.hits
    const replies = await load(2000, 10, () => send())
    const n2 = replies.filter((r) => version(r) === 'v2').length
    const n1 = replies.filter((r) => version(r) === 'v1').length
    expect(n1 + n2).toBe(2000)
    // n = 2000, p = 0.1: mean 200, sd 13.4; z(99.9%, two-sided) = 3.29 → [156, 244]
    expect(n2).toBeGreaterThanOrEqual(156)
    expect(n2).toBeLessThanOrEqual(244)
    expect(v2.hits - h2).toBe(n2)
    expect(v1.hits - h1).toBe(n1)
  })

  it('a single destination takes all traffic; weight 0 beside another gets none', async () => {
    apply([{route: [{destination: {host: 'hello', subset: 'v1'}, weight: 100}, {destination: {host: 'hello', subset: 'v2'}, weight: 0}]}])
    const r = await load(100, 5, () => send())
    expect(r.every((x) => version(x) === 'v1')).toBe(true)
  })
})

describe('matching (SC-1, SC-10, VS-4)', () => {
  it('end-user: jason goes to v2, everyone else to v1 (case-sensitive)', async () => {
    apply([
      {match: [{headers: {'end-user': {exact: 'jason'}}}], route: [{destination: {host: 'hello', subset: 'v2'}}]},
      {route: [{destination: {host: 'hello', subset: 'v1'}}]},
    ])
    for (let i = 0; i < 10; i++) {
      expect(version(await send('/hello', {'end-user': 'jason'}))).toBe('v2')
      expect(version(await send('/hello', {'end-user': 'Jason'}))).toBe('v1')
      expect(version(await send('/hello'))).toBe('v1')
    }
  })

  it('no matching route: 404 with an empty body, flag NR, and no upstream is contacted', async () => {
    apply([{match: [{uri: {exact: '/hello'}}], route: [{destination: {host: 'hello', port: {number: 5000}}}]}])
    const before = v1.hits + v2.hits
    const r = await get(`${url}/nope`)
    expect(r.status).toBe(404)
    expect(r.body).toBe('')
    expect(v1.hits + v2.hits).toBe(before)
    expect(logLines.at(-1)).toMatch(/"GET \/nope HTTP\/1.1" 404 NR route_not_found /)
    expect(await proxy.metrics()).toMatch(/istio_requests_total\{reporter="source",[^}]*response_code="404",response_flags="NR",[^}]*\} 1/)
  })

  it('a route to an undefined subset answers 503 NC', async () => {
    apply([{route: [{destination: {host: 'hello', subset: 'v3'}}]}])
    const r = await get(`${url}/hello`)
    expect(r.status).toBe(503)
    expect(logLines.at(-1)).toMatch(/ 503 NC cluster_not_found /)
  })

  it('a host with no VirtualService at the gateway is not routed (404)', async () => {
    proxy.applySnapshot({...base(), generation: ++generation, virtualServices: []})
    expect((await get(`${url}/hello`)).status).toBe(404)
  })
})

describe('faults (VS-8, SC-4)', () => {
  it('abort 500 at 100% for jason: immediate 500 "fault filter abort", flag FI, upstream never hit, only reporter=source', async () => {
    apply([
      {match: [{headers: {'end-user': {exact: 'jason'}}}], fault: {abort: {httpStatus: 500, percentage: {value: 100}}}, route: [{destination: {host: 'hello', subset: 'v1'}}]},
      {route: [{destination: {host: 'hello', subset: 'v1'}}]},
    ])
    const before = v1.hits + v2.hits
    for (let i = 0; i < 20; i++) {
      const r = await send('/hello', {'end-user': 'jason'})
      expect(r.status).toBe(500)
      expect(r.body).toBe('fault filter abort')
    }
    expect(v1.hits + v2.hits).toBe(before)
    expect(logLines.at(-1)).toMatch(/ 500 FI fault_filter_abort /)
    const m = await proxy.metrics()
    expect(m).toMatch(/istio_requests_total\{reporter="source",[^}]*response_code="500",response_flags="FI",[^}]*\} 20/)
    expect(m).not.toMatch(/reporter="destination"/)
    expect((await send('/hello')).status).toBe(200)
  })

  it('abort at 50% aborts about half (binomial), the rest reach the upstream', async () => {
    apply([{fault: {abort: {httpStatus: 503, percentage: {value: 50}}}, route: [{destination: {host: 'hello', subset: 'v1'}}]}])
    const before = v1.hits
    const r = await load(400, 10, () => send())
    const aborted = r.filter((x) => x.status === 503 && x.body === 'fault filter abort').length
    expect(aborted).toBeGreaterThan(400 * 0.5 - 3.29 * 10) // sd = sqrt(400 · .25) = 10
    expect(aborted).toBeLessThan(400 * 0.5 + 3.29 * 10)
    expect(v1.hits - before).toBe(400 - aborted)
  })

  it('a fault without a percentage does nothing; a delay is flagged DI and the request still arrives', async () => {
    apply([{fault: {abort: {httpStatus: 500}}, route: [{destination: {host: 'hello', subset: 'v1'}}]}])
    expect((await send()).status).toBe(200)
    apply([{fault: {delay: {fixedDelay: '0.05s', percentage: {value: 100}}}, route: [{destination: {host: 'hello', subset: 'v1'}}]}])
    const r = await send()
    expect(r.status).toBe(200)
    expect(logLines.at(-1)).toMatch(/ 200 DI via_upstream /)
  })
})

describe('timeouts (VS-7, SC-5)', () => {
  it('route timeout shorter than a slow upstream: 504 "upstream request timeout", flag UT', async () => {
    v1.delayMs = 300
    apply([{timeout: '0.1s', route: [{destination: {host: 'hello', subset: 'v1'}}]}])
    const r = await send()
    expect(r.status).toBe(504)
    expect(r.body).toBe('upstream request timeout')
    expect(logLines.at(-1)).toMatch(/ 504 UT response_timeout /)
  })

  it('no timeout by default: a slow upstream is waited for', async () => {
    v1.delayMs = 300
    apply([{route: [{destination: {host: 'hello', subset: 'v1'}}]}])
    expect((await send()).status).toBe(200)
  })

  it('perTryTimeout with retries: each try is cut, then 504 UT with URX', async () => {
    v1.delayMs = 300
    apply([{retries: {attempts: 1, perTryTimeout: '0.05s', retryOn: '5xx'}, route: [{destination: {host: 'hello', subset: 'v1'}}]}])
    const before = v1.hits
    const r = await send()
    expect(r.status).toBe(504)
    expect(v1.hits - before).toBe(2)
    expect(logLines.at(-1)).toMatch(/ 504 UT,URX /)
  })
})

describe('headers, mirror, rewrite (VS-9, VS-10)', () => {
  it('applies request and response header operations; destination-level set wins', async () => {
    apply([
      {
        headers: {request: {set: {'x-route': 'r', 'x-both': 'route'}, add: {'x-added': 'a'}, remove: ['x-secret']}, response: {set: {'x-served-by': 'mesh'}}},
        route: [{destination: {host: 'hello', subset: 'v1'}, headers: {request: {set: {'x-both': 'destination'}}}}],
      },
    ])
    const r = await send('/hello', {'x-secret': 's', 'x-added': 'client'})
    expect(r.headers['x-served-by']).toBe('mesh')
    expect(r.headers.server).toBe('istio-envoy')
    expect(r.headers['x-envoy-upstream-service-time']).toMatch(/^\d+$/)
    const seen = v1.seen.at(-1)!.headers
    expect(seen['x-route']).toBe('r')
    expect(seen['x-both']).toBe('destination')
    expect(seen['x-added']).toBe('client, a')
    expect(seen['x-secret']).toBeUndefined()
    expect(seen['x-request-id']).toMatch(/^[0-9a-f-]{36}$/)
    expect(seen['x-forwarded-proto']).toBe('http')
    expect(seen['x-forwarded-for']).toBe('127.0.0.1')
  })

  it('mirrors every request to v2 with a -shadow Host; the caller only sees v1 (SC-7)', async () => {
    apply([{route: [{destination: {host: 'hello', subset: 'v1'}}], mirror: {host: 'hello', subset: 'v2'}}])
    const before = v2.hits
    const r = await load(20, 4, () => send('/hello', {host: 'hello.example.com'}))
    expect(r.every((x) => version(x) === 'v1')).toBe(true)
    for (let i = 0; i < 100 && v2.hits - before < 20; i++) await new Promise((res) => setTimeout(res, 20))
    expect(v2.hits - before).toBe(20)
    expect(v2.seen.at(-1)!.headers.host).toBe('hello.example.com-shadow')
  })

  it('rewrites a matched prefix', async () => {
    apply([{match: [{uri: {prefix: '/api/'}}], rewrite: {uri: '/'}, route: [{destination: {host: 'hello', subset: 'v1'}}]}])
    await send('/api/hello?x=1')
    expect(v1.seen.at(-1)!.url).toBe('/hello?x=1')
  })

  it('forwards request bodies', async () => {
    apply([{route: [{destination: {host: 'hello', subset: 'v1'}}]}])
    const r = await send('/echo', {'content-type': 'text/plain'}, 'POST')
    expect(r.status).toBe(200)
    expect(v1.seen.at(-1)!.method).toBe('POST')
  })
})
