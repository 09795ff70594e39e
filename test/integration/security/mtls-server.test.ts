// A real listener from createMtlsAwareServer on loopback, driven by Node clients, curl and
// openssl: STRICT / PERMISSIVE / DISABLE (PA-1..PA-5, SC-8), SPIFFE identity checks in both
// directions, XFCC, certificate rotation on open connections, and the SC-9 authorization walk.
import {createHash, X509Certificate} from 'node:crypto'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import tls from 'node:tls'
import {execa} from 'execa'
import {afterAll, beforeAll, beforeEach, describe, expect, it} from 'vitest'
import {loadOrCreateMeshCa, type MeshCa} from '../../../src/local/pki/ca.js'
import {spiffeIdFor} from '../../../src/local/pki/spiffe.js'
import type {KubeObject, WorkloadSecret} from '../../../src/local/dataplane/snapshot.js'
import {
  clientTlsOptions,
  createMtlsAwareServer,
  serverContextOptions,
  type MtlsAwareServer,
  type MtlsMode,
  type RejectReason,
} from '../../../src/local/dataplane/security/tls.js'
import {evaluate, RBAC_ACCESS_DENIED_BODY, RBAC_ACCESS_DENIED_STATUS} from '../../../src/local/dataplane/security/authz.js'

const HELLO_ID = spiffeIdFor('mesh-lab', 'hello')
const SLEEP_ID = spiffeIdFor('foo', 'sleep')

let dir: string
let ca: MeshCa
let otherCa: MeshCa
let helloSecret: WorkloadSecret
let sleepSecret: WorkloadSecret
let otherSaSecret: WorkloadSecret
let foreignSecret: WorkloadSecret
let server: MtlsAwareServer
let addr: net.AddressInfo
let mode: MtlsMode = 'STRICT'
let currentCtx: tls.SecureContextOptions
let policies: KubeObject[] = []
const rejects: RejectReason[] = []

interface Echo {
  mtls: boolean
  principal: string | null
  xfcc: string | null
  mode: string
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mesh-mtls-'))
  ca = await loadOrCreateMeshCa(join(dir, 'ca'))
  otherCa = await loadOrCreateMeshCa(join(dir, 'other-ca'))
  helloSecret = await ca.issueWorkload(HELLO_ID)
  sleepSecret = await ca.issueWorkload(SLEEP_ID)
  otherSaSecret = await ca.issueFor('mesh-lab', 'other')
  foreignSecret = await otherCa.issueWorkload(SLEEP_ID)
  currentCtx = serverContextOptions(helloSecret)
  server = createMtlsAwareServer({
    tlsPolicy: () => mode,
    secureContext: () => currentCtx,
    identity: () => HELLO_ID,
    onReject: (r) => rejects.push(r),
    protocol: (port) => (port === addr?.port && tcpMode ? 'tcp' : 'http'),
    onTcp: (socket) => socket.pipe(socket),
    onRequest: (req, res, info) => {
      // the server proxy's authorization step, as the engine runs it
      const d = evaluate(policies, {namespace: 'mesh-lab', labels: {app: 'hello'}}, {
        method: req.method, path: req.url, host: req.headers.host, port: info.localPort, headers: req.headers, peer: info.peer, protocol: 'http',
      })
      if (d.decision === 'DENY') {
        res.writeHead(RBAC_ACCESS_DENIED_STATUS, {'content-type': 'text/plain'})
        res.end(RBAC_ACCESS_DENIED_BODY)
        return
      }
      const xfcc = req.headers['x-forwarded-client-cert']
      const body: Echo = {mtls: info.mtls, principal: info.peer.principal ?? null, xfcc: typeof xfcc === 'string' ? xfcc : null, mode: info.mode}
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify(body))
    },
  })
  addr = await server.listen(0, '127.0.0.1')
})

afterAll(async () => {
  await server?.close()
  await rm(dir, {recursive: true, force: true})
})

let tcpMode = false
beforeEach(() => {
  rejects.length = 0
  policies = []
  tcpMode = false
  currentCtx = serverContextOptions(helloSecret)
})

interface Result {
  status?: number
  body?: string
  error?: NodeJS.ErrnoException
}

