// RealTarget against a test double of the API server, with stand-ins for istioctl and
// `kubectl port-forward` (test/fixtures/istioctl/). The istioctl/kubectl argv they record is
// what a real cluster would have seen.
import {existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {afterAll, afterEach, beforeEach, describe, expect, it} from 'vitest'
import {MANAGED_BY_LABEL} from '../../../src/cluster/guard.js'
import {RealTarget} from '../../../src/cluster/real-target.js'
import type {MeshError} from '../../../src/lib/errors.js'
import {proxyAdmin} from '../../../src/verify/admin.js'
import {startFakeApiServer, type FakeApiServer} from './fake-apiserver.js'

const ISTIOCTL = resolve('test/fixtures/istioctl/istioctl')
const KUBECTL = resolve('test/fixtures/istioctl/kubectl-stand-in')
const dir = mkdtempSync(join(tmpdir(), 'mesh-real-'))
afterAll(() => rmSync(dir, {recursive: true, force: true}))

const CM = '/api/v1/namespaces/istio-system/configmaps/mesh-state'
const CRD = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/virtualservices.networking.istio.io'
const NS = '/api/v1/namespaces/istio-system'
const ISTIOD = '/apis/apps/v1/namespaces/istio-system/deployments/istiod'
const SVC = '/api/v1/namespaces/istio-system/services/istio-ingressgateway'

let api: FakeApiServer
let n = 0
let ctx: {kubeconfig: string; env: NodeJS.ProcessEnv; istioctlLog: string; kubectlLog: string; target: (context?: string) => RealTarget}
const targets: RealTarget[] = []

beforeEach(async () => {
  api = await startFakeApiServer()
  n++
  const kubeconfig = join(dir, `kc-${n}.yaml`)
  api.writeKubeconfig(kubeconfig, 'kind-mesh')
  const istioctlLog = join(dir, `istioctl-${n}.jsonl`)
  const kubectlLog = join(dir, `kubectl-${n}.jsonl`)
  const env: NodeJS.ProcessEnv = {
    PATH: dirname(process.execPath),
    MESH_HOME: join(dir, `home-${n}`),
    MESH_ISTIOCTL: ISTIOCTL,
    FAKE_ISTIOCTL_LOG: istioctlLog,
    FAKE_KUBECTL_LOG: kubectlLog,
  }
  ctx = {
    kubeconfig,
    env,
    istioctlLog,
    kubectlLog,
    target: (context = 'kind-mesh') => {
      const t = new RealTarget({context, kubeconfigPath: kubeconfig, env, kubectl: KUBECTL})
      targets.push(t)
      return t
    },
  }
})

afterEach(async () => {
  await Promise.all(targets.splice(0).map((t) => t.close()))
  await api.close()
})

// only complete lines: the fake istioctl may be writing its line while the test polls the log
const calls = (file: string) =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .slice(0, -1)
        .map((l) => (JSON.parse(l) as {argv: string[]}).argv)
    : []
const fail = async (p: Promise<unknown>): Promise<MeshError> => {
  try {
    await p
  } catch (e) {
    return e as MeshError
  }
  throw new Error('expected a failure')
}
const istioInstalled = (version = '1.28.1') => {
  api.put(CRD, {apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: {name: 'virtualservices.networking.istio.io'}})
  api.put(NS, {apiVersion: 'v1', kind: 'Namespace', metadata: {name: 'istio-system'}})
  api.put(ISTIOD, {apiVersion: 'apps/v1', kind: 'Deployment', metadata: {name: 'istiod', namespace: 'istio-system'}, spec: {template: {spec: {containers: [{name: 'discovery', image: `docker.io/istio/pilot:${version}`}]}}}})
}

describe('preflight', () => {
  it('a reachable cluster without Istio and without the review API: ok, permissions unknown', async () => {
    const r = await ctx.target().preflight()
    expect(r.reachable).toBe(true)
    expect(r.serverVersion).toBe('v1.32.2')
    expect(r.server).toBe(api.url)
    expect(r.permissions).toEqual({'create namespaces': 'unknown', 'create deployments': 'unknown', 'create virtualservices': 'unknown'})
    expect(r.checks.find((c) => c.id === 'permissions')?.status).toBe('unknown')
    expect(r.istio).toMatchObject({present: false, namespace: false})
    expect(r.ok).toBe(true)
  })

  it('an old server warns; a denied permission fails', async () => {
    api.gitVersion = 'v1.27.3'
    api.access = {namespaces: true, deployments: false, virtualservices: true}
    const r = await ctx.target().preflight()
    expect(r.checks.find((c) => c.id === 'api')).toMatchObject({status: 'warn'})
    expect(r.checks.find((c) => c.id === 'api')?.message).toContain('older than 1.28')
    expect(r.permissions['create deployments']).toBe('denied')
    expect(r.checks.find((c) => c.id === 'permissions')).toMatchObject({status: 'fail', message: 'not allowed to create deployments'})
    expect(r.ok).toBe(false)
  })

  it('detects an existing Istio and its version', async () => {
    istioInstalled('1.27.1')
    const r = await ctx.target().preflight()
    expect(r.istio).toMatchObject({present: true, namespace: true, version: '1.27.1'})
    expect(r.istio?.installedByMesh).toBeUndefined()
    expect(r.checks.find((c) => c.id === 'istio')?.message).toContain('not by mesh')
  })

  it('an unreachable API server fails the api check', async () => {
    await api.close()
    const r = await ctx.target().preflight()
    api = await startFakeApiServer() // for afterEach
    expect(r.reachable).toBe(false)
    expect(r.ok).toBe(false)
    expect(r.checks[0]).toMatchObject({id: 'api', status: 'fail'})
    expect(r.checks[0].message).toContain('"kind-mesh"')
  })

  it('an unknown context is MESH_CONTEXT_NOT_FOUND before any request', async () => {
    const e = await fail(ctx.target('does-not-exist').preflight())
    expect(e.code).toBe('MESH_CONTEXT_NOT_FOUND')
    expect(api.requests).toEqual([])
  })
})

describe('Istio install and uninstall', () => {
  it('installs with istioctl, records that mesh did, and is idempotent', async () => {
    const t = ctx.target()
    const first = await t.ensureIstio({yes: false})
    expect(first).toMatchObject({action: 'installed', changed: true, version: '1.28.1', warnings: []})
    expect(calls(ctx.istioctlLog)).toEqual([
      ['version', '--remote=false'],
      ['install', '--set', 'profile=demo', '-y', '--context', 'kind-mesh', '--kubeconfig', ctx.kubeconfig],
    ])
    const cm = api.objects.get(CM) as {metadata: {labels: Record<string, string>}; data: Record<string, string>}
    expect(cm.metadata.labels[MANAGED_BY_LABEL]).toBe('mesh')
    expect(cm.data).toMatchObject({installedBy: 'mesh', istioVersion: '1.28.1', profile: 'demo'})

    istioInstalled('1.28.1') // what istioctl would have created
    const again = await ctx.target().ensureIstio({yes: false})
    expect(again).toMatchObject({action: 'unchanged', changed: false})
    expect(calls(ctx.istioctlLog)).toHaveLength(2)
    const pf = await ctx.target().preflight()
    expect(pf.istio?.installedByMesh).toMatchObject({istioVersion: '1.28.1', profile: 'demo'})
  })

  it('refuses a context that is not a local lab without --yes, and runs nothing', async () => {
    const gke = join(dir, `gke-${n}.yaml`)
    api.writeKubeconfig(gke, 'gke_proj_zone_prod')
    const t = new RealTarget({context: 'gke_proj_zone_prod', kubeconfigPath: gke, env: ctx.env})
    const e = await fail(t.ensureIstio({yes: false}))
    expect(e.code).toBe('MESH_UNSAFE_CONTEXT')
    expect(e.exit).toBe(65)
    expect(calls(ctx.istioctlLog)).toEqual([])
    expect(api.requests).toEqual([])
    expect((await t.ensureIstio({yes: true})).action).toBe('installed')
    expect(calls(ctx.istioctlLog).at(-1)).toContain('gke_proj_zone_prod')
  })

  it("uses someone else's Istio as is and never uninstalls it", async () => {
    istioInstalled('1.27.1')
    const t = ctx.target()
    const r = await t.ensureIstio({yes: false})
    expect(r).toMatchObject({action: 'existing', changed: false, version: '1.27.1'})
    expect(r.warnings.map((w) => w.code)).toEqual(['MESH_ISTIO_EXISTING'])
    const u = await t.uninstallIstio({yes: false})
    expect(u.uninstalled).toBe(false)
    expect(u.warnings.map((w) => w.code)).toEqual(['MESH_ISTIO_NOT_OURS'])
    expect(calls(ctx.istioctlLog)).toEqual([])
  })

  it('uninstalls the Istio mesh installed and forgets the record', async () => {
    const t = ctx.target()
    await t.ensureIstio({yes: false, profile: 'default'})
    const u = await t.uninstallIstio({yes: false})
    expect(u.uninstalled).toBe(true)
    expect(u.record).toMatchObject({profile: 'default'})
    expect(calls(ctx.istioctlLog).at(-1)).toEqual(['uninstall', '--purge', '-y', '--context', 'kind-mesh', '--kubeconfig', ctx.kubeconfig])
    expect(api.objects.has(CM)).toBe(false)
  })

  it('does not overwrite a mesh-state ConfigMap someone else owns', async () => {
    api.put(CM, {apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: 'mesh-state', namespace: 'istio-system', labels: {team: 'platform'}}, data: {x: '1'}})
    const e = await fail(ctx.target().ensureIstio({yes: false}))
    expect(e.code).toBe('MESH_NOT_MANAGED')
    expect(e.message).toContain('ConfigMap istio-system/mesh-state')
    expect((api.objects.get(CM) as {data: Record<string, string>}).data).toEqual({x: '1'})
  })
})

