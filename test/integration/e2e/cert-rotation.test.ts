// Issue 5 item 1 on a real lab: workload certificates are renewed at half their lifetime and
// pushed to the proxies, which use them for new connections while open ones carry on.
// With MESH_WORKLOAD_CERT_TTL_SECONDS=6 a certificate lives 6 s and is replaced every ~3 s.
import tls from 'node:tls'
import {X509Certificate} from 'node:crypto'
import {Agent, request} from 'undici'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {echoWorkload, get, meshIn, sleep, startLab, stopLab, yamlDocs, type Lab, type LabPod} from './helpers.js'

const TTL_SECONDS = 6
const WINDOW_MS = 14_000 // > 2 lifetimes: ≥ 4 renewals of every certificate

// fortio's /debug echoes the request headers the app received, so the X-Forwarded-Client-Cert
// of each request shows which client certificate the gateway presented (Hash=).
const ECHO = yamlDocs(
  ...echoWorkload('mesh-lab'),
  `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo-ingress, namespace: mesh-lab}
spec:
  hosts: [echo.example.com]
  gateways: [hello-gateway]
  http:
    - route: [{destination: {host: echo, port: {number: 8080}}}]`,
  // one request per upstream connection: every request through the gateway is a new mTLS handshake
  `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: mesh-lab}
spec:
  host: echo
  trafficPolicy:
    connectionPool: {http: {maxRequestsPerConnection: 1}}`,
)

/** The certificate a sidecar's inbound port serves (no client certificate: TLS 1.3 sends it first). */
function servedCertificate(host: string, port: number): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({host, port, rejectUnauthorized: false, ALPNProtocols: ['istio'], servername: 'outbound_.8080_._.echo.mesh-lab.svc.cluster.local'})
    const t = setTimeout(() => s.destroy(new Error('TLS handshake timed out')), 5000)
    s.once('secureConnect', () => {
      clearTimeout(t)
      const c = s.getPeerX509Certificate()
      s.destroy()
      if (c) resolve(c)
      else reject(new Error('no server certificate'))
    })
    s.once('error', (e) => {
      clearTimeout(t)
      reject(e)
    })
  })
}

const clusterStats = async (lab: Lab, name: string): Promise<Record<string, number>> => {
  const j = JSON.parse((await get(`${lab.gatewayAdmin}/clusters?format=json`)).body) as {cluster_statuses: Array<{name: string; stats: Record<string, number>}>}
  const c = j.cluster_statuses.find((x) => x.name === name)
  if (!c) throw new Error(`gateway has no cluster ${name}`)
  return c.stats
}

let lab: Lab
let echo: LabPod

beforeAll(async () => {
  lab = await startLab({env: {MESH_WORKLOAD_CERT_TTL_SECONDS: String(TTL_SECONDS)}, prefix: 'mesh-e2e-rot-'})
  await lab.apply(ECHO)
  ;[echo] = await lab.readyPods('mesh-lab', 'app=echo', 1)
  await lab.waitSynced(await lab.resourceVersion())
})

afterAll(async () => {
  await stopLab(lab)
})

describe('workload certificate rotation (TTL 6 s)', () => {
  it('keeps mTLS traffic through the gateway flowing across several renewals; served and presented certificates change; open connections stay', async () => {
    const HELLO_CLUSTER = 'outbound|5000|v1|hello.mesh-lab.svc.cluster.local'
    // one kept-alive downstream connection, so the gateway keeps one upstream connection to hello
    const keepAlive = new Agent({connections: 1, keepAliveTimeout: 60_000, pipelining: 1})
    const hello = async () => {
      const r = await request(`${lab.ingress}/hello`, {dispatcher: keepAlive})
      const body = await r.body.text()
      return {status: r.statusCode, body}
    }
    expect((await hello()).status).toBe(200)
    const helloBefore = await clusterStats(lab, HELLO_CLUSTER)

    const serials: string[] = []
    const notAfter: string[] = []
    const xfccHashes: string[] = []
    const byValues = new Set<string>()
    const failures: string[] = []
    let helloOk = 0
    let echoOk = 0
    const end = Date.now() + WINDOW_MS
    let i = 0
    while (Date.now() < end) {
      const h = await hello()
      if (h.status === 200 && h.body.startsWith('Hello version: v1')) helloOk++
      else failures.push(`hello ${h.status} ${h.body.slice(0, 80)}`)
      const e = await get(`${lab.ingress}/debug`, {headers: {host: 'echo.example.com'}})
      const xfcc = /^X-Forwarded-Client-Cert: (.*)$/m.exec(e.body)?.[1]
      if (e.status === 200 && xfcc) {
        echoOk++
        xfccHashes.push(/Hash=([0-9a-f]+)/.exec(xfcc)?.[1] ?? '')
        byValues.add(/By=([^;]+)/.exec(xfcc)?.[1] ?? '')
        expect(xfcc).toContain('URI=spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account')
      } else failures.push(`echo ${e.status} ${e.body.slice(0, 120)}`)
      if (i++ % 4 === 0) {
        const c = await servedCertificate(echo.ip, 8080)
        serials.push(c.serialNumber)
        notAfter.push(c.validTo)
        expect(c.subjectAltName).toBe('URI:spiffe://cluster.local/ns/mesh-lab/sa/echo')
      }
      await sleep(150)
    }
    const helloAfter = await clusterStats(lab, HELLO_CLUSTER)
    keepAlive.destroy()

    expect(failures).toEqual([])
    expect(helloOk).toBeGreaterThan(20)
    expect(echoOk).toBeGreaterThan(20)
    // ≥ 3 distinct certificates on each side = at least two rotations observed
    const distinct = (xs: string[]) => [...new Set(xs)].length
    expect(distinct(serials), `served serials ${serials.join(' ')}`).toBeGreaterThanOrEqual(3)
    expect(distinct(xfccHashes), 'client certificates the gateway presented').toBeGreaterThanOrEqual(3)
    // serials change in order: a new one never goes back to an older one
    const order = serials.filter((s, k) => k === 0 || s !== serials[k - 1])
    expect(distinct(order)).toBe(order.length)
    // every served certificate was still valid when read, and later ones expire later
    const expiries = [...new Set(notAfter)].map((d) => Date.parse(d))
    expect(expiries).toEqual([...expiries].sort((a, b) => a - b))
    expect(Math.max(...expiries) - Math.min(...expiries)).toBeGreaterThanOrEqual(2 * (TTL_SECONDS / 2) * 1000 - 1000)
    expect([...byValues]).toEqual(['spiffe://cluster.local/ns/mesh-lab/sa/echo'])
    // the kept-alive gateway → hello connection outlived the certificates it was opened with
    expect(helloAfter.upstream_cx_total).toBe(helloBefore.upstream_cx_total)
    expect(helloAfter.upstream_rq_total).toBeGreaterThan(helloBefore.upstream_rq_total)
  })

  it('refuses a lifetime too short to renew at half of it: lab up fails with MESH_CERT_TTL_INVALID', async () => {
    const home = mkdtempSync(join(tmpdir(), 'mesh-e2e-ttl-'))
    try {
      const r = await meshIn(home, ['lab', 'up', '--json'], {MESH_WORKLOAD_CERT_TTL_SECONDS: '1'})
      expect(r.status).toBe(65)
      expect(r.stdout + r.stderr).toContain('MESH_CERT_TTL_INVALID')
      expect(r.stdout + r.stderr).toContain('MESH_WORKLOAD_CERT_TTL_SECONDS')
    } finally {
      await stopLab(home)
    }
  })
})