function plainGet(headers: Record<string, string> = {}, method = 'GET'): Promise<Result> {
  return new Promise((resolve) => {
    const r = http.request({host: addr.address, port: addr.port, path: '/hello', method, headers, agent: false}, (res) => {
      let body = ''
      res.on('data', (d) => (body += d))
      res.on('end', () => resolve({status: res.statusCode, body}))
    })
    r.on('error', (error) => resolve({error}))
    r.end()
  })
}

function mtlsGet(secret: WorkloadSecret, opts: {expect?: string; headers?: Record<string, string>; method?: string; agent?: https.Agent; ca?: string} = {}): Promise<Result & {serial?: string; localPort?: number}> {
  const tlsOpts = clientTlsOptions(secret, {expectedSpiffeIds: opts.expect ?? HELLO_ID, servername: 'outbound_.5000_._.hello.mesh-lab.svc.cluster.local'})
  if (opts.ca) tlsOpts.ca = opts.ca
  return new Promise((resolve) => {
    const r = https.request(
      {host: addr.address, port: addr.port, path: '/hello', method: opts.method ?? 'GET', headers: opts.headers, ...(opts.agent ? {agent: opts.agent} : {agent: false}), ...tlsOpts},
      (res) => {
        const sock = res.socket as tls.TLSSocket
        const serial = sock.getPeerCertificate().serialNumber
        const localPort = sock.localPort
        let body = ''
        res.on('data', (d) => (body += d))
        res.on('end', () => resolve({status: res.statusCode, body, serial, localPort}))
      },
    )
    r.on('error', (error) => resolve({error}))
    r.end()
  })
}

/** Raw plaintext connection: how many bytes does the server send back before closing? */
function rawPlaintext(): Promise<{bytes: number; error?: string}> {
  return new Promise((resolve) => {
    let bytes = 0
    let error: string | undefined
    const s = net.connect(addr.port, addr.address, () => s.write('GET /hello HTTP/1.1\r\nHost: hello\r\n\r\n'))
    s.on('data', (d) => (bytes += d.length))
    s.on('error', (e: NodeJS.ErrnoException) => (error = e.code))
    s.on('close', () => resolve({bytes, error}))
  })
}

const hashOf = (pem: string) => createHash('sha256').update(new X509Certificate(pem).raw).digest('hex')

describe('STRICT (PA-4)', () => {
  beforeEach(() => {
    mode = 'STRICT'
  })

  it('closes a plaintext connection with a reset and no bytes', async () => {
    const r = await rawPlaintext()
    expect(r.bytes).toBe(0)
    expect(r.error).toBe('ECONNRESET')
    expect(rejects).toContain('plaintext-in-strict')
  })

  it('curl prints 000 and exits 56', async () => {
    const r = await execa('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', `http://${addr.address}:${addr.port}/`], {reject: false})
    expect(r.stdout).toBe('000')
    expect(r.exitCode).toBe(56)
  })

  it('serves mTLS with a mesh certificate and reports the SPIFFE principal', async () => {
    const r = await mtlsGet(sleepSecret)
    expect(r.error).toBeUndefined()
    expect(r.status).toBe(200)
    const echo = JSON.parse(r.body!) as Echo
    expect(echo.mtls).toBe(true)
    expect(echo.principal).toBe(SLEEP_ID)
  })

  it('refuses a TLS client without a certificate', async () => {
    const r = await new Promise<Result>((resolve) => {
      const req = https.request({host: addr.address, port: addr.port, path: '/', agent: false, ca: ca.rootCertPem, checkServerIdentity: () => undefined}, (res) => resolve({status: res.statusCode}))
      req.on('error', (error) => resolve({error}))
      req.end()
    })
    expect(r.status).toBeUndefined()
    expect(r.error).toBeDefined()
  })

  it('refuses a client certificate from a different CA', async () => {
    // the client trusts our root (so it accepts the server) but presents a foreign certificate
    const r = await mtlsGet(foreignSecret, {ca: ca.rootCertPem})
    expect(r.status).toBeUndefined()
    expect(r.error).toBeDefined()
    expect(rejects).toContain('untrusted-client-cert')
  })

  it('a client refuses a server from a different CA', async () => {
    currentCtx = serverContextOptions(await otherCa.issueWorkload(HELLO_ID))
    const r = await mtlsGet(sleepSecret)
    expect(r.status).toBeUndefined()
    // the server's chain ends in a root the client does not trust
    expect(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN']).toContain(r.error?.code)
  })

  it('a client refuses a server certificate for the wrong identity (same CA, sa/other)', async () => {
    currentCtx = serverContextOptions(otherSaSecret)
    const r = await mtlsGet(sleepSecret)
    expect(r.status).toBeUndefined()
    expect(r.error?.message).toMatch(/peer identity mismatch: server presented spiffe:\/\/cluster.local\/ns\/mesh-lab\/sa\/other/)
  })

  it('the server\'s principal check refuses a client certificate for the wrong identity', async () => {
    policies = [{apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: {name: 'only-sleep', namespace: 'mesh-lab'}, spec: {rules: [{from: [{source: {principals: ['cluster.local/ns/foo/sa/sleep']}}]}]}}]
    const wrong = await mtlsGet(otherSaSecret)
    expect(wrong.status).toBe(403)
    expect(wrong.body).toBe('RBAC: access denied')
    const right = await mtlsGet(sleepSecret)
    expect(right.status).toBe(200)
  })

  it('forwards raw TCP over mTLS on a TCP port', async () => {
    tcpMode = true
    const echoed = await new Promise<string>((resolve, reject) => {
      const s = tls.connect({host: addr.address, port: addr.port, ...clientTlsOptions(sleepSecret, {expectedSpiffeIds: HELLO_ID})}, () => s.end('ping'))
      let got = ''
      s.on('data', (d) => (got += d))
      s.on('end', () => resolve(got))
      s.on('error', reject)
    })
    expect(echoed).toBe('ping')
  })
})

