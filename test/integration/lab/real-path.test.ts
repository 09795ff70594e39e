// The real-cluster path of `mesh lab up / status / down`, driven against the embedded API as if
// it were a real cluster: `--context mesh-local` with KUBECONFIG pointing at a bare meshd, the
// istioctl stand-in (records its argv, prints a proxy-status table) and the kubectl stand-in for
// port-forward. Everything the CLI sends is what a real cluster would get.
import {existsSync, readdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {KubeClient} from '../../../src/cluster/client.js'
import {baselineObjects} from '../../../src/cluster/lab.js'
import {spawnMeshd, stopMeshd} from '../../../src/cluster/meshd-process.js'
import {writeInstallRecord, readInstallRecord} from '../../../src/install/record.js'
import {FAKE_ISTIOCTL, FAKE_KUBECTL, build, mesh, tempHome} from './helpers.js'
import {rmSync} from 'node:fs'

let apiHome: string // the bare meshd playing the real cluster
let home: string // the user's mesh home
let kc: string
let env: NodeJS.ProcessEnv
let client: KubeClient
const istioctlLog = () => join(home, 'istioctl.jsonl')
const kubectlLog = () => join(home, 'kubectl.jsonl')
const calls = (file: string): string[][] => (existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l).argv) : [])

// three meshed pods in mesh-lab and the gateway, all acknowledged (names are the stand-in's own)
const PROXY_STATUS = [
  'NAME                                                  CLUSTER        CDS                LDS                EDS                RDS                ECDS        ISTIOD                     VERSION',
  'hello-v1-6d8c8b5d9f-4x2kq.mesh-lab                    Kubernetes     SYNCED (2m1s)      SYNCED (2m1s)      SYNCED (2m1s)      SYNCED (2m1s)      IGNORED     istiod-7b69c7f8d-9wq7m     1.28.1',
  'hello-v2-7f9d7c6b8c-p2x9z.mesh-lab                    Kubernetes     SYNCED (2m1s)      SYNCED (2m1s)      SYNCED (2m1s)      SYNCED (2m1s)      IGNORED     istiod-7b69c7f8d-9wq7m     1.28.1',
  'curl-5b8c9d7f6-qq2w7.mesh-lab                         Kubernetes     SYNCED (2m1s)      SYNCED (2m1s)      SYNCED (2m1s)      SYNCED (2m1s)      IGNORED     istiod-7b69c7f8d-9wq7m     1.28.1',
  'istio-ingressgateway-5c8d9f6b7-ttw2c.istio-system     Kubernetes     SYNCED (2m5s)      SYNCED (2m5s)      SYNCED (2m5s)      NOT SENT           IGNORED     istiod-7b69c7f8d-9wq7m     1.28.1',
  '',
].join('\n')

beforeAll(async () => {
  build()
  apiHome = tempHome('mesh-real-api-')
  home = tempHome('mesh-real-home-')
  await spawnMeshd({home: apiHome, runtime: 'virtual'})
  kc = join(apiHome, 'kubeconfig')
  writeFileSync(join(home, 'proxy-status.txt'), PROXY_STATUS)
  env = {
    KUBECONFIG: kc,
    MESH_ISTIOCTL: FAKE_ISTIOCTL,
    MESH_KUBECTL: FAKE_KUBECTL,
    FAKE_ISTIOCTL_LOG: istioctlLog(),
    FAKE_KUBECTL_LOG: kubectlLog(),
    FAKE_ISTIOCTL_PROXY_STATUS: join(home, 'proxy-status.txt'),
  }
  client = KubeClient.fromKubeconfig(kc, 'mesh-local')
}, 120_000)

afterAll(async () => {
  if (apiHome) await stopMeshd({home: apiHome, purge: true, timeoutMs: 10_000}).catch(() => undefined)
  for (const h of [apiHome, home]) if (h) rmSync(h, {recursive: true, force: true})
}, 30_000)

const ns = (name: string) => client.get({apiVersion: 'v1', kind: 'Namespace', name})

describe('the safety guard', () => {
  it('refuses a context that is not a local lab cluster without --yes, before anything is sent', async () => {
    const prod = join(home, 'prod.yaml')
    writeFileSync(prod, readFileSync(kc, 'utf8').replaceAll('mesh-local', 'prod-eu'))
    const r = await mesh(home, ['lab', 'up', '--context', 'prod-eu', '--kubeconfig', prod, '--json'], env)
    expect(r.status).toBe(65)
    expect(r.json.error).toMatchObject({code: 'MESH_UNSAFE_CONTEXT', field: 'context'})
    expect(r.json.error.message).toContain('"prod-eu"')
    expect(r.json.error.suggestion).toContain('--yes')
    expect(await ns('mesh-lab')).toBeUndefined()
    expect(calls(istioctlLog())).toEqual([])
    expect(existsSync(join(home, 'target.json'))).toBe(false)
    const down = await mesh(home, ['lab', 'down', '--context', 'prod-eu', '--kubeconfig', prod], env)
    expect(down.status).toBe(65)
    expect(down.stderr).toContain('MESH_UNSAFE_CONTEXT')
  })

  it('--context does-not-exist is MESH_CONTEXT_NOT_FOUND (65) listing the contexts there are', async () => {
    const r = await mesh(home, ['lab', 'up', '--context', 'does-not-exist', '--json'], env)
    expect(r.status).toBe(65)
    expect(r.json.error.code).toBe('MESH_CONTEXT_NOT_FOUND')
    expect(r.json.error.message).toContain('mesh-local')
    expect(existsSync(join(home, 'target.json'))).toBe(false)
  })
})

