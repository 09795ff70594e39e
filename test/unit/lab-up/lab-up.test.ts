// The lab up/down/status library without a cluster: apply order, rollout readiness, the target
// interface on RealTarget, target opening, and bad input that must fail before anything changes.
import {existsSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import type {ApplyResult, KubeClient, KubeObject} from '../../../src/cluster/client.js'
import {applyBaseline, baselineObjects, ensureBaseline, labDown, labNamespaces, labUp, rolloutState, summarizeApply, EMBEDDED_ISTIO} from '../../../src/cluster/lab.js'
import {MeshError as MeshErrorClass} from '../../../src/lib/errors.js'
import {openTarget} from '../../../src/cluster/open.js'
import {RealTarget, asProxySyncStatus} from '../../../src/cluster/real-target.js'
import {rememberTarget} from '../../../src/cluster/select.js'
import {EmbeddedTarget} from '../../../src/cluster/target.js'
import {parseProxyStatus} from '../../../src/install/proxy-status.js'
import type {MeshError} from '../../../src/lib/errors.js'

const dir = mkdtempSync(join(tmpdir(), 'mesh-labup-unit-'))
afterAll(() => rmSync(dir, {recursive: true, force: true}))
let n = 0
const freshHome = () => join(dir, `home-${++n}`)

const kubeconfig = join(dir, 'kc.yaml')
writeFileSync(
  kubeconfig,
  `clusters:
- name: c
  cluster: {server: "https://127.0.0.1:9"}
users:
- name: u
  user: {token: t}
contexts:
- name: kind-mesh
  context: {cluster: c, user: u}
- name: prod-eu
  context: {cluster: c, user: u}
current-context: kind-mesh
`,
)

const rejects = async (p: Promise<unknown>): Promise<MeshError> => {
  try {
    await p
  } catch (e) {
    return e as MeshError
  }
  throw new Error('expected a failure')
}

/** Records the order of applies; answers like a server that created everything. */
function recordingClient() {
  const order: string[] = []
  let inFlight = 0
  let maxInFlight = 0
  const client = {
    async apply(obj: KubeObject): Promise<ApplyResult[]> {
      inFlight++
      maxInFlight = Math.max(maxInFlight, inFlight)
      await new Promise((r) => setTimeout(r, 1))
      order.push(obj.kind)
      inFlight--
      return [{apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata.name, namespace: obj.metadata.namespace, action: 'created', object: obj}]
    },
  }
  return {client: client as unknown as KubeClient, order, maxInFlight: () => maxInFlight}
}

describe('applyBaseline', () => {
  it('applies namespaces first, Istio config before the Deployments, and reports in object order', async () => {
    const objects = baselineObjects()
    const rec = recordingClient()
    const results = await applyBaseline({client: rec.client}, {objects})
    expect(results.map((r) => `${r.kind}/${r.name}`)).toEqual(objects.map((o) => `${o.kind}/${o.metadata.name}`))
    const first = (k: string) => rec.order.indexOf(k)
    const last = (k: string) => rec.order.lastIndexOf(k)
    expect(last('Namespace')).toBeLessThan(first('ServiceAccount'))
    expect(last('ServiceAccount')).toBeLessThan(first('Service'))
    expect(last('Service')).toBeLessThan(first('VirtualService'))
    for (const istio of ['Gateway', 'DestinationRule', 'VirtualService', 'PeerAuthentication']) expect(last(istio)).toBeLessThan(first('Deployment'))
    // objects of one kind go out together
    expect(rec.maxInFlight()).toBeGreaterThan(1)
  })

  it('the baseline is the lab manifests plus 100/0, PERMISSIVE and no policies, all labelled managed-by mesh', () => {
    const objects = baselineObjects()
    expect(labNamespaces(objects)).toEqual(['mesh-lab', 'mesh-legacy'])
    expect(objects.filter((o) => o.kind === 'AuthorizationPolicy')).toEqual([])
    const vs = objects.find((o) => o.kind === 'VirtualService' && o.metadata.name === 'hello')!
    expect(vs.spec.http[0].route.map((r: {destination: {subset: string}; weight: number}) => [r.destination.subset, r.weight])).toEqual([
      ['v1', 100],
      ['v2', 0],
    ])
    expect(objects.find((o) => o.kind === 'PeerAuthentication')?.spec.mtls.mode).toBe('PERMISSIVE')
    expect(objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'hello-v1-faulty')?.spec.replicas).toBe(0)
    for (const o of objects) expect(o.metadata.labels?.['app.kubernetes.io/managed-by']).toBe('mesh')
  })

  it('summarizes unchanged applies as nothing changed', () => {
    const r = (action: ApplyResult['action']): ApplyResult => ({apiVersion: 'v1', kind: 'Service', name: 'x', namespace: 'n', action, object: {} as KubeObject})
    expect(summarizeApply([r('unchanged'), r('unchanged')])).toMatchObject({created: 0, configured: 0, unchanged: 2, kept: 0})
    expect(summarizeApply([r('created'), r('configured'), r('unchanged')])).toMatchObject({created: 1, configured: 1, unchanged: 1})
  })
})

