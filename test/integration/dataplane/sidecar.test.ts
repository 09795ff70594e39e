// A meshed caller (sleep: outbound listener) → a meshed server (hello: inbound listener → app
// on containerPort + APP_PORT_OFFSET), with the SecurityProvider seams exercised by a test
// provider: authorization, STRICT/PERMISSIVE, and mutual TLS with SPIFFE certificates.
import http from 'node:http'
import net from 'node:net'
import tls from 'node:tls'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {createProxy, type Proxy} from '../../../src/local/dataplane/proxy.js'
import type {AuthzDecision, AuthzRequest, MtlsMode, Peer, SecurityProvider} from '../../../src/local/dataplane/security-provider.js'
import {APP_PORT_OFFSET, type Endpoint, type MeshSnapshot} from '../../../src/local/dataplane/snapshot.js'
import {get, randomLoopback, randomPort, service, sidecarId, snapshot, testCa, vs, type TestCa} from './helpers.js'

const NS = 'mesh-lab'

class TestSecurity implements SecurityProvider {
  mode: MtlsMode = 'PERMISSIVE'
  server: tls.SecureContextOptions | undefined
  client: tls.ConnectionOptions | undefined
  principal: string | undefined
  lastPeer: Peer | undefined
  tlsPolicy(): MtlsMode {
    return this.mode
  }
  serverTls() {
    return this.server
  }
  forwardClientCert(peer: Peer) {
    return `By=spiffe://cluster.local/ns/${NS}/sa/hello;URI=${peer.principal}`
  }
  authorize(req: AuthzRequest, peer: Peer): AuthzDecision {
    this.lastPeer = peer
    if (req.path.startsWith('/admin')) return {allowed: false, policy: `ns[${NS}]-policy[deny-admin]-rule[0]`}
    if (req.method === 'DELETE') return {allowed: false}
    return {allowed: true}
  }
  upstreamTls() {
    return this.client
  }
  ownPrincipal() {
    return this.principal
  }
}

let port: number
const sleepIP = randomLoopback()
const helloIP = randomLoopback()
let app: http.Server
const appSeen: {url: string; headers: http.IncomingHttpHeaders; remote: string}[] = []
let sleep: Proxy
let hello: Proxy
let sleepSec: TestSecurity
let helloSec: TestSecurity
let outbound: string
let ca: TestCa

const ep = (address: string, app: string, labels: Record<string, string>): Endpoint => ({address, podName: `${app}-6d9f7c8b4-abcde`, namespace: NS, labels, serviceAccount: app, sidecar: true, ready: true, ports: [port]})

function snap(extra: Partial<MeshSnapshot> = {}): MeshSnapshot {
  return snapshot({
    services: [service('hello', 5000, port, {app: 'hello'}), service('sleep', 80, 80, {app: 'sleep'})],
    endpoints: [ep(helloIP, 'hello', {app: 'hello', version: 'v1'}), ep(sleepIP, 'sleep', {app: 'sleep'})],
    ...extra,
  })
}

beforeAll(async () => {
  port = randomPort()
  app = http.createServer((req, res) => {
    appSeen.push({url: req.url ?? '', headers: req.headers, remote: req.socket.remoteAddress ?? ''})
    req.resume()
    req.on('end', () => res.end(`Hello version: v1, instance: hello-6d9f7c8b4-abcde\n`))
  })
  await new Promise<void>((r) => app.listen(port + APP_PORT_OFFSET, helloIP, () => r()))
  sleepSec = new TestSecurity()
  helloSec = new TestSecurity()
  hello = await createProxy({identity: {...sidecarId('hello', helloIP), labels: {app: 'hello', version: 'v1'}, podName: 'hello-6d9f7c8b4-abcde'}, listeners: [{role: 'inbound', host: helloIP, port}], security: helloSec, snapshot: snap()})
  sleep = await createProxy({identity: {...sidecarId('sleep', sleepIP), podName: 'sleep-6d9f7c8b4-abcde'}, listeners: [{role: 'outbound', host: sleepIP, port: 0}], security: sleepSec, snapshot: snap()})
  outbound = `http://${sleepIP}:${sleep.addresses[0].port}`
  ca = await testCa()
})

afterAll(async () => {
  await sleep?.close()
  await hello?.close()
  await new Promise((r) => app?.close(r))
})

