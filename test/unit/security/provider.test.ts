// The SecurityProvider the proxy engine calls, with real certificates from a test CA.
import {X509Certificate} from 'node:crypto'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import net from 'node:net'
import tls from 'node:tls'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {loadOrCreateMeshCa, type MeshCa} from '../../../src/local/pki/ca.js'
import type {Endpoint, KubeObject, MeshSnapshot, ProxyIdentity, WorkloadSecret} from '../../../src/local/dataplane/snapshot.js'
import type {SecurityProvider, UpstreamClusterInfo} from '../../../src/local/dataplane/security-provider.js'
import {createSecurityProvider} from '../../../src/local/dataplane/security/provider.js'

let dir: string
let ca: MeshCa
let helloSecret: WorkloadSecret
let sleepSecret: WorkloadSecret
let otherSecret: WorkloadSecret

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mesh-provider-'))
  ca = await loadOrCreateMeshCa(join(dir, 'ca'))
  helloSecret = await ca.issueFor('mesh-lab', 'hello')
  sleepSecret = await ca.issueFor('foo', 'sleep')
  otherSecret = await ca.issueFor('mesh-lab', 'other')
})
afterAll(async () => {
  await rm(dir, {recursive: true, force: true})
})

const helloProxy: ProxyIdentity = {id: 'hello-v1-1.mesh-lab', kind: 'sidecar', podName: 'hello-v1-1', namespace: 'mesh-lab', labels: {app: 'hello', version: 'v1'}, serviceAccount: 'hello', address: '127.42.0.7'}
const sleepProxy: ProxyIdentity = {id: 'sleep-1.foo', kind: 'sidecar', podName: 'sleep-1', namespace: 'foo', labels: {app: 'sleep'}, serviceAccount: 'sleep', address: '127.42.0.9'}
const helloEndpoint: Endpoint = {address: '127.42.0.7', podName: 'hello-v1-1', namespace: 'mesh-lab', labels: {app: 'hello', version: 'v1'}, serviceAccount: 'hello', sidecar: true, ready: true, ports: [9080]}
const cluster: UpstreamClusterInfo = {name: 'outbound|5000||hello.mesh-lab.svc.cluster.local', host: 'hello.mesh-lab.svc.cluster.local', port: 5000}

function snapshot(over: Partial<MeshSnapshot> = {}): MeshSnapshot {
  return {
    generation: 1, trustDomain: 'cluster.local', rootNamespace: 'istio-system',
    services: [{name: 'hello', namespace: 'mesh-lab', selector: {app: 'hello'}, ports: [{port: 5000, targetPort: 9080, protocol: 'TCP', name: 'http'}]}],
    endpoints: [helloEndpoint], virtualServices: [], destinationRules: [], gateways: [], peerAuthentications: [], authorizationPolicies: [],
    ...over,
  }
}
const obj = (kind: string, name: string, namespace: string, spec: Record<string, unknown>): KubeObject => ({apiVersion: 'security.istio.io/v1', kind, metadata: {name, namespace, creationTimestamp: '2026-01-01T00:00:00Z'}, spec})

function provider(identity: ProxyIdentity, secret: () => WorkloadSecret | undefined, snap: () => MeshSnapshot | undefined) {
  return createSecurityProvider({identity, getSecret: secret, getSnapshot: snap})
}

