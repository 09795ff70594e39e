// SC-8, Istio's mutual TLS migration task, on a real embedded lab: namespaces foo and bar with
// sidecar injection, each with a meshed curl client and a helloworld server, plus the lab's
// legacy client (mesh-legacy, no sidecar). Meshed calls go through the client's sidecar
// outbound listener; legacy calls go in plaintext straight to the server pod, with the real
// curl binary, so a STRICT refusal shows as curl's own `000` and exit 56.
import http from 'node:http'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {
  echoedXfcc,
  get,
  legacyCurl,
  meshedCurl,
  meshedNamespace,
  promSamples,
  startLab,
  stopLab,
  type CurlResult,
  type Lab,
  type LabPod,
} from './helpers.js'

type Ns = 'foo' | 'bar'
let lab: Lab
const client = {} as Record<Ns, LabPod>
const hello = {} as Record<Ns, LabPod>
let echo: LabPod
let legacy: LabPod

const PA = {
  mesh: `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
`,
  foo: `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: foo}
spec: {mtls: {mode: STRICT}}
`,
  workload: `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: hello, namespace: foo}
spec:
  selector: {matchLabels: {app: hello}}
  mtls: {mode: STRICT}
  portLevelMtls:
    5000: {mode: DISABLE}
`,
}

const outcome = (r: CurlResult) => (r.code === 0 ? `000/exit ${r.exit}` : String(r.code))

/** The task's matrix: from foo, bar (meshed) and legacy to hello in foo and bar. */
async function matrix(): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const to of ['foo', 'bar'] as const) {
    for (const from of ['foo', 'bar'] as const) out[`${from}→${to}`] = outcome(await meshedCurl(client[from], `hello.${to}`, 5000, '/hello'))
    out[`legacy→${to}`] = outcome(await legacyCurl(legacy, hello[to], 5000, '/hello'))
  }
  return out
}

const applyAndSync = async (yaml: string) => lab.waitSynced(await lab.apply(yaml))
const removeAndSync = async (yaml: string) => lab.waitSynced(await lab.remove(yaml))

/** istio_requests_total at hello.foo's sidecar (reporter=destination) from the foo curl client, by connection_security_policy. */
async function inboundBySecurity(): Promise<Record<string, number>> {
  const text = (await get(`http://${hello.foo.ip}:15090/stats/prometheus`)).body
  const out: Record<string, number> = {}
  for (const s of promSamples(text, 'istio_requests_total')) {
    if (s.labels.reporter !== 'destination' || s.labels.source_workload !== 'curl' || s.labels.source_workload_namespace !== 'foo') continue
    out[s.labels.connection_security_policy] = (out[s.labels.connection_security_policy] ?? 0) + s.value
  }
  return out
}

beforeAll(async () => {
  lab = await startLab({prefix: 'mesh-e2e-sc8-'})
  await lab.apply(meshedNamespace('foo', {echo: true}) + '---\n' + meshedNamespace('bar'))
  for (const ns of ['foo', 'bar'] as const) {
    ;[client[ns]] = await lab.readyPods(ns, 'app=curl', 1)
    ;[hello[ns]] = await lab.readyPods(ns, 'app=hello', 1)
  }
  ;[echo] = await lab.readyPods('foo', 'app=echo', 1)
  ;[legacy] = await lab.readyPods('mesh-legacy', 'app=curl', 1)
  await lab.waitSynced(await lab.resourceVersion())
})

afterAll(async () => {
  await stopLab(lab)
})

