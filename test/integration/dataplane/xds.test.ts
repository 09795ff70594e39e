// The proxy's subscription to meshd (NDJSON pushes, acks, reconnects) against a fake meshd,
// and the compiled gateway process end to end.
import {spawn, type ChildProcess} from 'node:child_process'
import {existsSync, mkdtempSync, writeFileSync} from 'node:fs'
import https from 'node:https'
import type {AddressInfo} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {createInterface} from 'node:readline'
import {afterAll, describe, expect, it} from 'vitest'
import http from 'node:http'
import {startSidecar} from '../../../src/local/dataplane/sidecar.js'
import {APP_PORT_OFFSET} from '../../../src/local/dataplane/snapshot.js'
import {startXdsClient} from '../../../src/local/dataplane/xds-client.js'
import type {MeshSnapshot, PushMessage} from '../../../src/local/dataplane/snapshot.js'
import {endpoint, gateway, get, randomLoopback, randomPort, service, snapshot, startUpstream, testCa, vs} from './helpers.js'

const TOKEN = 'test-token-123'
const cleanup: (() => Promise<unknown> | void)[] = []
afterAll(async () => {
  for (const c of cleanup.reverse()) await Promise.resolve(c()).catch(() => {})
})

interface FakeMeshd {
  url: string
  port: number
  ca: string
  acks: Record<string, unknown>[]
  subscriptions: {proxy: string | null; kind: string | null; identity?: unknown}[]
  unauthorized: number
  push(m: PushMessage): void
  /** the config every new subscriber gets first */
  current: PushMessage | undefined
  stop(): Promise<void>
  restart(): Promise<void>
}

async function fakeMeshd(): Promise<FakeMeshd> {
  const ca = await testCa()
  const serving = await ca.issue('', '127.0.0.1')
  const streams = new Set<http.ServerResponse>()
  let server: https.Server
  const m: FakeMeshd = {
    url: '',
    port: 0,
    ca: ca.certPem,
    acks: [],
    subscriptions: [],
    unauthorized: 0,
    current: undefined,
    push(msg) {
      m.current = msg.type === 'config' ? msg : m.current
      for (const s of streams) s.write(JSON.stringify(msg) + '\n')
    },
    async stop() {
      for (const s of streams) s.destroy()
      streams.clear()
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
    },
    async restart() {
      await m.stop()
      await listen(m.port)
    },
  }
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      m.unauthorized++
      res.writeHead(401).end('{"kind":"Status","code":401}')
      return
    }
    const u = new URL(req.url ?? '/', 'https://x')
    if (req.method === 'GET' && u.pathname === '/mesh/v1/xds') {
      const idHeader = req.headers['x-mesh-proxy-identity']
      m.subscriptions.push({proxy: u.searchParams.get('proxy'), kind: u.searchParams.get('kind'), identity: idHeader ? JSON.parse(Buffer.from(String(idHeader), 'base64url').toString()) : undefined})
      res.writeHead(200, {'content-type': 'application/x-ndjson'})
      streams.add(res)
      res.on('close', () => streams.delete(res))
      if (m.current) res.write(JSON.stringify(m.current) + '\n')
      return
    }
    if (req.method === 'POST' && u.pathname === '/mesh/v1/ack') {
      let b = ''
      req.on('data', (c) => (b += c))
      req.on('end', () => {
        m.acks.push(JSON.parse(b))
        res.writeHead(204).end()
      })
      return
    }
    res.writeHead(404).end()
  }
  const listen = (port: number) =>
    new Promise<void>((resolve) => {
      server = https.createServer({cert: serving.certPem, key: serving.keyPem}, handler)
      server.listen(port, '127.0.0.1', () => {
        m.port = (server.address() as AddressInfo).port
        m.url = `https://127.0.0.1:${m.port}`
        resolve()
      })
    })
  await listen(0)
  cleanup.push(() => m.stop())
  return m
}

const until = async (cond: () => boolean, ms = 5000) => {
  const end = Date.now() + ms
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10))
  return cond()
}

const gen = (g: number): PushMessage => ({type: 'config', generation: g, snapshot: snapshot({generation: g})})
const identity = {id: 'hello-v1-abc.mesh-lab', kind: 'sidecar' as const, podName: 'hello-v1-abc', namespace: 'mesh-lab', labels: {app: 'hello'}, serviceAccount: 'hello', address: '127.0.0.1'}