describe('ensureBaseline (lab up)', () => {
  const managed = {'app.kubernetes.io/managed-by': 'mesh'}
  const ns = (name: string, labels?: Record<string, string>): KubeObject => ({apiVersion: 'v1', kind: 'Namespace', metadata: {name, ...(labels ? {labels} : {})}})
  const vs = (name: string): KubeObject => ({apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: {name, namespace: 'a', labels: managed}, spec: {}})
  /** a cluster holding `have`; dry runs answer per object name */
  function cluster(have: KubeObject[], dry: Record<string, 'unchanged' | 'configured' | 'conflict'> = {}) {
    const writes: string[] = []
    const client = {
      async get(ref: {name: string}) {
        return have.find((o) => o.metadata.name === ref.name)
      },
      async apply(o: KubeObject, opts: {dryRun?: boolean; force?: boolean}): Promise<ApplyResult[]> {
        if (opts.dryRun) {
          if (dry[o.metadata.name] === 'conflict') throw new MeshErrorClass('MESH_APPLY_CONFLICT', 'conflict: .spec.http owned by "kubectl"', {exit: 65})
          return [{apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, action: dry[o.metadata.name] ?? 'unchanged', object: o}]
        }
        writes.push(`${o.metadata.name}${opts.force ? ' (force)' : ''}`)
        return [{apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, action: have.some((h) => h.metadata.name === o.metadata.name) ? 'configured' : 'created', object: o}]
      },
    }
    return {client: client as unknown as KubeClient, writes}
  }

  it('creates what is missing and leaves what mesh manages as it is, saying whether it still matches the baseline', async () => {
    const objects = [ns('a', managed), vs('same'), vs('shifted'), vs('contested'), vs('missing')]
    const c = cluster([ns('a', managed), vs('same'), vs('shifted'), vs('contested')], {shifted: 'configured', contested: 'conflict'})
    const items = await ensureBaseline({client: c.client}, {objects})
    expect(items.map((i) => [i.name, i.action])).toEqual([
      ['a', 'unchanged'],
      ['same', 'unchanged'],
      ['shifted', 'kept'],
      ['contested', 'kept'],
      ['missing', 'created'],
    ])
    expect(items.find((i) => i.name === 'contested')?.reason).toContain('owned by "kubectl"')
    expect(c.writes).toEqual(['missing'])
    expect(summarizeApply(items)).toMatchObject({created: 1, configured: 0, unchanged: 2, kept: 2})
  })

  it('refuses objects mesh does not manage before writing anything, unless forced (adopted)', async () => {
    const objects = [ns('a'), vs('missing')]
    const c = cluster([ns('a')])
    const e = await rejects(ensureBaseline({client: c.client}, {objects}))
    expect(e).toMatchObject({code: 'MESH_NOT_MANAGED', exit: 65})
    expect(e.message).toContain('Namespace a')
    expect(c.writes).toEqual([])
    const forced = await ensureBaseline({client: c.client}, {objects, force: true})
    expect(forced.map((i) => i.action)).toEqual(['adopted', 'created'])
    expect(c.writes).toEqual(['a (force)', 'missing'])
  })
})

