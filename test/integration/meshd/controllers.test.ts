// The controllers against the real store (in a temp dir) with the virtual pod runtime.
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'
import {FileStore} from '../../../src/local/api/store.js'
import type {KubeObject} from '../../../src/local/api/types.js'
import {ControllerManager} from '../../../src/local/controllers/manager.js'
import {VirtualPodRuntime} from '../../../src/local/controllers/virtual-runtime.js'

let dir: string
let store: FileStore
let runtime: VirtualPodRuntime
let mgr: ControllerManager

const T = () => ({
  ns: store.typeFor('Namespace', '')!,
  pod: store.typeFor('Pod', '')!,
  svc: store.typeFor('Service', '')!,
  ep: store.typeFor('Endpoints', '')!,
  deploy: store.typeFor('Deployment', 'apps')!,
  sa: store.typeFor('ServiceAccount', '')!,
})

const deployment = (name: string, replicas: number, image = 'docker.io/istio/examples-helloworld-v1:1.0', extra: Record<string, string> = {}): KubeObject => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: {name, namespace: 'lab'},
  spec: {
    replicas,
    selector: {matchLabels: {app: 'hello', version: name}},
    template: {
      metadata: {labels: {app: 'hello', version: name}},
      spec: {containers: [{name: 'hello', image, ports: [{containerPort: 5000, name: 'http'}], env: [{name: 'X', value: 'y', ...extra}]}]},
    },
  },
})

async function until<T>(what: string, fn: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = fn()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

const pods = (label?: string) => store.list(T().pod, 'lab', label ? {labelSelector: label} : {}).items
const ready = (p: KubeObject) => (p.status as any)?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True')

function start(opts: {refuse?: (p: any) => any} = {}) {
  runtime = new VirtualPodRuntime({refuse: opts.refuse})
  mgr = new ControllerManager({store, runtime, podNetwork: '127.77.0.0/16', resyncMs: 60_000})
  mgr.start()
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mesh-ctrl-'))
  store = await FileStore.open({dir, fsync: false})
  await store.create(T().ns, {apiVersion: 'v1', kind: 'Namespace', metadata: {name: 'lab', labels: {'istio-injection': 'enabled'}}})
})

afterEach(async () => {
  await mgr?.stop()
  await store.close()
  rmSync(dir, {recursive: true, force: true})
})

describe('deployment controller', () => {
  it('creates named pods, scales up and down, and reports Available', async () => {
    start()
    await store.create(T().deploy, deployment('hello-v1', 2))
    await until('2 ready pods', () => pods().filter(ready).length === 2)
    for (const p of pods()) {
      expect(p.metadata.name).toMatch(/^hello-v1-[a-z0-9]{10}-[a-z0-9]{5}$/)
      expect(p.metadata.labels?.['pod-template-hash']).toBe(p.metadata.name.split('-')[2])
      expect((p.metadata.ownerReferences as any[])[0]).toMatchObject({kind: 'Deployment', name: 'hello-v1', controller: true})
      expect((p.status as any).podIP).toMatch(/^127\.77\.\d+\.\d+$/)
    }
    const d = await until('deployment status', () => {
      const x = store.get(T().deploy, 'lab', 'hello-v1')!
      return (x.status as any)?.readyReplicas === 2 && x
    })
    expect((d.status as any).conditions.find((c: any) => c.type === 'Available').status).toBe('True')
    expect((d.status as any).observedGeneration).toBe(d.metadata.generation)

    const scaled = store.get(T().deploy, 'lab', 'hello-v1')!
    scaled.spec.replicas = 3
    await store.update(T().deploy, scaled)
    await until('3 ready pods', () => pods().filter(ready).length === 3)
    const before = pods().map((p) => p.metadata.name)
    const down = store.get(T().deploy, 'lab', 'hello-v1')!
    down.spec.replicas = 1
    await store.update(T().deploy, down)
    await until('1 pod', () => pods().length === 1)
    expect(before).toContain(pods()[0].metadata.name)
    const ips = new Set(pods().map((p) => (p.status as any).podIP))
    expect(ips.size).toBe(1)
    // the pod object goes first; its process is stopped right after (no graceful-deletion phase here)
    await until('1 running process', () => runtime.running().length === 1)
  })

  it('rolls pods to a new template and never drops below the available minimum', async () => {
    start()
    await store.create(T().deploy, deployment('hello-v1', 4))
    await until('4 ready', () => pods().filter(ready).length === 4)
    const oldHash = pods()[0].metadata.labels!['pod-template-hash']
    let minReady = 4
    const unwatch = store.watch(T().pod, undefined, () => {
      minReady = Math.min(minReady, pods().filter(ready).length)
    })
    const d = store.get(T().deploy, 'lab', 'hello-v1')!
    d.spec.template.spec.containers[0].image = 'docker.io/istio/examples-helloworld-v2:1.0'
    await store.update(T().deploy, d)
    await until('rollout done', () => {
      const ps = pods()
      return ps.length === 4 && ps.every((p) => p.metadata.labels!['pod-template-hash'] !== oldHash) && ps.every(ready)
    })
    unwatch()
    // maxUnavailable 25% of 4 = 1
    expect(minReady).toBeGreaterThanOrEqual(3)
    const st = await until('status', () => {
      const s = store.get(T().deploy, 'lab', 'hello-v1')!.status as any
      return s?.updatedReplicas === 4 && s.replicas === 4 && s.readyReplicas === 4 && s
    })
    expect(st.conditions.find((c: any) => c.type === 'Progressing').reason).toBe('NewReplicaSetAvailable')
  })

  it('replaces a pod whose process died with a new pod', async () => {
    start()
    await store.create(T().deploy, deployment('hello-v1', 1))
    const first = await until('ready pod', () => pods().find(ready))
    runtime.exit(first.metadata.uid!, null, 'SIGKILL')
    const second = await until('replacement', () => pods().find((p) => p.metadata.name !== first.metadata.name && ready(p)))
    expect(second.metadata.name).toMatch(/^hello-v1-/)
    await until('old one gone', () => !store.get(T().pod, 'lab', first.metadata.name))
  })

  it('restarts a bare pod in place with a restart count', async () => {
    start()
    await store.create(T().pod, {apiVersion: 'v1', kind: 'Pod', metadata: {name: 'solo', namespace: 'lab'}, spec: {containers: [{name: 'c', image: 'x:1'}]}})
    const p = await until('running', () => {
      const x = store.get(T().pod, 'lab', 'solo')
      return x && ready(x) && x
    })
    runtime.exit(p.metadata.uid!, 1, null)
    const again = await until('restarted', () => {
      const x = store.get(T().pod, 'lab', 'solo')!
      return (x.status as any).containerStatuses[0].restartCount === 1 && ready(x) && x
    })
    expect(again.metadata.uid).toBe(p.metadata.uid)
    expect((again.status as any).containerStatuses[0].lastState.terminated.exitCode).toBe(1)
  })

  it('keeps a pod Pending with the runtime reason when it cannot run the image', async () => {
    start({refuse: (p) => (p.image.startsWith('nginx') ? {reason: 'ImageNotEmulated', message: 'nginx is not emulated'} : undefined)})
    await store.create(T().deploy, deployment('web', 1, 'nginx:1.27'))
    const p = await until('waiting pod', () => pods().find((x) => (x.status as any)?.containerStatuses?.[0]?.state?.waiting?.reason === 'ImageNotEmulated'))
    expect((p.status as any).phase).toBe('Pending')
    expect((p.status as any).conditions.find((c: any) => c.type === 'PodScheduled').status).toBe('True')
    expect((p.status as any).containerStatuses[0].state.waiting.message).toContain('nginx')
  })
})