describe('xds client', () => {
  it('subscribes with the token and CA, applies pushes in order, acks each generation, hands over secrets', async () => {
    const meshd = await fakeMeshd()
    meshd.current = gen(1)
    const applied: number[] = []
    const secrets: string[] = []
    const c = startXdsClient({apiUrl: meshd.url, token: TOKEN, ca: meshd.ca, identity, onConfig: (s) => void applied.push(s.generation), onSecret: (s) => void secrets.push(s.spiffeId)})
    cleanup.push(() => c.stop())
    await c.waitForGeneration(1)
    expect(meshd.subscriptions[0]).toMatchObject({proxy: identity.id, kind: 'sidecar', identity})
    meshd.push({type: 'secret', secret: {certChainPem: 'c', privateKeyPem: 'k', rootCaPem: 'r', spiffeId: 'spiffe://cluster.local/ns/mesh-lab/sa/hello', notAfter: '2030-01-01T00:00:00Z'}})
    meshd.push(gen(2))
    await c.waitForGeneration(2)
    expect(await until(() => meshd.acks.length >= 2)).toBe(true)
    expect(applied).toEqual([1, 2])
    expect(meshd.acks).toEqual([{proxy: identity.id, generation: 1}, {proxy: identity.id, generation: 2}])
    expect(secrets).toEqual(['spiffe://cluster.local/ns/mesh-lab/sa/hello'])
    expect(c.state).toBe('connected')
  })

  it('reconnects with backoff when meshd restarts, and picks up the config pushed meanwhile', async () => {
    const meshd = await fakeMeshd()
    meshd.current = gen(1)
    const states: string[] = []
    const c = startXdsClient({apiUrl: meshd.url, token: TOKEN, ca: meshd.ca, identity, onConfig: () => {}, onState: (s) => states.push(s), backoff: {initialMs: 20, maxMs: 200}})
    cleanup.push(() => c.stop())
    await c.waitForGeneration(1)
    await meshd.stop()
    expect(await until(() => states.includes('disconnected'))).toBe(true)
    meshd.current = gen(3)
    await meshd.restart()
    await c.waitForGeneration(3)
    expect(meshd.subscriptions.length).toBeGreaterThanOrEqual(2)
    expect(await until(() => meshd.acks.some((a) => a.generation === 3))).toBe(true)
  })

  it('a config that fails to apply is reported (NACK) and the last good generation stays', async () => {
    const meshd = await fakeMeshd()
    meshd.current = gen(1)
    const c = startXdsClient({
      apiUrl: meshd.url,
      token: TOKEN,
      ca: meshd.ca,
      identity,
      onConfig: (s: MeshSnapshot) => {
        if (s.generation === 2) throw new Error('bad config')
      },
    })
    cleanup.push(() => c.stop())
    await c.waitForGeneration(1)
    meshd.push(gen(2))
    expect(await until(() => meshd.acks.length >= 2)).toBe(true)
    expect(meshd.acks[1]).toEqual({proxy: identity.id, generation: 1, rejected: 2, error: 'bad config'})
    expect(c.applied).toBe(1)
  })

  it('keeps retrying with a wrong token and stops cleanly', async () => {
    const meshd = await fakeMeshd()
    const c = startXdsClient({apiUrl: meshd.url, token: 'wrong', ca: meshd.ca, identity, onConfig: () => {}, backoff: {initialMs: 10, maxMs: 40}})
    expect(await until(() => meshd.unauthorized >= 3)).toBe(true)
    await c.stop()
    expect(c.state).toBe('stopped')
  })
})

