// Real node:http upstreams on random loopback addresses and hand-built MeshSnapshots.
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import {request} from 'undici'
import type {Endpoint, KubeObject, MeshSnapshot, ProxyIdentity, ServiceEntry} from '../../../src/local/dataplane/snapshot.js'

/** A random 127.x.y.z (never 127.0.0.1) so parallel tests do not collide. */
export function randomLoopback(): string {
  const r = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1))
  return `127.${r(10, 250)}.${r(1, 250)}.${r(2, 250)}`
}

export function randomPort(): number {
  return 20000 + Math.floor(Math.random() * 15000)
}

export interface Upstream {
  name: string
  address: string
  port: number
  hits: number
  /** requests seen, for header assertions */
  seen: {method: string; url: string; headers: http.IncomingHttpHeaders}[]
  /** behaviour can change during a test */
  status: number
  delayMs: number
  close(): Promise<void>
}

export async function startUpstream(name: string, opts: {address?: string; port?: number; status?: number; delayMs?: number; keepSeen?: boolean} = {}): Promise<Upstream> {
  const address = opts.address ?? randomLoopback()
  const u: Upstream = {name, address, port: 0, hits: 0, seen: [], status: opts.status ?? 200, delayMs: opts.delayMs ?? 0, close: async () => {}}
  const server = http.createServer((req, res) => {
    u.hits++
    if (opts.keepSeen !== false && u.seen.length < 5000) u.seen.push({method: req.method ?? '', url: req.url ?? '', headers: req.headers})
    const reply = () => {
      const body = u.status < 400 ? `Hello version: ${name}, instance: ${name}-pod\n` : `error from ${name}\n`
      res.writeHead(u.status, {'content-type': 'text/plain', 'content-length': Buffer.byteLength(body)})
      res.end(body)
    }
    req.resume()
    req.on('end', () => (u.delayMs > 0 ? setTimeout(reply, u.delayMs) : reply()))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port ?? 0, address, () => resolve())
  })
  u.port = (server.address() as AddressInfo).port
  u.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
  return u
}

export const NS = 'mesh-lab'

export function endpoint(u: Upstream, labels: Record<string, string>, ns = NS): Endpoint {
  return {address: u.address, podName: `${labels.app}-${labels.version ?? 'x'}-6d9f7c8b4-${u.name.slice(0, 5).padEnd(5, 'x')}`, namespace: ns, labels, serviceAccount: labels.app, sidecar: true, ready: true, ports: [u.port]}
}

export function service(name: string, port: number, targetPort: number, selector: Record<string, string>, ns = NS): ServiceEntry {
  return {name, namespace: ns, selector, ports: [{name: 'http', port, targetPort, protocol: 'TCP'}]}
}

let ts = 0
function obj(kind: string, apiVersion: string, name: string, ns: string, spec: unknown): KubeObject {
  ts++
  return {apiVersion, kind, metadata: {name, namespace: ns, creationTimestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, ts)).toISOString()}, spec}
}

export const vs = (name: string, spec: unknown, ns = NS) => obj('VirtualService', 'networking.istio.io/v1', name, ns, spec)
export const dr = (name: string, spec: unknown, ns = NS) => obj('DestinationRule', 'networking.istio.io/v1', name, ns, spec)
export const gateway = (name: string, hosts: string[] = ['*'], ns = NS) =>
  obj('Gateway', 'networking.istio.io/v1', name, ns, {selector: {istio: 'ingressgateway'}, servers: [{port: {number: 80, name: 'http', protocol: 'HTTP'}, hosts}]})

export function snapshot(parts: Partial<MeshSnapshot> & {generation?: number}): MeshSnapshot {
  return {
    generation: parts.generation ?? 1,
    trustDomain: 'cluster.local',
    rootNamespace: 'istio-system',
    services: parts.services ?? [],
    endpoints: parts.endpoints ?? [],
    virtualServices: parts.virtualServices ?? [],
    destinationRules: parts.destinationRules ?? [],
    gateways: parts.gateways ?? [],
    peerAuthentications: parts.peerAuthentications ?? [],
    authorizationPolicies: parts.authorizationPolicies ?? [],
  }
}

export function gatewayId(address = '127.0.0.1'): ProxyIdentity {
  return {id: 'istio-ingressgateway.istio-system', kind: 'gateway', podName: 'istio-ingressgateway-5f8d7c9b6-abcde', namespace: 'istio-system', labels: {istio: 'ingressgateway', app: 'istio-ingressgateway'}, serviceAccount: 'istio-ingressgateway-service-account', address}
}

export function sidecarId(app: string, address: string, ns = NS): ProxyIdentity {
  return {id: `${app}-6d9f7c8b4-x2k4p.${ns}`, kind: 'sidecar', podName: `${app}-6d9f7c8b4-x2k4p`, namespace: ns, labels: {app}, serviceAccount: app, address}
}

export interface Reply {
  status: number
  body: string
  headers: Record<string, string | string[] | undefined>
}

/** One request on a fresh connection (no keep-alive surprises between tests). */
export async function get(url: string, headers: Record<string, string> = {}, method = 'GET', body?: string): Promise<Reply> {
  const res = await request(url, {method: method as 'GET', headers, body, reset: true})
  return {status: res.statusCode, body: await res.body.text(), headers: res.headers}
}

/** Runs `n` requests with `concurrency` workers; returns every reply. */
export async function load(n: number, concurrency: number, fn: (i: number) => Promise<Reply>): Promise<Reply[]> {
  const out: Reply[] = new Array(n)
  let next = 0
  await Promise.all(
    Array.from({length: concurrency}, async () => {
      while (next < n) {
        const i = next++
        out[i] = await fn(i)
      }
    }),
  )
  return out
}

// ---------------------------------------------------------------------------------------------
// Test PKI: a CA and SPIFFE workload certificates (URI SAN, no DNS SAN), as the mesh CA issues.
import 'reflect-metadata'
import {webcrypto} from 'node:crypto'
import * as x509 from '@peculiar/x509'

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])
const ALG = {name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256'} as const

export interface TestCa {
  certPem: string
  /** a SPIFFE workload certificate, or (with ip) a serving certificate for that address */
  issue(spiffe: string, ip?: string): Promise<{certPem: string; keyPem: string}>
}

const pem = (label: string, der: ArrayBuffer) => `-----BEGIN ${label}-----\n${Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n')}\n-----END ${label}-----\n`

export async function testCa(): Promise<TestCa> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair
  const notBefore = new Date(Date.now() - 60_000)
  const notAfter = new Date(Date.now() + 3600_000)
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=dataplane test root',
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: ALG,
    extensions: [new x509.BasicConstraintsExtension(true, 1, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
  })
  let serial = 2
  return {
    certPem: ca.toString('pem'),
    async issue(spiffe, ip) {
      const k = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: (serial++).toString(16).padStart(2, '0'),
        subject: '',
        issuer: ca.subject,
        notBefore,
        notAfter,
        publicKey: k.publicKey,
        signingKey: keys.privateKey,
        signingAlgorithm: ALG,
        extensions: [
          new x509.SubjectAlternativeNameExtension(ip ? [{type: 'ip', value: ip}] : [{type: 'url', value: spiffe}], !ip),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        ],
      })
      return {certPem: cert.toString('pem'), keyPem: pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', k.privateKey))}
    },
  }
}