describe('PERMISSIVE (PA-3) and XFCC (PA-5)', () => {
  beforeEach(() => {
    mode = 'PERMISSIVE'
  })

  it('serves plaintext, without XFCC even when the client sends one', async () => {
    const r = await plainGet({'x-forwarded-client-cert': 'By=spiffe://cluster.local/ns/x/sa/x;URI=spiffe://cluster.local/ns/forged/sa/admin'})
    expect(r.status).toBe(200)
    const echo = JSON.parse(r.body!) as Echo
    expect(echo).toMatchObject({mtls: false, principal: null, xfcc: null})
  })

  it('serves mTLS on the same port with XFCC By/Hash/Subject/URI', async () => {
    const r = await mtlsGet(sleepSecret)
    expect(r.status).toBe(200)
    const echo = JSON.parse(r.body!) as Echo
    expect(echo.mtls).toBe(true)
    expect(echo.xfcc).toBe(`By=${HELLO_ID};Hash=${hashOf(sleepSecret.certChainPem)};Subject="";URI=spiffe://cluster.local/ns/foo/sa/sleep`)
  })

  it('appends to an incoming XFCC on mTLS (Envoy APPEND_FORWARD)', async () => {
    const r = await mtlsGet(sleepSecret, {headers: {'x-forwarded-client-cert': 'By=a;URI=b'}})
    const echo = JSON.parse(r.body!) as Echo
    expect(echo.xfcc).toBe(`By=a;URI=b,By=${HELLO_ID};Hash=${hashOf(sleepSecret.certChainPem)};Subject="";URI=${SLEEP_ID}`)
  })

  it('still refuses TLS with a foreign certificate', async () => {
    const r = await mtlsGet(foreignSecret, {ca: ca.rootCertPem})
    expect(r.status).toBeUndefined()
  })
})

describe('DISABLE', () => {
  beforeEach(() => {
    mode = 'DISABLE'
  })
  it('serves plaintext', async () => {
    const r = await plainGet()
    expect(r.status).toBe(200)
    expect((JSON.parse(r.body!) as Echo).mode).toBe('DISABLE')
  })
  it('a TLS attempt fails', async () => {
    const r = await mtlsGet(sleepSecret)
    expect(r.status).toBeUndefined()
    expect(r.error).toBeDefined()
  })
})

describe('certificate rotation', () => {
  it('new connections get the new certificate, open keep-alive connections keep working', async () => {
    mode = 'STRICT'
    const agent = new https.Agent({keepAlive: true, maxSockets: 1})
    try {
      const first = await mtlsGet(sleepSecret, {agent})
      expect(first.status).toBe(200)
      const rotated = await ca.issueWorkload(HELLO_ID)
      currentCtx = serverContextOptions(rotated)
      const sameConn = await mtlsGet(sleepSecret, {agent})
      expect(sameConn.status).toBe(200)
      expect(sameConn.localPort).toBe(first.localPort)
      expect(sameConn.serial).toBe(first.serial)
      const fresh = await mtlsGet(sleepSecret)
      expect(fresh.status).toBe(200)
      expect(fresh.serial).toBe(new X509Certificate(rotated.certChainPem).serialNumber)
      expect(fresh.serial).not.toBe(first.serial)
    } finally {
      agent.destroy()
    }
  })
})