describe('rolloutState', () => {
  const dep = (name: string, replicas: number, ready: number, available: boolean): KubeObject => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {name, namespace: 'mesh-lab', generation: 2},
    spec: {replicas},
    status: {observedGeneration: 2, readyReplicas: ready, updatedReplicas: ready, conditions: [{type: 'Available', status: available ? 'True' : 'False'}]},
  })
  const pod = (name: string, ready: boolean, extra: Partial<KubeObject['metadata']> = {}, waiting?: string): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {name, namespace: 'mesh-lab', ...extra},
    status: {phase: ready ? 'Running' : 'Pending', conditions: [{type: 'Ready', status: ready ? 'True' : 'False'}], ...(waiting ? {containerStatuses: [{state: {waiting: {reason: waiting}}}]} : {})},
  })
  const client = (deps: KubeObject[], pods: KubeObject[]) =>
    ({list: async (_v: string, kind: string) => (kind === 'Deployment' ? deps : pods)}) as unknown as KubeClient

  it('is ready when every deployment has its replicas and every live pod is Ready (a 0-replica deployment counts)', async () => {
    const s = await rolloutState(client([dep('hello-v1', 1, 1, true), dep('hello-v1-faulty', 0, 0, false)], [pod('a', true), pod('old', false, {deletionTimestamp: '2026-01-01T00:00:00Z'})]), ['mesh-lab'])
    expect(s.ready).toBe(true)
    expect(s.pods).toEqual({total: 1, ready: 1})
  })

  it('names what is not ready, with the waiting reason', async () => {
    const s = await rolloutState(client([dep('hello-v2', 1, 0, false)], [pod('hello-v2-x', false, {}, 'ImageNotEmulated')]), ['mesh-lab'])
    expect(s.ready).toBe(false)
    expect(s.pending).toEqual(['deployment mesh-lab/hello-v2: 0/1 ready', 'pod mesh-lab/hello-v2-x: Pending (ImageNotEmulated)'])
  })

  it('a deployment whose new generation is not observed yet is not ready', async () => {
    const d = dep('hello-v1', 1, 1, true)
    d.status.observedGeneration = 1
    expect((await rolloutState(client([d], [pod('a', true)]), ['mesh-lab'])).ready).toBe(false)
  })
})

describe('bad input changes nothing', () => {
  it('an unknown --profile is MESH_ISTIO_PROFILE_INVALID (65) and creates no mesh home', async () => {
    const home = freshHome()
    const e = await rejects(labUp({home, profile: 'bogus', env: {}}))
    expect(e).toMatchObject({code: 'MESH_ISTIO_PROFILE_INVALID', exit: 65})
    expect(existsSync(home)).toBe(false)
  })

  it('a bad --istio-version is MESH_ISTIO_VERSION_INVALID (65)', async () => {
    const e = await rejects(labUp({home: freshHome(), istioVersion: '1.28; rm -rf /', env: {}}))
    expect(e).toMatchObject({code: 'MESH_ISTIO_VERSION_INVALID', exit: 65})
  })

  it('--context does-not-exist is MESH_CONTEXT_NOT_FOUND (65) for up, down and status', async () => {
    const home = freshHome()
    for (const p of [labUp({home, context: 'does-not-exist', env: {KUBECONFIG: kubeconfig}}), labDown({home, context: 'does-not-exist', env: {KUBECONFIG: kubeconfig}})]) {
      expect(await rejects(p)).toMatchObject({code: 'MESH_CONTEXT_NOT_FOUND', exit: 65})
    }
    expect(existsSync(home)).toBe(false)
  })

  it('a context that is not a local lab cluster needs --yes (MESH_UNSAFE_CONTEXT, 65) before any request', async () => {
    const home = freshHome()
    const up = await rejects(labUp({home, context: 'prod-eu', env: {KUBECONFIG: kubeconfig}}))
    expect(up).toMatchObject({code: 'MESH_UNSAFE_CONTEXT', exit: 65, field: 'context'})
    expect(up.suggestion).toContain('--yes')
    const down = await rejects(labDown({home, context: 'prod-eu', env: {KUBECONFIG: kubeconfig}}))
    expect(down).toMatchObject({code: 'MESH_UNSAFE_CONTEXT', exit: 65})
    expect(existsSync(home)).toBe(false)
  })

  it('an embedded lab that is down: status is MESH_LAB_DOWN (69) "Run mesh lab up."', async () => {
    const {labStatus} = await import('../../../src/cluster/lab.js')
    const e = await rejects(labStatus({home: freshHome(), env: {}}))
    expect(e).toMatchObject({code: 'MESH_LAB_DOWN', exit: 69, suggestion: 'Run mesh lab up.'})
  })
})