describe('mesh lab up --context mesh-local', () => {
  let first: any // eslint-disable-line @typescript-eslint/no-explicit-any

  it('runs preflight, keeps the Istio it finds, applies the lab with the same code, waits, and remembers the target', async () => {
    const r = await mesh(home, ['lab', 'up', '--context', 'mesh-local', '--json'], env)
    expect(r.status, r.stdout + r.stderr).toBe(0)
    first = r.json.result
    expect(first).toMatchObject({target: 'real', context: 'mesh-local', kubeconfig: kc, changed: true, remembered: true})
    expect(first.preflight).toMatchObject({context: 'mesh-local', reachable: true, ok: true})
    expect(first.preflight.serverVersion).toMatch(/^v1\.\d+/)
    expect(first.preflight.checks.map((c: {id: string}) => c.id)).toEqual(['api', 'permissions', 'istio'])
    // meshd serves Istio's CRDs: an Istio mesh did not install, used as is
    expect(first.istio).toMatchObject({action: 'existing', profile: 'demo'})
    expect(r.json.warnings.map((w: {code: string}) => w.code)).toContain('MESH_ISTIO_EXISTING')
    // the same objects as the embedded lab, through the same apply
    expect(first.apply.created).toBe(baselineObjects().length)
    const vs = await client.get({apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', name: 'hello', namespace: 'mesh-lab'})
    expect(vs?.metadata.labels?.['app.kubernetes.io/managed-by']).toBe('mesh')
    expect((vs?.metadata.managedFields as Array<{manager: string}>).map((m) => m.manager)).toContain('mesh')
    expect((await ns('mesh-lab'))?.metadata.labels?.['istio-injection']).toBe('enabled')
    expect(first.rollout.ready).toBe(first.rollout.pods)
    // sync through istioctl proxy-status, against this context and kubeconfig
    expect(first.proxies).toMatchObject({synced: true, count: 4})
    const ps = calls(istioctlLog())
    expect(ps.length).toBeGreaterThanOrEqual(2) // SYNCED twice in a row
    for (const argv of ps) expect(argv).toEqual(['proxy-status', '--context', 'mesh-local', '--kubeconfig', kc])
    // no ingress service: reported, not fatal
    expect(first.ingressVia).toBe('unavailable')
    expect(r.json.warnings.map((w: {code: string}) => w.code)).toContain('MESH_INGRESS_NOT_FOUND')
    expect(JSON.parse(readFileSync(join(home, 'target.json'), 'utf8'))).toMatchObject({kind: 'real', context: 'mesh-local', kubeconfigPath: kc})
  })

  it('later commands need no flags; a second lab up changes nothing and says so, with the preflight report', async () => {
    const noFlags = {...env, KUBECONFIG: ''}
    const r = await mesh(home, ['lab', 'up'], noFlags)
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toContain('The lab was already up; nothing changed.')
    expect(r.stdout).toContain('real cluster, context mesh-local')
    expect(r.stderr).toMatch(/✔ API server https:\/\/127\.0\.0\.1:\d+ answers, Kubernetes v1\./)
    expect(r.stderr).toContain('preflight passed')
    expect(r.stderr).toMatch(/all \d+ objects unchanged/)
    expect(r.stdout).toContain(`kubectl --context mesh-local --kubeconfig ${kc} get pods -n mesh-lab`)
  })

  it('lab status reads the remembered real target: weights, mTLS, kubeconfig, Istio', async () => {
    const r = await mesh(home, ['lab', 'status', '--json'], {...env, KUBECONFIG: ''})
    expect(r.status, r.stdout).toBe(0)
    expect(r.json.result).toMatchObject({
      target: 'real',
      context: 'mesh-local',
      kubeconfig: kc,
      weights: {v1: 100, v2: 0},
      mtls: {mode: 'PERMISSIVE', mesh: 'PERMISSIVE'},
      policies: [],
      istio: {installedByMesh: false},
      ingressVia: 'unavailable',
    })
    expect(r.json.result.proxies.items).toHaveLength(4)
  })

  it('reaches the ingress through kubectl port-forward when the service has no LoadBalancer address, and stops it', async () => {
    await client.apply({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {name: 'istio-ingressgateway', namespace: 'istio-system'},
      spec: {selector: {istio: 'ingressgateway'}, ports: [{name: 'http2', port: 80, targetPort: 8080}]},
    }, {fieldManager: 'istio-operator'})
    const r = await mesh(home, ['lab', 'up', '--json'], env)
    expect(r.status, r.stdout).toBe(0)
    expect(r.json.result.ingressVia).toBe('port-forward')
    expect(r.json.result.ingress).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(r.json.result.portForwardCommand).toBe('kubectl --context mesh-local port-forward -n istio-system svc/istio-ingressgateway 8080:80')
    expect(calls(kubectlLog())).toEqual([['port-forward', '-n', 'istio-system', 'svc/istio-ingressgateway', ':80', '--address', '127.0.0.1', '--context', 'mesh-local', '--kubeconfig', kc]])
    // the forward lived only as long as the command
    await expect(fetch(r.json.result.ingress, {signal: AbortSignal.timeout(2000)})).rejects.toThrow()
    const st = await mesh(home, ['lab', 'status', '--json'], env)
    expect(st.json.result).toMatchObject({ingressVia: 'port-forward', ingress: null})
  })

  it('installs Istio through istioctl when mesh installed another version before', async () => {
    await writeInstallRecord(client.kc, {istioVersion: '1.28.0', profile: 'demo', installedAt: '2026-01-01T00:00:00Z'})
    const before = calls(istioctlLog()).length
    const r = await mesh(home, ['lab', 'up', '--istio-version', '1.28.1', '--json'], env)
    expect(r.status, r.stdout).toBe(0)
    expect(r.json.result.istio).toMatchObject({action: 'installed', version: '1.28.1', profile: 'demo', istioctl: FAKE_ISTIOCTL})
    const argv = calls(istioctlLog()).slice(before)
    expect(argv.slice(0, 2)).toEqual([
      ['version', '--remote=false'],
      ['install', '--set', 'profile=demo', '-y', '--context', 'mesh-local', '--kubeconfig', kc],
    ])
    expect(await readInstallRecord(client.kc)).toMatchObject({istioVersion: '1.28.1', profile: 'demo'})
    // the same version and profile again: istioctl install is not run
    const again = await mesh(home, ['lab', 'up', '--json'], env)
    expect(again.json.result.istio.action).toBe('unchanged')
    expect(again.json.result.changed).toBe(false)
    expect(calls(istioctlLog()).some((a, i) => i >= before + 2 && a[0] === 'install')).toBe(false)
  })
})

describe('mesh lab down on the real path', () => {
  it('deletes only what mesh manages, keeps a namespace holding someone else\'s object, and --purge uninstalls the Istio mesh installed', async () => {
    await client.apply({apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: 'not-ours', namespace: 'mesh-legacy'}, data: {a: 'b'}}, {fieldManager: 'someone'})
    const r = await mesh(home, ['lab', 'down', '--purge', '--json'], env)
    expect(r.status, r.stdout).toBe(0)
    const d = r.json.result
    expect(d).toMatchObject({target: 'real', context: 'mesh-local', purged: true, forgotten: true, istio: {uninstalled: true}})
    expect(d.deleted).toEqual(expect.arrayContaining(['VirtualService mesh-lab/hello', 'Deployment mesh-lab/hello-v1', 'Deployment mesh-legacy/curl', 'Namespace mesh-lab']))
    expect(d.left).toEqual([
      {kind: 'ConfigMap', namespace: 'mesh-legacy', name: 'not-ours', reason: 'not managed by mesh'},
      {kind: 'Namespace', name: 'mesh-legacy', reason: 'kept: it holds 1 object(s) mesh does not manage'},
    ])
    expect(await client.get({apiVersion: 'v1', kind: 'ConfigMap', name: 'not-ours', namespace: 'mesh-legacy'})).toBeDefined()
    expect(await client.get({apiVersion: 'apps/v1', kind: 'Deployment', name: 'curl', namespace: 'mesh-legacy'})).toBeUndefined()
    // the ingress service Istio made is not mesh's
    expect(await client.get({apiVersion: 'v1', kind: 'Service', name: 'istio-ingressgateway', namespace: 'istio-system'})).toBeDefined()
    expect(calls(istioctlLog()).at(-1)).toEqual(['uninstall', '--purge', '-y', '--context', 'mesh-local', '--kubeconfig', kc])
    expect(await readInstallRecord(client.kc)).toBeUndefined()
    expect(existsSync(join(home, 'target.json'))).toBe(false)
    // no port-forward stand-in outlives its command
    const mine = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
      try {
        return readFileSync(`/proc/${p}/environ`, 'utf8').includes(kubectlLog())
      } catch {
        return false
      }
    })
    expect(mine).toEqual([])
  })
})
