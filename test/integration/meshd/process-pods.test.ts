// meshd with real pod processes (the process runtime) and the ingress gateway process:
// the lab baseline comes up through KubeClient, and a pod killed with kill -9 is replaced.
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {KubeClient, type KubeObject} from '../../../src/cluster/client.js'
import {applyBaseline} from '../../../src/cluster/lab.js'
import {EmbeddedTarget} from '../../../src/cluster/target.js'
import {alive, cleanup, ensureBuilt, mesh, tempHome, until} from './helpers.js'

let home: string
let client: KubeClient
const ns = 'mesh-lab'
const ready = (p: KubeObject) => Boolean(p.status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True'))

beforeAll(() => {
  ensureBuilt()
  home = tempHome('mesh-proc-')
  const up = mesh(home, 'lab', 'up', '--runtime', 'process', '--json')
  if (up.status !== 0) throw new Error(up.stdout + up.stderr)
  client = KubeClient.fromKubeconfig(join(home, 'kubeconfig'))
})

afterAll(() => cleanup(home))

describe('meshd with process pods', () => {
  it('applies the lab baseline as field manager mesh, idempotently', async () => {
    const target = new EmbeddedTarget(home)
    const first = await applyBaseline(target)
    // lab up already deployed the baseline, so this first apply may find it in place
    const hello = first.find((r) => r.kind === 'Deployment' && r.name === 'hello-v1')
    expect(['created', 'unchanged']).toContain(hello?.action)
    expect((hello?.object.metadata.managedFields as Array<{manager: string}>).map((m) => m.manager)).toContain('mesh')
    const second = await applyBaseline(target)
    expect(second.filter((r) => r.action !== 'unchanged')).toEqual([])
    for (const d of ['hello-v1', 'hello-v2']) {
      await client.waitFor({apiVersion: 'apps/v1', kind: 'Deployment', name: d, namespace: ns}, {condition: 'Available'}, {timeoutMs: 30_000})
    }
  })

  it('runs each pod as a process on its own loopback address', async () => {
    const pods = await client.list('v1', 'Pod', {namespace: ns, labelSelector: 'app=hello'})
    expect(pods.filter(ready).length).toBe(2)
    for (const p of pods) {
      const pid = Number(/^mesh:\/\/(\d+)$/.exec(p.status.containerStatuses[0].containerID)?.[1])
      expect(alive(pid)).toBe(true)
      expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toContain(p.metadata.name)
      expect(p.metadata.annotations?.['sidecar.istio.io/status']).toBeDefined()
    }
    expect(new Set(pods.map((p) => p.status.podIP)).size).toBe(2)
  })

  it('replaces a pod whose process is killed with kill -9', async () => {
    const [victim] = await client.list('v1', 'Pod', {namespace: ns, labelSelector: 'app=hello,version=v1'})
    const pid = Number(/^mesh:\/\/(\d+)$/.exec(victim.status.containerStatuses[0].containerID)?.[1])
    process.kill(pid, 'SIGKILL')
    const replacement = await until(
      'a new ready hello-v1 pod',
      async () => (await client.list('v1', 'Pod', {namespace: ns, labelSelector: 'app=hello,version=v1'})).find((p) => p.metadata.name !== victim.metadata.name && ready(p)),
      30_000,
      100,
    )
    expect(replacement.metadata.name).toMatch(/^hello-v1-[a-z0-9]{10}-[a-z0-9]{5}$/)
    // as in Istio, Ready means the sidecar already has its configuration (its /healthz/ready is LIVE)
    const sidecarReady = await fetch(`http://${replacement.status.podIP}:15000/healthz/ready`)
    expect(sidecarReady.status).toBe(200)
    expect(((await (await fetch(`http://${replacement.status.podIP}:15000/config_dump`)).json()) as {generation: number}).generation).toBeGreaterThan(0)
    const podLog = readFileSync(join(home, 'local', 'pods', `${ns}_${replacement.metadata.name}.log`), 'utf8')
    expect(podLog).toContain('"msg":"sidecar configured"')
    await until('the killed pod is gone', async () => !(await client.get({apiVersion: 'v1', kind: 'Pod', name: victim.metadata.name, namespace: ns})))
    const ep = await until('endpoints with the new pod', async () => {
      const e = await client.get({apiVersion: 'v1', kind: 'Endpoints', name: 'hello', namespace: ns})
      const ips = (e?.subsets ?? []).flatMap((s: any) => (s.addresses ?? []).map((a: any) => a.ip))
      return ips.includes(replacement.status.podIP) && !ips.includes(victim.status.podIP) && e
    })
    expect(ep).toBeTruthy()
    const events = await client.list('v1', 'Event', {namespace: ns})
    expect(events.some((e: any) => e.reason === 'ProcessExited' && e.involvedObject.name === victim.metadata.name)).toBe(true)
  })

  it('starts the ingress gateway on the lab ingress port and reports it', async () => {
    const st = await until('gateway listening', () => {
      const r = mesh(home, 'lab', 'status', '--json')
      return r.json?.result?.ingressListening === true && r.json.result
    })
    const state = JSON.parse(readFileSync(join(home, 'local/meshd.json'), 'utf8'))
    expect(st.ingress).toBe(`http://127.0.0.1:${state.ingressPort}`)
    expect(state.gateway.port).toBe(state.ingressPort)
    expect(alive(state.gateway.pid)).toBe(true)
  })

  it('lab down stops meshd, its pods and the gateway', async () => {
    const pods = await client.list('v1', 'Pod', {namespace: ns})
    const pids = pods.map((p) => Number(/^mesh:\/\/(\d+)$/.exec(p.status.containerStatuses[0].containerID ?? '')?.[1])).filter(Boolean)
    const gw = JSON.parse(readFileSync(join(home, 'local/meshd.json'), 'utf8')).gateway?.pid
    expect(mesh(home, 'lab', 'down').status).toBe(0)
    for (const pid of [...pids, gw].filter(Boolean)) await until(`process ${pid} gone`, () => !alive(pid), 10_000)
  })
})