describe('outbound listener', () => {
  it('routes by Host however the service is named, with or without the port', async () => {
    for (const host of ['hello:5000', 'hello', 'hello.mesh-lab', 'hello.mesh-lab:5000', 'hello.mesh-lab.svc.cluster.local', 'hello.mesh-lab.svc.cluster.local:5000']) {
      const r = await get(`${outbound}/hello`, {host})
      expect(r.status, host).toBe(200)
      expect(r.body).toMatch(/^Hello version: v1/)
    }
  })

  it('accepts absolute-form request targets, like an HTTP proxy', async () => {
    const body = await new Promise<string>((resolve, reject) => {
      const req = http.request({host: sleepIP, port: sleep.addresses[0].port, path: `http://hello.mesh-lab:5000/hello?x=1`, headers: {host: 'ignored'}}, (res) => {
        let b = ''
        res.on('data', (c) => (b += c))
        res.on('end', () => resolve(b))
      })
      req.on('error', reject)
      req.end()
    })
    expect(body).toMatch(/^Hello version: v1/)
    expect(appSeen.at(-1)!.url).toBe('/hello?x=1')
    expect(appSeen.at(-1)!.headers.host).toBe('hello.mesh-lab:5000')
  })

  it('applies mesh VirtualServices: a fault at the caller never reaches the server', async () => {
    sleep.applySnapshot({...snap(), generation: 2, virtualServices: [vs('hello', {hosts: ['hello'], http: [{fault: {abort: {httpStatus: 418, percentage: {value: 100}}}, route: [{destination: {host: 'hello'}}]}]})]})
    const n = appSeen.length
    const r = await get(`${outbound}/hello`, {host: 'hello:5000'})
    expect(r.status).toBe(418)
    expect(appSeen.length).toBe(n)
    sleep.applySnapshot({...snap(), generation: 3})
  })

  it('an unknown name is not routed (404 NR); an IP:port no service owns passes through', async () => {
    expect((await get(`${outbound}/`, {host: 'nothing:80'})).status).toBe(404)
    const r = await get(`${outbound}/direct`, {host: `${helloIP}:${port}`})
    expect(r.status).toBe(200)
    expect(appSeen.at(-1)!.url).toBe('/direct')
  })
})

