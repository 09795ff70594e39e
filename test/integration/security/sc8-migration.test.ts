// SC-8, Istio's mTLS migration task, on the security libraries: httpbin in foo and bar behind
// mTLS-aware listeners whose mode comes from the provider (PeerAuthentication of the current
// snapshot), meshed sleep clients using the provider's auto mTLS, and a legacy client
// without a sidecar speaking plaintext (and curl for the exit code).
import {mkdtemp, rm} from 'node:fs/promises'
import http from 'node:http'
import https from 'node:https'
import type {AddressInfo} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {loadOrCreateMeshCa} from '../../../src/local/pki/ca.js'
import type {Endpoint, KubeObject, MeshSnapshot, ProxyIdentity, WorkloadSecret} from '../../../src/local/dataplane/snapshot.js'
import {createSecurityProvider, type MeshSecurityProvider} from '../../../src/local/dataplane/security/provider.js'
import {createMtlsAwareServer, serverContextOptions, type MtlsAwareServer} from '../../../src/local/dataplane/security/tls.js'

const NAMESPACES = ['foo', 'bar'] as const
type Ns = (typeof NAMESPACES)[number]

let dir: string
let snapshot: MeshSnapshot
const servers: MtlsAwareServer[] = []
const addrs = {} as Record<Ns, AddressInfo>
const clients = {} as Record<Ns, MeshSecurityProvider>
const endpoints = {} as Record<Ns, Endpoint>

const proxy = (ns: string, app: string, sa: string, addr = '127.0.0.1'): ProxyIdentity => ({id: `${app}.${ns}`, kind: 'sidecar', podName: `${app}-1`, namespace: ns, labels: {app}, serviceAccount: sa, address: addr})
const pa = (name: string, namespace: string, spec: Record<string, unknown>, minute = 0): KubeObject => ({
  apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: {name, namespace, creationTimestamp: new Date(Date.UTC(2026, 0, 1, 0, minute)).toISOString()}, spec,
})

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mesh-sc8-'))
  const ca = await loadOrCreateMeshCa(join(dir, 'ca'))
  snapshot = {generation: 1, trustDomain: 'cluster.local', rootNamespace: 'istio-system', services: [], endpoints: [], virtualServices: [], destinationRules: [], gateways: [], peerAuthentications: [], authorizationPolicies: []}
  for (const ns of NAMESPACES) {
    const secret: WorkloadSecret = await ca.issueFor(ns, 'httpbin')
    const provider = createSecurityProvider({identity: proxy(ns, 'httpbin', 'httpbin'), getSecret: () => secret, getSnapshot: () => snapshot})
    const ctx = serverContextOptions(secret)
    const server = createMtlsAwareServer({
      tlsPolicy: (port) => provider.tlsPolicy(port),
      secureContext: () => ctx,
      identity: () => secret.spiffeId,
      onRequest: (req, res) => {
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({xfcc: req.headers['x-forwarded-client-cert'] ?? null}))
      },
    })
    servers.push(server)
    addrs[ns] = await server.listen(0, '127.0.0.1')
    endpoints[ns] = {address: '127.0.0.1', podName: 'httpbin-1', namespace: ns, labels: {app: 'httpbin'}, serviceAccount: 'httpbin', sidecar: true, ready: true, ports: [addrs[ns].port]}
    const sleepSecret = await ca.issueFor(ns, 'sleep')
    clients[ns] = createSecurityProvider({identity: proxy(ns, 'sleep', 'sleep'), getSecret: () => sleepSecret, getSnapshot: () => snapshot})
  }
})

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()))
  await rm(dir, {recursive: true, force: true})
})

interface Outcome {
  code: number | string
  xfcc?: string | null
}

/** A meshed client: its sidecar picks TLS via auto mTLS toward the endpoint. */
function meshed(from: Ns, to: Ns): Promise<Outcome> {
  const cluster = {name: `outbound|${addrs[to].port}||httpbin.${to}.svc.cluster.local`, host: `httpbin.${to}.svc.cluster.local`, port: addrs[to].port}
  const tlsOpts = clients[from].upstreamTls(endpoints[to], cluster)
  return new Promise((resolve) => {
    const onRes = (res: http.IncomingMessage) => {
      let body = ''
      res.on('data', (d) => (body += d))
      res.on('end', () => resolve({code: res.statusCode ?? 0, xfcc: (JSON.parse(body) as {xfcc: string | null}).xfcc}))
    }
    const base = {host: '127.0.0.1', port: addrs[to].port, path: '/headers', agent: false as const}
    const req = tlsOpts ? https.request({...base, ...tlsOpts}, onRes) : http.request(base, onRes)
    req.on('error', (e: NodeJS.ErrnoException) => resolve({code: e.code ?? 'error'}))
    req.end()
  })
}

