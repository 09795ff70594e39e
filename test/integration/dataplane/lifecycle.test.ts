// Config pushes under load, the admin endpoint and the access log.
import {afterAll, describe, expect, it} from 'vitest'
import {Pool} from 'undici'
import {createAdminServer} from '../../../src/local/dataplane/admin.js'
import {createProxy} from '../../../src/local/dataplane/proxy.js'
import {formatAccessLogText} from '../../../src/local/dataplane/telemetry.js'
import {FLAG} from '../../../src/local/dataplane/util.js'
import {dr, endpoint, gateway, gatewayId, get, load, randomPort, service, snapshot, startUpstream, vs} from './helpers.js'

const cleanup: (() => Promise<unknown>)[] = []
afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => {})
})

async function setup() {
  const port = randomPort()
  const v1 = await startUpstream('v1', {port, keepSeen: false})
  const v2 = await startUpstream('v2', {port, keepSeen: false})
  cleanup.push(() => v1.close(), () => v2.close())
  const mk = (generation: number, w1: number, extraDr: Record<string, unknown> = {}) =>
    snapshot({
      generation,
      services: [service('hello', 5000, port, {app: 'hello'})],
      endpoints: [endpoint(v1, {app: 'hello', version: 'v1'}), endpoint(v2, {app: 'hello', version: 'v2'})],
      gateways: [gateway('gw')],
      destinationRules: [dr('hello', {host: 'hello', ...extraDr, subsets: [{name: 'v1', labels: {version: 'v1'}}, {name: 'v2', labels: {version: 'v2'}}]})],
      virtualServices: [vs('hello', {hosts: ['*'], gateways: ['gw'], http: [{route: [{destination: {host: 'hello', subset: 'v1'}, weight: w1}, {destination: {host: 'hello', subset: 'v2'}, weight: 100 - w1}]}]})],
    })
  return {v1, v2, mk}
}

describe('config pushes', () => {
  it('applySnapshot during load drops no in-flight request, and new weights take effect', async () => {
    const {v1, v2, mk} = await setup()
    const proxy = await createProxy({identity: gatewayId(), listeners: [{role: 'gateway', host: '127.0.0.1', port: 0}], snapshot: mk(1, 100)})
    cleanup.push(() => proxy.close())
    const url = `http://127.0.0.1:${proxy.addresses[0].port}`
    v1.delayMs = 20 // keep requests in flight across pushes
    v2.delayMs = 20
    const pool = new Pool(url, {connections: 16})
    cleanup.push(() => pool.close())
    let pushes = 0
    const pusher = (async () => {
      // weight changes (routes only) and DestinationRule changes (clusters replaced) while requests fly
      for (let g = 2; g <= 21; g++) {
        await new Promise((r) => setTimeout(r, 15))
        proxy.applySnapshot(mk(g, g % 2 === 0 ? 50 : 100, g % 3 === 0 ? {trafficPolicy: {loadBalancer: {simple: g % 2 ? 'RANDOM' : 'ROUND_ROBIN'}}} : {}))
        pushes++
      }
    })()
    const replies = await load(600, 16, async () => {
      const res = await pool.request({path: '/hello', method: 'GET'})
      return {status: res.statusCode, body: await res.body.text(), headers: res.headers}
    })
    await pusher
    expect(pushes).toBe(20)
    expect(replies.filter((r) => r.status !== 200)).toEqual([])
    expect(proxy.generation).toBe(21)
    // last push: 100% v1
    const before2 = v2.hits
    await load(50, 5, () => get(`${url}/hello`))
    expect(v2.hits).toBe(before2)
  })
})