describe('inbound listener', () => {
  it('forwards to the app on containerPort + 30000 with x-forwarded-proto and the caller’s x-request-id, from the caller’s pod IP', async () => {
    const r = await get(`${outbound}/hello`, {host: 'hello:5000', 'x-request-id': 'req-123'})
    expect(r.status).toBe(200)
    const seen = appSeen.at(-1)!
    expect(seen.headers['x-forwarded-proto']).toBe('http')
    expect(seen.headers['x-request-id']).toBe('req-123')
    expect(seen.headers['x-forwarded-client-cert']).toBeUndefined()
    // the server sidecar saw the caller's pod address: the client sidecar binds to it
    expect(helloSec.lastPeer?.ip).toBe(sleepIP)
  })

  it('gives a request that arrives without x-request-id a fresh one', async () => {
    await get(`http://${helloIP}:${port}/no-id`)
    expect(appSeen.at(-1)!.headers['x-request-id']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  })

  it('records reporter="destination" with the caller found by its pod IP, and connection_security_policy="none" on plaintext', async () => {
    await get(`${outbound}/hello`, {host: 'hello:5000'})
    const m = await hello.metrics()
    expect(m).toMatch(/istio_requests_total\{reporter="destination",source_workload="sleep",source_workload_namespace="mesh-lab",source_principal="unknown",source_app="sleep",[^}]*destination_workload="hello",destination_workload_namespace="mesh-lab",[^}]*destination_app="hello",destination_version="v1",destination_service="hello.mesh-lab.svc.cluster.local",destination_service_name="hello",destination_service_namespace="mesh-lab",request_protocol="http",response_code="200",response_flags="-",connection_security_policy="none"\}/)
    const s = await sleep.metrics()
    expect(s).toMatch(/istio_requests_total\{reporter="source",source_workload="sleep",[^}]*destination_workload="hello",[^}]*connection_security_policy="unknown"\}/)
  })

  it('denied by authorization: 403 "RBAC: access denied", the app is not called', async () => {
    const n = appSeen.length
    const r = await get(`http://${helloIP}:${port}/admin/x`)
    expect(r.status).toBe(403)
    expect(r.body).toBe('RBAC: access denied')
    expect((await get(`http://${helloIP}:${port}/hello`, {}, 'DELETE')).status).toBe(403)
    expect(appSeen.length).toBe(n)
    expect(await hello.metrics()).toMatch(/reporter="destination",[^}]*response_code="403",response_flags="-"/)
  })

  it('STRICT refuses plaintext with a reset and no HTTP response', async () => {
    helloSec.mode = 'STRICT'
    try {
      const outcome = await new Promise<string>((resolve) => {
        const s = net.connect(port, helloIP, () => s.write('GET /hello HTTP/1.1\r\nhost: hello\r\n\r\n'))
        let data = ''
        s.on('data', (d) => (data += d))
        s.on('error', (e: NodeJS.ErrnoException) => resolve(`error:${e.code}`))
        s.on('close', () => resolve(data === '' ? 'closed-without-response' : `response:${data.slice(0, 12)}`))
      })
      expect(outcome).toBe('error:ECONNRESET')
    } finally {
      helloSec.mode = 'PERMISSIVE'
    }
  })

  it('mutual TLS between sidecars: the server sees the caller’s SPIFFE id, sets XFCC, and reports mutual_tls', async () => {
    const sleepId = `spiffe://cluster.local/ns/${NS}/sa/sleep`
    const helloId = `spiffe://cluster.local/ns/${NS}/sa/hello`
    const sc = await ca.issue(sleepId)
    const hc = await ca.issue(helloId)
    helloSec.server = {cert: hc.certPem, key: hc.keyPem, ca: ca.certPem}
    sleepSec.client = {cert: sc.certPem, key: sc.keyPem, ca: ca.certPem, checkServerIdentity: () => undefined}
    sleepSec.principal = sleepId
    // a new cluster (new DR) so new connections are made with TLS
    const drSnap = {...snap(), generation: 4, destinationRules: [{apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: {name: 'hello', namespace: NS}, spec: {host: 'hello', trafficPolicy: {loadBalancer: {simple: 'RANDOM'}}}}]}
    sleep.applySnapshot(drSnap)
    helloSec.mode = 'STRICT'
    try {
      const r = await get(`${outbound}/hello`, {host: 'hello:5000'})
      expect(r.status).toBe(200)
      expect(helloSec.lastPeer).toMatchObject({mtls: true, principal: sleepId, namespace: NS, ip: sleepIP})
      expect(appSeen.at(-1)!.headers['x-forwarded-client-cert']).toBe(`By=${helloId};URI=${sleepId}`)
      expect(await hello.metrics()).toMatch(new RegExp(`reporter="destination",source_workload="sleep",source_workload_namespace="mesh-lab",source_principal="${sleepId}",[^}]*destination_principal="${helloId}",[^}]*connection_security_policy="mutual_tls"`))
      expect(await sleep.metrics()).toMatch(new RegExp(`reporter="source",source_workload="sleep",[^}]*source_principal="${sleepId}",[^}]*destination_principal="${helloId}"`))
      // a plaintext caller is still refused on the STRICT port
      await expect(get(`http://${helloIP}:${port}/hello`)).rejects.toThrow()
      // and so is a client certificate from another CA, even with the right SPIFFE id
      const rogueCa = await testCa()
      const rogue = await rogueCa.issue(sleepId)
      const n = appSeen.length
      const outcome = await new Promise<string>((resolve) => {
        const c = tls.connect({host: helloIP, port, cert: rogue.certPem, key: rogue.keyPem, ca: ca.certPem, checkServerIdentity: () => undefined}, () => c.write('GET /hello HTTP/1.1\r\nhost: hello\r\n\r\n'))
        c.on('data', (d) => {
          resolve(`response:${String(d).slice(0, 12)}`)
          c.destroy()
        })
        c.on('error', (e: NodeJS.ErrnoException) => resolve(`error:${e.code ?? e.message}`))
        c.on('close', () => resolve('closed'))
      })
      expect(outcome).not.toMatch(/^response/)
      expect(appSeen.length).toBe(n)
    } finally {
      helloSec.mode = 'PERMISSIVE'
    }
  })
})