describe('SC-9 authorization walk through the server', () => {
  const ap = (name: string, spec: Record<string, unknown>): KubeObject => ({apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: {name, namespace: 'mesh-lab'}, spec})
  beforeEach(() => {
    mode = 'PERMISSIVE'
  })
  it('allow-nothing → 403 RBAC: access denied for everyone', async () => {
    policies = [ap('allow-nothing', {})]
    for (const r of [await plainGet(), await mtlsGet(sleepSecret)]) {
      expect(r.status).toBe(403)
      expect(r.body).toBe('RBAC: access denied')
    }
  })
  it('ALLOW GET on hello → GET 200, POST 403', async () => {
    policies = [ap('allow-nothing', {}), ap('hello-get', {selector: {matchLabels: {app: 'hello'}}, rules: [{to: [{operation: {methods: ['GET']}}]}]})]
    expect((await mtlsGet(sleepSecret)).status).toBe(200)
    expect((await mtlsGet(sleepSecret, {method: 'POST'})).status).toBe(403)
  })
  it('principal-scoped ALLOW lets only that identity in (plaintext has none)', async () => {
    policies = [ap('only-sleep', {rules: [{from: [{source: {principals: ['cluster.local/ns/foo/sa/sleep']}}]}]})]
    expect((await mtlsGet(sleepSecret)).status).toBe(200)
    expect((await mtlsGet(otherSaSecret)).status).toBe(403)
    expect((await plainGet()).status).toBe(403)
  })
})

describe('independent check with OpenSSL', () => {
  let certDir: string
  beforeAll(async () => {
    certDir = await mkdtemp(join(tmpdir(), 'mesh-openssl-'))
    await writeFile(join(certDir, 'root.pem'), ca.rootCertPem)
    await writeFile(join(certDir, 'client.pem'), sleepSecret.certChainPem)
    await writeFile(join(certDir, 'client.key'), sleepSecret.privateKeyPem, {mode: 0o600})
  })
  afterAll(async () => {
    await rm(certDir, {recursive: true, force: true})
  })
  beforeEach(() => {
    mode = 'STRICT'
  })

  const request = 'GET /hello HTTP/1.1\r\nHost: hello\r\nConnection: close\r\n\r\n'

  it('s_client without a client certificate fails the handshake against STRICT', async () => {
    const r = await execa('openssl', ['s_client', '-connect', `${addr.address}:${addr.port}`, '-CAfile', join(certDir, 'root.pem'), '-ign_eof'], {input: request, reject: false, timeout: 20_000, all: true})
    expect(r.exitCode).not.toBe(0)
    expect(r.all).not.toContain('HTTP/1.1 200')
    // TLS 1.3 reports the server's "certificate required" alert; TLS 1.2 fails the handshake outright
    expect(r.all).toMatch(/alert certificate required|handshake failure|errno/)
    expect(rejects).toContain('tls-handshake-failed')
  })

  it('s_client with a certificate from the lab CA succeeds and the server shows the SPIFFE URI', async () => {
    const r = await execa(
      'openssl',
      ['s_client', '-connect', `${addr.address}:${addr.port}`, '-CAfile', join(certDir, 'root.pem'), '-cert', join(certDir, 'client.pem'), '-key', join(certDir, 'client.key'), '-verify_return_error', '-showcerts', '-ign_eof'],
      {input: request, reject: false, timeout: 20_000, all: true},
    )
    expect(r.exitCode).toBe(0)
    expect(r.all).toContain('Verify return code: 0 (ok)')
    expect(r.all).toContain('HTTP/1.1 200')
    const serverPem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(r.stdout)?.[0]
    expect(serverPem).toBeDefined()
    const san = await execa('openssl', ['x509', '-noout', '-ext', 'subjectAltName'], {input: serverPem + '\n'})
    expect(san.stdout).toContain('URI:spiffe://cluster.local/ns/mesh-lab/sa/hello')
    expect(san.stdout).not.toContain('DNS:')
  })
})