describe('inbound', () => {
  it('tlsPolicy follows the latest pushed PeerAuthentication (PA-2)', () => {
    let snap = snapshot()
    const p: SecurityProvider = provider(helloProxy, () => helloSecret, () => snap)
    expect(p.tlsPolicy(9080)).toBe('PERMISSIVE')
    snap = snapshot({peerAuthentications: [obj('PeerAuthentication', 'default', 'mesh-lab', {mtls: {mode: 'STRICT'}})]})
    expect(p.tlsPolicy(9080)).toBe('STRICT')
    snap = snapshot({peerAuthentications: [
      obj('PeerAuthentication', 'default', 'mesh-lab', {mtls: {mode: 'STRICT'}}),
      obj('PeerAuthentication', 'hello', 'mesh-lab', {selector: {matchLabels: {app: 'hello'}}, portLevelMtls: {'9080': {mode: 'DISABLE'}}}),
    ]})
    expect(p.tlsPolicy(9080)).toBe('DISABLE')
    expect(p.tlsPolicy(9090)).toBe('STRICT')
  })

  it('before the first push everything is PERMISSIVE and allowed', () => {
    const p = provider(helloProxy, () => undefined, () => undefined)
    expect(p.tlsPolicy(9080)).toBe('PERMISSIVE')
    expect(p.serverTls()).toBeUndefined()
    expect(p.authorize({method: 'GET', path: '/', host: 'h', headers: {}, port: 9080, destination: helloProxy}, {ip: '127.0.0.1', mtls: false}).allowed).toBe(true)
  })

  it('serverTls is stable per certificate and changes on rotation', async () => {
    let secret = helloSecret
    const p = provider(helloProxy, () => secret, () => snapshot())
    const a = p.serverTls()
    expect(p.serverTls()).toBe(a)
    expect(a?.cert).toBe(helloSecret.certChainPem)
    secret = await ca.issueFor('mesh-lab', 'hello')
    expect(p.serverTls()).not.toBe(a)
    expect(p.serverTls()?.cert).toBe(secret.certChainPem)
  })

  it('authorize: allow-nothing denies with details [none]; principal-scoped ALLOW takes the full SPIFFE principal', () => {
    let snap = snapshot({authorizationPolicies: [obj('AuthorizationPolicy', 'allow-nothing', 'mesh-lab', {})]})
    const p = provider(helloProxy, () => helloSecret, () => snap)
    const req = {method: 'GET', path: '/hello', host: 'hello:5000', headers: {}, port: 9080, destination: helloProxy}
    const peer = {ip: '127.42.0.9', mtls: true, principal: 'spiffe://cluster.local/ns/foo/sa/sleep', namespace: 'foo'}
    const denied = p.authorize(req, peer)
    expect(denied).toMatchObject({allowed: false, policy: undefined, details: 'rbac_access_denied_matched_policy[none]'})
    snap = snapshot({authorizationPolicies: [obj('AuthorizationPolicy', 'sleep-only', 'mesh-lab', {rules: [{from: [{source: {principals: ['cluster.local/ns/foo/sa/sleep']}}]}]})]})
    expect(p.authorize(req, peer)).toMatchObject({allowed: true, policy: 'ns[mesh-lab]-policy[sleep-only]-rule[0]'})
    expect(p.authorize(req, {ip: '127.42.0.9', mtls: false}).allowed).toBe(false)
  })

  it('authorizeConnection applies TCP rules (AZ-7)', () => {
    const snap = snapshot({authorizationPolicies: [obj('AuthorizationPolicy', 'get-only', 'mesh-lab', {rules: [{to: [{operation: {methods: ['GET']}}]}]})]})
    const p = provider(helloProxy, () => helloSecret, () => snap)
    expect(p.authorizeConnection(9080, {ip: '127.0.0.1', mtls: false}).allowed).toBe(false)
  })
})