describe('ingress', () => {
  const svc = (type: string, status?: unknown) =>
    api.put(SVC, {apiVersion: 'v1', kind: 'Service', metadata: {name: 'istio-ingressgateway', namespace: 'istio-system'}, spec: {type, ports: [{name: 'status-port', port: 15021}, {name: 'http2', port: 80}]}, status: status ?? {}})

  it('uses the LoadBalancer address when there is one', async () => {
    svc('LoadBalancer', {loadBalancer: {ingress: [{ip: '172.18.255.200'}]}})
    const h = await ctx.target().ingress()
    expect(h).toMatchObject({url: 'http://172.18.255.200', via: 'loadbalancer'})
    expect(calls(ctx.kubectlLog)).toEqual([])
  })

  it('port-forwards when no LoadBalancer address appears, and stops it on close', async () => {
    svc('LoadBalancer') // pending, as on kind
    const t = ctx.target()
    const h = await t.ingress({lbWaitMs: 600})
    expect(h.via).toBe('port-forward')
    expect(h.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(await (await fetch(`${h.url}/hello`)).text()).toBe('stand-in ingress /hello')
    expect(calls(ctx.kubectlLog)).toEqual([
      ['port-forward', '-n', 'istio-system', 'svc/istio-ingressgateway', ':80', '--address', '127.0.0.1', '--context', 'kind-mesh', '--kubeconfig', ctx.kubeconfig],
    ])
    await h.close()
    await expect(fetch(`${h.url}/hello`)).rejects.toThrow()
  })

  it('a port-forward that fails is MESH_INGRESS_UNAVAILABLE (69) with kubectl’s error', async () => {
    svc('ClusterIP')
    const t = new RealTarget({context: 'kind-mesh', kubeconfigPath: ctx.kubeconfig, env: {...ctx.env, FAKE_KUBECTL_FAIL: '1'}, kubectl: KUBECTL})
    const e = await fail(t.ingress())
    expect(e.code).toBe('MESH_INGRESS_UNAVAILABLE')
    expect(e.exit).toBe(69)
    expect(e.message).toContain('pod is not running')
  })

  it('no ingress gateway service is MESH_INGRESS_NOT_FOUND', async () => {
    const e = await fail(ctx.target().ingress())
    expect(e.code).toBe('MESH_INGRESS_NOT_FOUND')
  })

  it('close() on the target stops its port-forwards', async () => {
    svc('ClusterIP')
    const t = ctx.target()
    const h = await t.ingress()
    await t.close()
    await expect(fetch(h.url)).rejects.toThrow()
  })
})

describe('proxy admin (counter evidence for mesh verify)', () => {
  it('reaches the gateway and a sidecar through kubectl port-forward to :15000, one forward per proxy, stopped on close', async () => {
    const t = ctx.target()
    const gw = await t.proxyAdminUrl('gateway')
    expect(gw).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(await (await fetch(`${gw}/stats/prometheus`)).text()).toBe('stand-in ingress /stats/prometheus')
    expect(await t.proxyAdminUrl('gateway')).toBe(gw) // kept, not forwarded again
    const pod = await t.proxyAdminUrl({namespace: 'mesh-lab', pod: 'hello-v1-6d8c8b5d9f-4x2kq'})
    expect(pod).not.toBe(gw)
    const tail = ['--address', '127.0.0.1', '--context', 'kind-mesh', '--kubeconfig', ctx.kubeconfig]
    expect(calls(ctx.kubectlLog)).toEqual([
      ['port-forward', '-n', 'istio-system', 'deploy/istio-ingressgateway', ':15000', ...tail],
      ['port-forward', '-n', 'mesh-lab', 'pod/hello-v1-6d8c8b5d9f-4x2kq', ':15000', ...tail],
    ])
    await t.close()
    await expect(fetch(`${gw}/stats/prometheus`)).rejects.toThrow()
  })

  it('a forward that fails leaves mesh verify an "unavailable" reason with kubectl’s error, and the next call tries again', async () => {
    const t = new RealTarget({context: 'kind-mesh', kubeconfigPath: ctx.kubeconfig, env: {...ctx.env, FAKE_KUBECTL_FAIL: '1'}, kubectl: KUBECTL})
    targets.push(t)
    const r = await proxyAdmin(t, 'gateway')
    expect(r.admin).toBeUndefined()
    expect(r.unavailable).toContain('kubectl port-forward to istio-system/deploy/istio-ingressgateway')
    expect(r.unavailable).toContain('pod is not running')
    await proxyAdmin(t, 'gateway')
    expect(calls(ctx.kubectlLog)).toHaveLength(2)
  })
})

describe('waitForSync', () => {
  const table = (eds: string) =>
    [
      'NAME                                                  CLUSTER        CDS                LDS                EDS                RDS                ECDS        ISTIOD                     VERSION',
      `hello-v1-6d8c8b5d9f-4x2kq.hello                       Kubernetes     SYNCED (2m1s)      SYNCED (2m1s)      ${eds.padEnd(19)}SYNCED (2m1s)      IGNORED     istiod-7b69c7f8d-9wq7m     1.28.1`,
      'istio-ingressgateway-5c8d9f6b7-ttw2c.istio-system     Kubernetes     SYNCED (2m5s)      SYNCED (2m5s)      SYNCED (2m5s)      NOT SENT           IGNORED     istiod-7b69c7f8d-9wq7m     1.28.1',
      '',
    ].join('\n')

  it('returns once every proxy has acknowledged, seen twice in a row', async () => {
    const file = join(dir, `ps-${n}.txt`)
    writeFileSync(file, table('STALE (1s)'))
    const t = new RealTarget({context: 'kind-mesh', kubeconfigPath: ctx.kubeconfig, env: {...ctx.env, FAKE_ISTIOCTL_PROXY_STATUS: file}})
    targets.push(t)
    const waiting = t.waitForSync({timeoutMs: 20_000, intervalMs: 100})
    // the proxy acknowledges only after mesh has seen it STALE at least once: polls run one
    // at a time, so once the second has started the first has read the STALE table
    while (calls(ctx.istioctlLog).length < 2) await new Promise((r) => setTimeout(r, 20))
    writeFileSync(file, table('SYNCED (0s)'))
    const r = await waiting
    expect(r.summary).toMatchObject({total: 2, synced: 2, allSynced: true})
    expect(r.polls).toBeGreaterThanOrEqual(3) // one STALE poll, then two SYNCED ones
    expect(calls(ctx.istioctlLog)[0]).toEqual(['proxy-status', '--context', 'kind-mesh', '--kubeconfig', ctx.kubeconfig])
  })

  it('times out with MESH_SYNC_TIMEOUT naming the proxies still behind', async () => {
    const file = join(dir, `ps-stale-${n}.txt`)
    writeFileSync(file, table('STALE (9s)'))
    const t = new RealTarget({context: 'kind-mesh', kubeconfigPath: ctx.kubeconfig, env: {...ctx.env, FAKE_ISTIOCTL_PROXY_STATUS: file}})
    const e = await fail(t.waitForSync({timeoutMs: 500, intervalMs: 100}))
    expect(e.code).toBe('MESH_SYNC_TIMEOUT')
    expect(e.exit).toBe(69)
    expect(e.message).toContain('hello-v1-6d8c8b5d9f-4x2kq.hello (EDS)')
    expect(e.message).not.toContain('ingressgateway')
  })

  it('only waits for the proxies asked about', async () => {
    const file = join(dir, `ps-match-${n}.txt`)
    writeFileSync(file, table('STALE (9s)'))
    const t = new RealTarget({context: 'kind-mesh', kubeconfigPath: ctx.kubeconfig, env: {...ctx.env, FAKE_ISTIOCTL_PROXY_STATUS: file}})
    const r = await t.waitForSync({timeoutMs: 10_000, intervalMs: 50, match: (row) => row.namespace === 'istio-system'})
    expect(r.rows.map((x) => x.pod)).toEqual(['istio-ingressgateway-5c8d9f6b7-ttw2c'])
  })
})