describe('gateway process (dist/local/dataplane/gateway-main.js)', () => {
  const main = join(process.cwd(), 'dist/local/dataplane/gateway-main.js')

  it('connects to meshd, applies Gateway + VirtualService routing, acks, and exits 0 on SIGTERM', async () => {
    expect(existsSync(main), 'build first: npm run build').toBe(true)
    const meshd = await fakeMeshd()
    const port = randomPort()
    const up = await startUpstream('v1', {port})
    cleanup.push(() => up.close())
    meshd.current = {
      type: 'config',
      generation: 4,
      snapshot: snapshot({
        generation: 4,
        services: [service('hello', 5000, port, {app: 'hello'})],
        endpoints: [endpoint(up, {app: 'hello', version: 'v1'})],
        gateways: [gateway('hello-gateway')],
        virtualServices: [vs('hello', {hosts: ['*'], gateways: ['hello-gateway'], http: [{match: [{uri: {exact: '/hello'}}], route: [{destination: {host: 'hello', port: {number: 5000}}}]}]})],
      }),
    }
    const dir = mkdtempSync(join(tmpdir(), 'gw-'))
    writeFileSync(join(dir, 'ca.pem'), meshd.ca)
    writeFileSync(join(dir, 'token'), TOKEN + '\n')
    const child: ChildProcess = spawn(process.execPath, [main, '--api-url', meshd.url, '--token-file', join(dir, 'token'), '--ca-file', join(dir, 'ca.pem'), '--port', '0', '--admin-port', '0'], {stdio: ['ignore', 'pipe', 'pipe']})
    cleanup.push(() => void child.kill('SIGKILL'))
    let stderr = ''
    child.stderr!.on('data', (d) => (stderr += d))
    const first = await new Promise<string>((resolve, reject) => {
      createInterface({input: child.stdout!}).once('line', resolve)
      child.once('exit', (code) => reject(new Error(`gateway exited ${code}: ${stderr}`)))
    })
    const ready = JSON.parse(first) as {event: string; gateway: {host: string; port: number}; admin: {port: number}}
    expect(ready.event).toBe('listening')
    expect(await until(() => meshd.acks.some((a) => a.generation === 4))).toBe(true)
    expect(meshd.subscriptions[0]).toMatchObject({proxy: 'istio-ingressgateway.istio-system', kind: 'gateway'})
    const r = await get(`http://${ready.gateway.host}:${ready.gateway.port}/hello`)
    expect(r.status).toBe(200)
    expect(r.body).toMatch(/^Hello version: v1/)
    expect((await get(`http://${ready.gateway.host}:${ready.gateway.port}/other`)).status).toBe(404)
    expect((await get(`http://127.0.0.1:${ready.admin.port}/ready`)).status).toBe(200)
    const code = await new Promise<number | null>((resolve) => {
      child.once('exit', resolve)
      child.kill('SIGTERM')
    })
    expect(code).toBe(0)
  })
})

describe('pod sidecar (startSidecar, the runtime seam)', () => {
  it('listens on 15001/15000/15090 and the container port, follows meshd, and stops', async () => {
    const meshd = await fakeMeshd()
    const podIP = randomLoopback()
    const port = randomPort()
    const app = http.createServer((req, res) => res.end(`Hello version: v1, instance: hello-v1-6d9f7c8b4-abcde ${req.url}\n`))
    await new Promise<void>((r) => app.listen(port + APP_PORT_OFFSET, podIP, () => r()))
    cleanup.push(() => new Promise((r) => app.close(r)))
    const pod = {uid: 'u1', name: 'hello-v1-6d9f7c8b4-abcde', namespace: 'mesh-lab', labels: {app: 'hello', version: 'v1'}, serviceAccount: 'hello', podIP, image: 'docker.io/istio/examples-helloworld-v1', args: [], env: {}, containerPorts: [port], sidecar: true, restartPolicy: 'Always' as const}
    meshd.current = {
      type: 'config',
      generation: 9,
      snapshot: snapshot({
        generation: 9,
        services: [service('hello', 5000, port, {app: 'hello'})],
        endpoints: [{address: podIP, podName: pod.name, namespace: 'mesh-lab', labels: pod.labels, serviceAccount: 'hello', sidecar: true, ready: true, ports: [port]}],
      }),
    }
    const sc = await startSidecar({pod, appPorts: [{containerPort: port, appPort: port + APP_PORT_OFFSET}], meshd: {url: meshd.url, token: TOKEN, caPem: meshd.ca}, stateDir: tmpdir()})
    cleanup.push(() => sc.stop())
    expect(sc.outbound).toEqual({address: podIP, port: 15001})
    expect(await until(() => meshd.acks.some((a) => a.proxy === `${pod.name}.mesh-lab` && a.generation === 9))).toBe(true)
    expect((await get(`http://${podIP}:${port}/in`)).body).toMatch(/ \/in$/m)
    expect((await get(`http://${podIP}:15001/out`, {host: 'hello:5000'})).body).toMatch(/ \/out$/m)
    expect((await get(`http://${podIP}:15000/ready`)).status).toBe(200)
    expect((await get(`http://${podIP}:15090/stats/prometheus`)).body).toMatch(/istio_requests_total\{reporter="destination"/)
    await sc.stop()
    await expect(get(`http://${podIP}:${port}/in`)).rejects.toThrow()
  })
})