describe('pod admission', () => {
  it('injects the sidecar in a labelled namespace unless the pod opts out', async () => {
    start()
    await store.create(T().deploy, deployment('hello-v1', 1))
    const dep = deployment('plain', 1)
    dep.spec.template.metadata.annotations = {'sidecar.istio.io/inject': 'false'}
    await store.create(T().deploy, dep)
    const injected = await until('injected', () => pods('version=hello-v1').find(ready))
    expect(injected.metadata.annotations?.['sidecar.istio.io/status']).toContain('istio-proxy')
    expect(injected.spec.containers.map((c: any) => c.name)).toEqual(['hello', 'istio-proxy'])
    expect(runtime.running().find((r) => r.name === injected.metadata.name)?.sidecar).toBe(true)
    const plain = await until('plain', () => pods('version=plain').find(ready))
    expect(plain.metadata.annotations?.['sidecar.istio.io/status']).toBeUndefined()
    expect(runtime.running().find((r) => r.name === plain.metadata.name)?.sidecar).toBe(false)
  })
})

describe('endpoints controller', () => {
  it('allocates a cluster IP and lists ready and not-ready pod IPs with named target ports', async () => {
    start()
    await store.create(T().deploy, deployment('hello-v1', 2))
    await store.create(T().svc, {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {name: 'hello', namespace: 'lab', labels: {app: 'hello'}},
      spec: {selector: {app: 'hello'}, ports: [{name: 'http', port: 80, targetPort: 'http'}]},
    })
    const ep = await until('endpoints', () => {
      const e = store.get(T().ep, 'lab', 'hello')
      return (e?.subsets as any)?.[0]?.addresses?.length === 2 && e
    })
    const ips = pods().map((p) => (p.status as any).podIP).sort()
    expect((ep.subsets as any)[0].addresses.map((a: any) => a.ip).sort()).toEqual(ips)
    expect((ep.subsets as any)[0].ports).toEqual([{name: 'http', port: 5000, protocol: 'TCP'}])
    expect(store.get(T().svc, 'lab', 'hello')!.spec.clusterIP).toMatch(/^127\.77\.255\.\d+$/)

    const one = pods()[0]
    runtime.setReady(one.metadata.uid!, false)
    const ep2 = await until('not ready', () => {
      const e = store.get(T().ep, 'lab', 'hello')
      return (e?.subsets as any)?.[0]?.notReadyAddresses?.length === 1 && e
    })
    expect((ep2.subsets as any)[0].notReadyAddresses[0].ip).toBe((one.status as any).podIP)
    expect((ep2.subsets as any)[0].addresses.length).toBe(1)
  })

  it('namespace deletion stops the pods and gives the namespace a default service account', async () => {
    start()
    await until('default SA', () => store.get(T().sa, 'lab', 'default'))
    await store.create(T().deploy, deployment('hello-v1', 2))
    await until('2 running', () => runtime.running().length === 2)
    await store.delete(T().ns, undefined, 'lab')
    await until('processes stopped', () => runtime.running().length === 0)
  })
})