/** The legacy client (no sidecar): plain curl, as in Istio's task. */
async function legacy(to: Ns): Promise<Outcome> {
  const r = await execa('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', `http://127.0.0.1:${addrs[to].port}/headers`], {reject: false})
  return {code: r.exitCode === 0 ? Number(r.stdout) : `${r.stdout} exit ${r.exitCode}`}
}

async function matrix(): Promise<Record<string, number | string>> {
  const out: Record<string, number | string> = {}
  for (const to of NAMESPACES) {
    for (const from of NAMESPACES) out[`sleep.${from} → httpbin.${to}`] = (await meshed(from, to)).code
    out[`legacy → httpbin.${to}`] = (await legacy(to)).code
  }
  return out
}

describe('SC-8 mTLS migration', () => {
  it('default (no PeerAuthentication): every call succeeds, meshed ones over mTLS with XFCC', async () => {
    snapshot = {...snapshot, peerAuthentications: []}
    expect(await matrix()).toEqual({
      'sleep.foo → httpbin.foo': 200, 'sleep.bar → httpbin.foo': 200, 'legacy → httpbin.foo': 200,
      'sleep.foo → httpbin.bar': 200, 'sleep.bar → httpbin.bar': 200, 'legacy → httpbin.bar': 200,
    })
    const m = await meshed('foo', 'bar')
    expect(m.xfcc).toMatch(/^By=spiffe:\/\/cluster\.local\/ns\/bar\/sa\/httpbin;Hash=[0-9a-f]{64};Subject="";URI=spiffe:\/\/cluster\.local\/ns\/foo\/sa\/sleep$/)
  })

  it('mesh-wide STRICT: the legacy client fails with 000 / exit 56, meshed calls succeed', async () => {
    snapshot = {...snapshot, peerAuthentications: [pa('default', 'istio-system', {mtls: {mode: 'STRICT'}})]}
    expect(await matrix()).toEqual({
      'sleep.foo → httpbin.foo': 200, 'sleep.bar → httpbin.foo': 200, 'legacy → httpbin.foo': '000 exit 56',
      'sleep.foo → httpbin.bar': 200, 'sleep.bar → httpbin.bar': 200, 'legacy → httpbin.bar': '000 exit 56',
    })
  })

  it('namespace STRICT in foo only: only legacy → foo fails', async () => {
    snapshot = {...snapshot, peerAuthentications: [pa('default', 'foo', {mtls: {mode: 'STRICT'}})]}
    const m = await matrix()
    expect(m['legacy → httpbin.foo']).toBe('000 exit 56')
    expect(m['legacy → httpbin.bar']).toBe(200)
    expect(Object.entries(m).filter(([k]) => k.startsWith('sleep')).every(([, v]) => v === 200)).toBe(true)
  })

  it('workload STRICT with portLevelMtls DISABLE on the container port: legacy succeeds again, meshed calls go plaintext', async () => {
    const port = String(addrs.foo.port)
    snapshot = {
      ...snapshot,
      peerAuthentications: [
        pa('default', 'foo', {mtls: {mode: 'STRICT'}}),
        pa('httpbin', 'foo', {selector: {matchLabels: {app: 'httpbin'}}, mtls: {mode: 'STRICT'}, portLevelMtls: {[port]: {mode: 'DISABLE'}}}, 1),
      ],
    }
    expect((await legacy('foo')).code).toBe(200)
    const m = await meshed('bar', 'foo')
    expect(m.code).toBe(200)
    // auto mTLS saw DISABLE on the server port: plaintext, so no XFCC
    expect(m.xfcc).toBeNull()
  })

  it('an explicit DestinationRule tls DISABLE toward a STRICT server fails at the client', async () => {
    snapshot = {...snapshot, peerAuthentications: [pa('default', 'foo', {mtls: {mode: 'STRICT'}})]}
    const cluster = {name: 'c', host: 'httpbin.foo.svc.cluster.local', port: addrs.foo.port, tls: {mode: 'DISABLE'}}
    expect(clients.bar.upstreamTls(endpoints.foo, cluster)).toBeUndefined()
    const r = await new Promise<string | number>((resolve) => {
      const req = http.request({host: '127.0.0.1', port: addrs.foo.port, path: '/', agent: false}, (res) => resolve(res.statusCode ?? 0))
      req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'))
      req.end()
    })
    expect(r).toBe('ECONNRESET')
  })
})
