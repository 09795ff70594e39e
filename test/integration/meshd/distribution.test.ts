// Config distribution over meshd's API: the test plays a proxy on /mesh/v1/xds, acknowledges
// generations, and watches /mesh/v1/proxy-status and EmbeddedTarget.waitForSync react.
import https from 'node:https'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {load} from 'js-yaml'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {KubeClient} from '../../../src/cluster/client.js'
import {EmbeddedTarget} from '../../../src/cluster/target.js'
import type {PushMessage} from '../../../src/local/dataplane/snapshot.js'
import {cleanup, ensureBuilt, kubectl, mesh, tempHome, until} from './helpers.js'

let home: string
let server: string
let token: string
let ca: string

interface Stream {
  messages: PushMessage[]
  close(): void
  closed: Promise<void>
}

function subscribe(query: string): Promise<Stream> {
  return new Promise((resolve, reject) => {
    const messages: PushMessage[] = []
    let closedResolve!: () => void
    const closed = new Promise<void>((r) => (closedResolve = r))
    const req = https.get(`${server}/mesh/v1/xds?${query}`, {ca, headers: {Authorization: `Bearer ${token}`}}, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`))
      let buf = ''
      res.on('data', (c: Buffer) => {
        buf += c.toString('utf8')
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          messages.push(JSON.parse(buf.slice(0, nl)) as PushMessage)
          buf = buf.slice(nl + 1)
        }
      })
      res.on('close', closedResolve)
      resolve({messages, close: () => req.destroy(), closed})
    })
    req.on('error', (e) => (messages.length ? closedResolve() : reject(e)))
  })
}

const configs = (s: Stream) => s.messages.filter((m): m is Extract<PushMessage, {type: 'config'}> => m.type === 'config')

beforeAll(async () => {
  ensureBuilt()
  home = tempHome('mesh-xds-')
  const up = mesh(home, 'lab', 'up', '--runtime', 'virtual', '--json')
  if (up.status !== 0) throw new Error(up.stdout + up.stderr)
  const kc = load(readFileSync(join(home, 'kubeconfig'), 'utf8')) as any
  server = kc.clusters[0].cluster.server
  token = kc.users[0].user.token
  ca = Buffer.from(kc.clusters[0].cluster['certificate-authority-data'], 'base64').toString('utf8')
  kubectl(home, 'apply', '--server-side', '-f', 'manifests/00-namespace.yaml')
  kubectl(home, 'apply', '--server-side', '-f', 'manifests/hello.yaml', '-f', 'configs/traffic/destination-rule.yaml', '-f', 'configs/traffic/virtual-service-100-0.yaml')
  expect(kubectl(home, 'wait', '--for=condition=Available', 'deploy/hello-v1', '-n', 'mesh-lab', '--timeout=30s').status).toBe(0)
})

afterAll(() => cleanup(home))

describe('config distribution', () => {
  it('requires the token', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      https.get(`${server}/mesh/v1/proxy-status`, {ca}, (res) => resolve(res.statusCode ?? 0)).on('error', reject)
    })
    expect(status).toBe(401)
  })

  it('streams a certificate, then the current config; pushes changes; tracks acks', async () => {
    const client = KubeClient.fromKubeconfig(join(home, 'kubeconfig'))
    const pod = (await client.list('v1', 'Pod', {namespace: 'mesh-lab', labelSelector: 'app=hello,version=v1'}))[0]
    const id = `${pod.metadata.name}.mesh-lab`
    const s = await subscribe(`proxy=${encodeURIComponent(id)}&kind=sidecar&podName=${pod.metadata.name}&namespace=mesh-lab`)
    try {
      await until('first config', () => configs(s).length >= 1)
      expect(s.messages[0].type).toBe('secret')
      const secret = (s.messages[0] as Extract<PushMessage, {type: 'secret'}>).secret
      expect(secret.spiffeId).toBe('spiffe://cluster.local/ns/mesh-lab/sa/hello-v1')
      expect(secret.certChainPem).toContain('BEGIN CERTIFICATE')

      const first = configs(s)[0]
      const snap = first.snapshot
      expect(snap.generation).toBe(first.generation)
      const svc = snap.services.find((x) => x.name === 'hello' && x.namespace === 'mesh-lab')!
      expect(svc.ports).toEqual([{name: 'http', port: 5000, targetPort: 5000, protocol: 'TCP'}])
      expect(svc.clusterIP).toMatch(/^127\.\d+\.255\.\d+$/)
      const ep = snap.endpoints.find((e) => e.podName === pod.metadata.name)!
      expect(ep).toMatchObject({address: pod.status.podIP, serviceAccount: 'hello-v1', sidecar: true, ready: true, ports: [5000]})
      expect(ep.labels.version).toBe('v1')
      expect(snap.virtualServices.map((v) => v.metadata.name)).toContain('hello')
      expect(snap.destinationRules.map((v) => v.metadata.name)).toContain('hello')

      const before = await client.request<any>('/mesh/v1/proxy-status')
      const entry = before.proxies.find((p: any) => p.proxy === id)
      expect(entry).toMatchObject({kind: 'sidecar', sent: first.generation, acked: 0, state: 'STALE'})
      expect(before.synced).toBe(false)

      // ack → SYNCED
      await client.request('/mesh/v1/ack', {method: 'POST', body: {proxy: id, generation: first.generation}})
      const after = await client.request<any>('/mesh/v1/proxy-status')
      expect(after.proxies.find((p: any) => p.proxy === id)).toMatchObject({acked: first.generation, state: 'SYNCED'})

      // a change is pushed with a generation at least the write's resourceVersion
      const [applied] = await client.apply({
        apiVersion: 'networking.istio.io/v1',
        kind: 'DestinationRule',
        metadata: {name: 'extra', namespace: 'mesh-lab'},
        spec: {host: 'hello', trafficPolicy: {loadBalancer: {simple: 'ROUND_ROBIN'}}},
      })
      const rv = Number(applied.object.metadata.resourceVersion)
      const pushed = await until('push', () => configs(s).find((c) => c.generation >= rv))
      expect(pushed.snapshot.destinationRules.map((d) => d.metadata.name)).toContain('extra')

      // the long poll answers only once the proxy acknowledged that generation
      const target = new EmbeddedTarget(home)
      let done = false
      const waiting = target.waitForSync({generation: rv, timeoutMs: 20_000}).then((r) => {
        done = true
        return r
      })
      await new Promise((r) => setTimeout(r, 300))
      expect(done).toBe(false)
      await client.request('/mesh/v1/ack', {method: 'POST', body: {proxy: id, generation: pushed.generation}})
      const r = await waiting
      expect(r.synced).toBe(true)
      expect(r.proxies.find((p) => p.proxy === id)?.acked).toBe(pushed.generation)
    } finally {
      s.close()
    }
  })

  it('a write that changes nothing proxies see does not need a new push to be waited for', async () => {
    const client = KubeClient.fromKubeconfig(join(home, 'kubeconfig'))
    const [cm] = await client.apply({apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: 'unrelated', namespace: 'default'}})
    const target = new EmbeddedTarget(home)
    const r = await target.waitForSync({generation: Number(cm.object.metadata.resourceVersion), timeoutMs: 10_000})
    expect(r.synced).toBe(true)
  })

  it('a rejected config (NACK) shows on the proxy and waiting for it times out with MESH_SYNC_TIMEOUT', async () => {
    const client = KubeClient.fromKubeconfig(join(home, 'kubeconfig'))
    const s = await subscribe('proxy=gw-test.istio-system&kind=gateway')
    try {
      const c = await until('config', () => configs(s)[0])
      await client.request('/mesh/v1/ack', {method: 'POST', body: {proxy: 'gw-test.istio-system', generation: 0, rejected: c.generation, error: 'bad route'}})
      const st = await client.request<any>('/mesh/v1/proxy-status')
      expect(st.proxies.find((p: any) => p.proxy === 'gw-test.istio-system')).toMatchObject({state: 'STALE', rejected: {generation: c.generation, error: 'bad route'}})
      const err = await new EmbeddedTarget(home).waitForSync({generation: c.generation, timeoutMs: 300}).catch((e) => e)
      expect(err.code).toBe('MESH_SYNC_TIMEOUT')
      expect(err.message).toContain('gw-test.istio-system')
    } finally {
      s.close()
    }
    // a proxy that disconnected no longer counts
    await until('gone', async () => !(await client.request<any>('/mesh/v1/proxy-status')).proxies.some((p: any) => p.proxy === 'gw-test.istio-system'))
  })

  it('lab status lists connected proxies', async () => {
    const s = await subscribe('proxy=probe.default&kind=sidecar')
    try {
      await until('config', () => configs(s)[0])
      const st = mesh(home, 'lab', 'status', '--json')
      expect(st.json.result.proxies.items.map((p: any) => p.proxy)).toContain('probe.default')
    } finally {
      s.close()
    }
  })
})
