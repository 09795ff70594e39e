import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {KubeObject} from '../../../src/cluster/client.js'
import {callAs, curlCommand, describeCall, parseCaller, parseCurlResponse, parseHeader, peerEvidence, type CallResult} from '../../../src/lab/callers.js'
import type {ExecResult, PodExec} from '../../../src/lab/open-target.js'
import {RealTarget} from '../../../src/cluster/real-target.js'
import {FakeTarget, pod} from './fake-cluster.js'

// random loopback addresses so parallel runs do not clash on the fixed sidecar/app ports
const octet = () => 1 + Math.floor(Math.random() * 250)
const net2 = 200 + Math.floor(Math.random() * 50)
const addr = () => `127.${net2}.${octet()}.${octet()}`
const ip = {curl: addr(), helloV1: addr(), legacy: addr(), resetter: addr(), nobody: addr()}

const servers: Array<http.Server | net.Server> = []
const seen: Array<{url: string; host?: string; from?: string; method?: string; xuser?: string}> = []
const listen = (s: http.Server | net.Server, host: string, port: number) =>
  new Promise<number>((resolve) => {
    servers.push(s)
    s.listen(port, host, () => resolve((s.address() as net.AddressInfo).port))
  })
const echo = (name: string) =>
  http.createServer((req, res) => {
    seen.push({url: req.url ?? '', host: req.headers.host, from: req.socket.remoteAddress, method: req.method, xuser: req.headers['x-user'] as string | undefined})
    res.setHeader('x-served-by', name)
    res.end(`Hello version: v1, instance: ${name}\n`)
  })

let ingressPort = 0

beforeAll(async () => {
  await listen(echo('sidecar-outbound'), ip.curl, 15001)
  await listen(echo('hello-v1-pod'), ip.helloV1, 5000)
  // a sidecar under STRICT meeting plaintext: the connection is reset
  await listen(net.createServer((s) => s.resetAndDestroy()), ip.resetter, 5000)
  ingressPort = await listen(
    http.createServer((req, res) => {
      res.statusCode = 403
      res.end('RBAC: access denied')
    }),
    '127.0.0.1',
    0,
  )
})

afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))))
})

function embedded(helloIp: string) {
  const t = new FakeTarget()
  t.ingress = `http://127.0.0.1:${ingressPort}`
  t.fake.seed(
    pod('curl-a', 'mesh-lab', {app: 'curl'}, {ip: ip.curl}),
    pod('curl-b', 'mesh-legacy', {app: 'curl'}, {ip: ip.legacy}),
    {apiVersion: 'v1', kind: 'Service', metadata: {name: 'hello', namespace: 'mesh-lab'}, spec: {selector: {app: 'hello'}, ports: [{name: 'http', port: 5000, targetPort: 5000}]}} as KubeObject,
    {apiVersion: 'v1', kind: 'Endpoints', metadata: {name: 'hello', namespace: 'mesh-lab'}, subsets: [{addresses: [{ip: helloIp, targetRef: {name: 'hello-v1-x'}}], ports: [{name: 'http', port: 5000}]}]} as KubeObject,
  )
  return t
}