describe('openTarget', () => {
  it('defaults to the embedded cluster of the home', async () => {
    const home = freshHome()
    const t = await openTarget({home, env: {}})
    expect(t).toBeInstanceOf(EmbeddedTarget)
    expect(t).toMatchObject({kind: 'embedded', context: 'mesh-local', kubeconfigPath: join(home, 'kubeconfig')})
    expect(t.descriptor.source).toBe('default')
    await t.close()
  })

  it('--context gives a RealTarget that implements the Target interface', async () => {
    const t = await openTarget({home: freshHome(), context: 'kind-mesh', kubeconfig})
    expect(t).toBeInstanceOf(RealTarget)
    expect(t).toMatchObject({kind: 'real', context: 'kind-mesh', kubeconfigPath: kubeconfig})
    expect(t.descriptor.source).toBe('flag')
    expect(t.client.context).toBe('kind-mesh')
    expect(t.client.server).toBe('https://127.0.0.1:9')
    for (const m of ['ingressUrl', 'waitForSync', 'proxyStatus', 'install', 'uninstall'] as const) expect(typeof t[m]).toBe('function')
    await t.close()
  })

  it('uses the remembered target when no flag is given', async () => {
    const home = freshHome()
    rememberTarget(home, {kind: 'real', context: 'kind-mesh', kubeconfigPath: kubeconfig})
    const t = await openTarget({home, env: {}})
    expect(t).toMatchObject({kind: 'real', context: 'kind-mesh'})
    expect(t.descriptor.source).toBe('remembered')
  })

  it('an unknown context is MESH_CONTEXT_NOT_FOUND (65)', async () => {
    expect(await rejects(openTarget({home: freshHome(), context: 'nope', kubeconfig}))).toMatchObject({code: 'MESH_CONTEXT_NOT_FOUND', exit: 65})
  })
})

describe('RealTarget as a Target', () => {
  it('maps istioctl proxy-status rows to the SYNCED/STALE/NOT_SENT view and keeps the row', () => {
    const rows = parseProxyStatus(
      [
        'NAME                                                  CLUSTER        CDS                LDS                EDS                RDS                ECDS        ISTIOD                     VERSION',
        'hello-v1-6d8c8b5d9f-4x2kq.mesh-lab                    Kubernetes     SYNCED (2m1s)      SYNCED (2m1s)      STALE (1s)         SYNCED (2m1s)      IGNORED     istiod-7b69c7f8d-9wq7m     1.28.1',
        'istio-ingressgateway-5c8d9f6b7-ttw2c.istio-system     Kubernetes     SYNCED (2m5s)      SYNCED (2m5s)      SYNCED (2m5s)      NOT SENT           IGNORED     istiod-7b69c7f8d-9wq7m     1.28.1',
      ].join('\n'),
    )
    const [sidecar, gateway] = rows.map(asProxySyncStatus)
    expect(sidecar).toMatchObject({proxy: 'hello-v1-6d8c8b5d9f-4x2kq.mesh-lab', kind: 'sidecar', state: 'STALE', namespace: 'mesh-lab'})
    expect(gateway).toMatchObject({proxy: 'istio-ingressgateway-5c8d9f6b7-ttw2c.istio-system', kind: 'gateway', state: 'SYNCED'})
  })

  it('the embedded target reports its Istio as emulated semantics', () => {
    expect(EMBEDDED_ISTIO).toBe('embedded (Istio 1.28 semantics)')
  })
})