describe('outbound (DR-10)', () => {
  it('ISTIO_MUTUAL to a sidecar endpoint: our cert, the mesh root, Istio SNI, server identity checked', () => {
    const p = provider(sleepProxy, () => sleepSecret, () => snapshot())
    const o = p.upstreamTls(helloEndpoint, cluster)!
    expect(o).toBeDefined()
    expect(o.cert).toBe(sleepSecret.certChainPem)
    expect(o.ca).toBe(sleepSecret.rootCaPem)
    expect(o.servername).toBe('outbound_.5000_._.hello.mesh-lab.svc.cluster.local')
    const check = o.checkServerIdentity!
    const raw = (pem: string) => ({raw: new X509Certificate(pem).raw}) as tls.PeerCertificate
    expect(check('hello', raw(helloSecret.certChainPem))).toBeUndefined()
    expect(check('hello', raw(otherSecret.certChainPem))).toBeInstanceOf(Error)
    expect(p.ownPrincipal?.()).toBe('spiffe://cluster.local/ns/foo/sa/sleep')
  })

  it('plaintext to endpoints without a sidecar, and when the server port is DISABLE', () => {
    const p1 = provider(sleepProxy, () => sleepSecret, () => snapshot())
    expect(p1.upstreamTls({...helloEndpoint, sidecar: false}, cluster)).toBeUndefined()
    // service port 5000 → container port 9080, which a port-level policy sets to DISABLE
    const snap = snapshot({peerAuthentications: [obj('PeerAuthentication', 'hello', 'mesh-lab', {selector: {matchLabels: {app: 'hello'}}, mtls: {mode: 'STRICT'}, portLevelMtls: {'9080': {mode: 'DISABLE'}}})]})
    const p2 = provider(sleepProxy, () => sleepSecret, () => snap)
    expect(p2.upstreamTlsChoice(helloEndpoint, cluster).mode).toBe('DISABLE')
    expect(p2.upstreamTls(helloEndpoint, cluster)).toBeUndefined()
  })

  it('an explicit DestinationRule tls mode wins', () => {
    const p = provider(sleepProxy, () => sleepSecret, () => snapshot())
    expect(p.upstreamTls(helloEndpoint, {...cluster, tls: {mode: 'DISABLE'}})).toBeUndefined()
    const simple = p.upstreamTlsChoice(helloEndpoint, {...cluster, tls: {mode: 'SIMPLE', sni: 'hello.example'}})
    expect(simple.mode).toBe('SIMPLE')
    expect(simple.options?.cert).toBeUndefined()
    expect(simple.options?.servername).toBe('hello.example')
    const sans = p.upstreamTls(helloEndpoint, {...cluster, tls: {mode: 'ISTIO_MUTUAL', subjectAltNames: ['spiffe://cluster.local/ns/mesh-lab/sa/other']}})!
    expect(sans.checkServerIdentity!('x', {raw: new X509Certificate(otherSecret.certChainPem).raw} as tls.PeerCertificate)).toBeUndefined()
  })

  it('provider server and client options interoperate: peer identity and XFCC', async () => {
    const server = provider(helloProxy, () => helloSecret, () => snapshot())
    const client = provider(sleepProxy, () => sleepSecret, () => snapshot())
    const srv = tls.createServer({...server.serverTls(), requestCert: true, rejectUnauthorized: true})
    try {
      const seen = new Promise<{peer: unknown; xfcc: string | undefined}>((resolve) => {
        srv.on('secureConnection', (s) => {
          const peer = server.peerFromTls(s)
          resolve({peer, xfcc: server.forwardClientCert({...peer, ip: s.remoteAddress ?? '', mtls: true}, s)})
          s.end()
        })
      })
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()))
      const port = (srv.address() as {port: number}).port
      const opts = client.upstreamTls(helloEndpoint, cluster)!
      await new Promise<void>((resolve, reject) => {
        const c = tls.connect({...opts, host: '127.0.0.1', port}, () => resolve())
        c.on('error', reject)
        c.on('data', () => {})
      })
      const {peer, xfcc} = await seen
      expect(peer).toEqual({principal: 'spiffe://cluster.local/ns/foo/sa/sleep', namespace: 'foo'})
      expect(xfcc).toMatch(/^By=spiffe:\/\/cluster\.local\/ns\/mesh-lab\/sa\/hello;Hash=[0-9a-f]{64};Subject="";URI=spiffe:\/\/cluster\.local\/ns\/foo\/sa\/sleep$/)
    } finally {
      srv.close()
    }
  })

  it('peerFromTls refuses a foreign-CA client on a hand-built server TLSSocket (as the engine builds it)', async () => {
    const foreignCa = await loadOrCreateMeshCa(join(dir, 'foreign-ca'))
    const forged = await foreignCa.issueFor('foo', 'sleep') // right name, wrong CA
    const server = provider(helloProxy, () => helloSecret, () => snapshot())
    const ctx = tls.createSecureContext(server.serverTls())
    const results: {peer: unknown; destroyed: boolean}[] = []
    const srv = net.createServer((sock) => {
      const t = new tls.TLSSocket(sock, {isServer: true, secureContext: ctx, requestCert: true, rejectUnauthorized: true})
      t.on('error', () => {})
      t.once('secure', () => {
        const peer = server.peerFromTls(t)
        results.push({peer, destroyed: t.destroyed})
        if (!t.destroyed) t.end('served')
      })
    })
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()))
    const port = (srv.address() as net.AddressInfo).port
    const call = (secret: WorkloadSecret) =>
      new Promise<string>((resolve) => {
        const c = tls.connect({host: '127.0.0.1', port, key: secret.privateKeyPem, cert: secret.certChainPem, ca: helloSecret.rootCaPem, checkServerIdentity: () => undefined})
        let got = ''
        c.on('data', (d) => (got += d))
        c.on('close', () => resolve(got))
        c.on('error', () => {})
      })
    try {
      expect(await call(forged)).toBe('')
      expect(results[0]).toEqual({peer: {}, destroyed: true})
      expect(await call(sleepSecret)).toBe('served')
      expect(results[1]).toEqual({peer: {principal: 'spiffe://cluster.local/ns/foo/sa/sleep', namespace: 'foo'}, destroyed: false})
    } finally {
      srv.close()
    }
  })
})