describe('callAs on the embedded cluster', () => {
  it('ingress: one request to the ingress URL; a 403 is an answer, not an error', async () => {
    const r = await callAs(embedded(ip.helloV1), 'ingress', {path: '/hello'})
    expect(r).toMatchObject({from: 'ingress', status: 403, body: 'RBAC: access denied', reset: false, outcome: 'response'})
    expect(describeCall(r)).toBe('403 RBAC: access denied')
  })

  it('meshed: through the curl pod\'s sidecar outbound listener, routed by the service host, from the pod\'s address', async () => {
    const r = await callAs(embedded(ip.helloV1), 'meshed', {path: '/hello', method: 'post', headers: {'x-user': 'alice'}})
    expect(r.status).toBe(200)
    expect(r.headers['x-served-by']).toBe('sidecar-outbound')
    expect(r.via).toContain(`${ip.curl}:15001`)
    expect(r.caller).toEqual({namespace: 'mesh-lab', pod: 'curl-a', address: ip.curl})
    const req = seen.findLast((s) => s.xuser === 'alice')!
    expect(req).toMatchObject({url: '/hello', host: 'hello.mesh-lab.svc.cluster.local:5000', from: ip.curl, method: 'POST'})
  })

  it('legacy: plaintext straight to a hello endpoint, from the legacy client\'s address', async () => {
    const r = await callAs(embedded(ip.helloV1), 'legacy')
    expect(r).toMatchObject({status: 200, reset: false, server: {pod: 'hello-v1-x', address: `${ip.helloV1}:5000`}})
    expect(r.body).toMatch(/^Hello version: v1/)
    expect(seen.at(-1)?.from).toBe(ip.legacy)
  })

  it('a reset connection is reported as 000 connection reset; a refused one as refused', async () => {
    const reset = await callAs(embedded(ip.resetter), 'legacy')
    expect(reset).toMatchObject({status: 0, reset: true, outcome: 'reset'})
    expect(describeCall(reset)).toBe('000 connection reset')
    const refused = await callAs(embedded(ip.nobody), 'legacy')
    expect(refused).toMatchObject({status: 0, reset: true, outcome: 'refused', error: 'ECONNREFUSED'})
  })

  it('no Ready meshed client is MESH_CALLER_NOT_READY (69); bad input is 65', async () => {
    const t = new FakeTarget()
    t.fake.seed(pod('curl-a', 'mesh-lab', {app: 'curl'}, {ip: ip.curl, ready: false}))
    await expect(callAs(t, 'meshed')).rejects.toMatchObject({code: 'MESH_CALLER_NOT_READY', exit: 69})
    await expect(callAs(t, 'ingress', {method: 'FETCH'})).rejects.toMatchObject({code: 'MESH_HTTP_METHOD', exit: 65})
    await expect(callAs(t, 'ingress', {path: 'hello'})).rejects.toMatchObject({code: 'MESH_CALL_PATH', exit: 65})
    expect(() => parseCaller('sidecar')).toThrow(expect.objectContaining({code: 'MESH_CALLER'}))
    expect(() => parseHeader('no-colon')).toThrow(expect.objectContaining({code: 'MESH_HEADER'}))
    expect(parseHeader('X-User: alice')).toEqual(['x-user', 'alice'])
  })
})