describe('SC-8 mutual TLS migration on the embedded cluster', () => {
  it('by default (PERMISSIVE, auto mTLS) every caller gets 200', async () => {
    expect(await matrix()).toEqual({'foo→foo': '200', 'bar→foo': '200', 'legacy→foo': '200', 'foo→bar': '200', 'bar→bar': '200', 'legacy→bar': '200'})
  })

  it('XFCC reaches the app on mTLS requests only, naming the caller; a forged one from plaintext is dropped', async () => {
    const fromFoo = await meshedCurl(client.foo, 'echo.foo', 8080, '/debug')
    expect(fromFoo.code).toBe(200)
    const xfccFoo = echoedXfcc(fromFoo.body)
    expect(xfccFoo).toMatch(/^By=spiffe:\/\/cluster\.local\/ns\/foo\/sa\/echo;Hash=[0-9a-f]{64};Subject="";URI=spiffe:\/\/cluster\.local\/ns\/foo\/sa\/curl$/)

    const fromBar = await meshedCurl(client.bar, 'echo.foo', 8080, '/debug')
    expect(echoedXfcc(fromBar.body)).toContain('URI=spiffe://cluster.local/ns/bar/sa/curl')

    const forged = 'By=spiffe://cluster.local/ns/foo/sa/echo;URI=spiffe://cluster.local/ns/foo/sa/curl'
    const plain = await legacyCurl(legacy, echo, 8080, '/debug', {headers: {'X-Forwarded-Client-Cert': forged}})
    expect(plain.code).toBe(200)
    expect(plain.body).toContain('GET /debug')
    expect(echoedXfcc(plain.body)).toBeUndefined()

    // the server sidecar counted the meshed request as mutual TLS
    expect((await inboundBySecurity()).mutual_tls).toBeGreaterThan(0)
  })

  it('mesh-wide STRICT (istio-system/default): plaintext from legacy is reset (curl 000, exit 56); meshed callers still 200', async () => {
    // a legacy client with a kept-alive plaintext connection from before the change
    const agent = new http.Agent({keepAlive: true, maxSockets: 1, localAddress: legacy.ip})
    const onKeptAlive = () =>
      new Promise<{status?: number; reused: boolean; error?: string}>((resolve) => {
        const req = http.get({host: hello.foo.ip, port: 5000, path: '/hello', agent}, (res) => {
          res.resume()
          res.on('end', () => resolve({status: res.statusCode, reused: req.reusedSocket}))
        })
        req.on('error', (e: NodeJS.ErrnoException) => resolve({reused: req.reusedSocket, error: e.code ?? e.message}))
      })
    expect((await onKeptAlive()).status).toBe(200)
    await applyAndSync(PA.mesh)
    // the old plaintext connection was drained by the server sidecar, and a new one is reset
    const again = await onKeptAlive()
    agent.destroy()
    expect(again.status).toBeUndefined()
    expect(again.error).toBe('ECONNRESET')
    expect(await matrix()).toEqual({
      'foo→foo': '200', 'bar→foo': '200', 'legacy→foo': '000/exit 56',
      'foo→bar': '200', 'bar→bar': '200', 'legacy→bar': '000/exit 56',
    })
    await removeAndSync(PA.mesh)
  })

  it('namespace STRICT in foo only: only legacy → foo fails', async () => {
    await applyAndSync(PA.foo)
    expect(await matrix()).toEqual({
      'foo→foo': '200', 'bar→foo': '200', 'legacy→foo': '000/exit 56',
      'foo→bar': '200', 'bar→bar': '200', 'legacy→bar': '200',
    })
  })

  it('workload STRICT with portLevelMtls 5000: DISABLE lets legacy in again on that port only; meshed callers switch to plaintext there', async () => {
    const before = await inboundBySecurity()
    await applyAndSync(PA.workload)
    expect(await matrix()).toEqual({
      'foo→foo': '200', 'bar→foo': '200', 'legacy→foo': '200',
      'foo→bar': '200', 'bar→bar': '200', 'legacy→bar': '200',
    })
    // echo in foo is not selected: the namespace STRICT still refuses plaintext there
    expect(outcome(await legacyCurl(legacy, echo, 8080, '/debug'))).toBe('000/exit 56')
    // auto mTLS sends plaintext to a port whose mode is DISABLE (DR-10): hello.foo saw it as such
    const after = await inboundBySecurity()
    expect((after.none ?? 0) - (before.none ?? 0)).toBeGreaterThanOrEqual(1)
    expect(after.mutual_tls).toBe(before.mutual_tls)
  })
})