describe('admin endpoint', () => {
  it('serves /ready, /config_dump, /clusters (json and text), /stats and /stats/prometheus', async () => {
    const {mk} = await setup()
    const proxy = await createProxy({identity: gatewayId(), listeners: [{role: 'gateway', host: '127.0.0.1', port: 0}]})
    cleanup.push(() => proxy.close())
    const admin = await createAdminServer(proxy, {host: '127.0.0.1', port: 0})
    cleanup.push(() => admin.close())
    const a = `http://127.0.0.1:${admin.port}`
    expect((await get(`${a}/ready`)).status).toBe(503)
    // before the first config the gateway answers 503 NC (Envoy would have no listener at all)
    expect((await get(`http://127.0.0.1:${proxy.addresses[0].port}/hello`)).status).toBe(503)
    proxy.applySnapshot(mk(5, 90, {trafficPolicy: {connectionPool: {tcp: {maxConnections: 7}}, outlierDetection: {consecutive5xxErrors: 2}}}))
    const ready = await get(`${a}/ready`)
    expect([ready.status, ready.body]).toEqual([200, 'LIVE\n'])
    const dump = JSON.parse((await get(`${a}/config_dump`)).body)
    expect(dump).toMatchObject({proxy: 'istio-ingressgateway.istio-system', kind: 'gateway', generation: 5})
    expect(dump.routeConfigs[0].name).toBe('http.80')
    expect(dump.routeConfigs[0].virtualHosts[0].routes[0]).toEqual({name: '-', virtualService: 'mesh-lab/hello'})
    expect(dump.clusters).toContain('outbound|5000|v2|hello.mesh-lab.svc.cluster.local')
    await load(10, 2, () => get(`http://127.0.0.1:${proxy.addresses[0].port}/hello`))
    const clusters = JSON.parse((await get(`${a}/clusters?format=json`)).body)
    const v1c = clusters.cluster_statuses.find((c: {name: string}) => c.name === 'outbound|5000|v1|hello.mesh-lab.svc.cluster.local')
    expect(v1c.circuit_breakers.maxConnections).toBe(7)
    expect(v1c.outlier_detection).toMatchObject({consecutive5xx: 2, maxEjectionPercent: 10})
    expect(v1c.host_statuses[0]).toMatchObject({ejected: false, ejectedUntil: null, consecutive5xx: 0, ejections: 0, rqActive: 0})
    expect(v1c.host_statuses[0].rqTotal).toBeGreaterThan(0)
    const text = (await get(`${a}/clusters`)).body
    expect(text).toMatch(/^outbound\|5000\|v1\|hello\.mesh-lab\.svc\.cluster\.local::127\.[\d.]+:\d+::health_flags::healthy$/m)
    expect((await get(`${a}/stats`)).body).toMatch(/^cluster\.outbound\|5000\|v1\|hello\.mesh-lab\.svc\.cluster\.local\.upstream_rq_total: \d+$/m)
    const prom = await get(`${a}/stats/prometheus`)
    expect(prom.headers['content-type']).toMatch(/^text\/plain/)
    expect(prom.body).toMatch(/^# TYPE istio_requests_total counter$/m)
    expect(prom.body).toMatch(/^# TYPE istio_request_duration_milliseconds histogram$/m)
    expect(prom.body).toMatch(/^istio_request_duration_milliseconds_bucket\{reporter="source",[^}]*le="\+Inf"\} \d+$/m)
    expect(prom.body).toMatch(/^istio_request_bytes_count\{reporter="source",[^}]*\} \d+$/m)
    expect(prom.body).toMatch(/^envoy_cluster_upstream_cx_active\{cluster_name="outbound\|5000\|v1\|hello\.mesh-lab\.svc\.cluster\.local"\} \d+$/m)
    expect(prom.body).toMatch(/^envoy_cluster_outlier_detection_ejections_active\{cluster_name="outbound\|5000\|v1\|hello\.mesh-lab\.svc\.cluster\.local"\} 0$/m)
    // the request counter agrees with what was sent
    const total = [...prom.body.matchAll(/^istio_requests_total\{[^}]*response_code="200"[^}]*\} (\d+)$/gm)].reduce((s, m) => s + Number(m[1]), 0)
    expect(total).toBe(10)
  })
})

describe('access log (TM-4)', () => {
  it('writes Istio’s default text format', () => {
    const line = formatAccessLogText({
      startTime: Date.UTC(2026, 10, 22, 10, 0, 0, 123),
      method: 'GET',
      path: '/hello',
      protocol: 'HTTP/1.1',
      code: 503,
      flags: FLAG.UF | FLAG.URX,
      details: 'upstream_reset_before_response_started{connection_failure}',
      bytesReceived: 0,
      bytesSent: 91,
      durationMs: 52.4,
      userAgent: 'curl/8.5.0',
      requestId: 'abc',
      authority: 'hello:5000',
      upstreamHost: '127.1.2.3:5000',
      upstreamCluster: 'outbound|5000||hello.mesh-lab.svc.cluster.local',
      downstreamLocalAddress: '127.9.9.9:15001',
      downstreamRemoteAddress: '127.9.9.9:41234',
      routeName: 'default',
    })
    expect(line).toBe(
      '[2026-11-22T10:00:00.123Z] "GET /hello HTTP/1.1" 503 UF,URX upstream_reset_before_response_started{connection_failure} - "-" 0 91 52 - "-" "curl/8.5.0" "abc" "hello:5000" "127.1.2.3:5000" outbound|5000||hello.mesh-lab.svc.cluster.local - 127.9.9.9:15001 127.9.9.9:41234 - default\n',
    )
  })
})