describe('callAs on a real cluster (kubectl exec curl)', () => {
  const curlOut = 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nserver: envoy\r\nx-envoy-upstream-service-time: 3\r\n\r\nHello version: v2, instance: hello-v2-abc\n'

  function realWithExec(result: ExecResult) {
    const calls: Array<{namespace: string; workload: string; command: string[]; container?: string}> = []
    const t = Object.assign(new FakeTarget({kind: 'real', context: 'kind-mesh'}), {
      async execInPod(namespace: string, workload: string, command: string[], opts: {container?: string} = {}) {
        calls.push({namespace, workload, command, container: opts.container})
        return result
      },
    } satisfies PodExec)
    return {t, calls}
  }

  it('meshed runs curl in mesh-lab/deploy/curl and parses the response', async () => {
    const {t, calls} = realWithExec({exitCode: 0, stdout: curlOut, stderr: ''})
    const r = await callAs(t, 'meshed', {method: 'GET', headers: {'x-user': 'bob'}})
    expect(calls[0]).toMatchObject({namespace: 'mesh-lab', workload: 'deploy/curl', container: 'curl'})
    expect(calls[0]!.command).toEqual(['curl', '-sS', '-i', '-X', 'GET', '--max-time', '10', '-H', 'x-user: bob', 'http://hello.mesh-lab.svc.cluster.local:5000/hello'])
    expect(r).toMatchObject({status: 200, body: 'Hello version: v2, instance: hello-v2-abc\n', headers: {server: 'envoy'}, reset: false})
  })

  it('legacy runs in mesh-legacy; curl exit 56 is a reset, 7 refused, 28 a timeout error', async () => {
    const reset = realWithExec({exitCode: 56, stdout: '', stderr: 'curl: (56) Recv failure: Connection reset by peer'})
    const r: CallResult = await callAs(reset.t, 'legacy')
    expect(reset.calls[0]!.namespace).toBe('mesh-legacy')
    expect(r).toMatchObject({status: 0, reset: true, outcome: 'reset'})
    expect((await callAs(realWithExec({exitCode: 7, stdout: '', stderr: ''}).t, 'legacy')).outcome).toBe('refused')
    await expect(callAs(realWithExec({exitCode: 28, stdout: '', stderr: ''}).t, 'legacy')).rejects.toMatchObject({code: 'MESH_CALL_TIMEOUT', exit: 69})
    await expect(callAs(realWithExec({exitCode: 1, stdout: '', stderr: 'Error from server (NotFound): deployments.apps "curl" not found'}).t, 'meshed')).rejects.toMatchObject({
      code: 'MESH_CALL_FAILED',
      message: expect.stringContaining('NotFound'),
    })
  })

  it('a real target runs kubectl exec with the context, kubeconfig and container', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mesh-exec-'))
    const log = join(dir, 'kubectl.log')
    const kubeconfig = join(dir, 'config')
    writeFileSync(kubeconfig, 'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n')
    const env = {
      ...process.env,
      MESH_KUBECTL: join(import.meta.dirname, 'fixtures', 'kubectl-exec'),
      FAKE_KUBECTL_LOG: log,
      FAKE_CURL_EXIT: '0',
      FAKE_CURL_OUTPUT: 'HTTP/1.1 403 Forbidden\r\ncontent-length: 19\r\n\r\nRBAC: access denied',
    }
    const t = new RealTarget({context: 'kind-mesh', kubeconfigPath: kubeconfig, env})
    const r = await callAs(t, 'legacy', {path: '/hello', method: 'POST', body: 'x'})
    expect(r).toMatchObject({status: 403, body: 'RBAC: access denied'})
    const argv = JSON.parse(readFileSync(log, 'utf8').trim()).argv as string[]
    expect(argv.slice(0, argv.indexOf('--'))).toEqual(['exec', '-n', 'mesh-legacy', 'deploy/curl', '-c', 'curl', '--context', 'kind-mesh', '--kubeconfig', kubeconfig])
    expect(argv.slice(argv.indexOf('--') + 1)).toEqual(curlCommand('http://hello.mesh-lab.svc.cluster.local:5000/hello', {method: 'POST', body: 'x', timeoutMs: 10_000}))
    const reset = await callAs(new RealTarget({context: 'kind-mesh', kubeconfigPath: kubeconfig, env: {...env, FAKE_CURL_EXIT: '56'}}), 'legacy')
    expect(describeCall(reset)).toBe('000 connection reset')
  })

  it('parses curl -i output with folded duplicate headers and no body', () => {
    expect(parseCurlResponse('HTTP/2 204 \r\nset-cookie: a\r\nset-cookie: b\r\n\r\n')).toEqual({status: 204, headers: {'set-cookie': 'a, b'}, body: ''})
  })
})

describe('peer evidence', () => {
  it('reads the client identity from an XFCC header or an echoed header line', () => {
    const xfcc = 'By=spiffe://cluster.local/ns/mesh-lab/sa/hello-v1;Hash=ab12;Subject="";URI=spiffe://cluster.local/ns/mesh-lab/sa/curl'
    expect(peerEvidence({'x-forwarded-client-cert': xfcc}, '')).toEqual({xfcc, identity: 'spiffe://cluster.local/ns/mesh-lab/sa/curl'})
    expect(peerEvidence({}, `headers:\nHost: hello\nX-Forwarded-Client-Cert: ${xfcc}\n`)?.identity).toBe('spiffe://cluster.local/ns/mesh-lab/sa/curl')
    expect(peerEvidence({}, 'Hello version: v1, instance: hello-v1-x')).toBeUndefined()
  })
})
