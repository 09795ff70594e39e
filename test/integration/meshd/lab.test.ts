// meshd as a user meets it: `mesh lab up` starts a detached daemon in a temp MESH_HOME and the
// real kubectl drives it. Pods run virtually here (no processes); process-pods.test.ts covers
// real processes.
import {spawnSync} from 'node:child_process'
import {existsSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {createServer, type Server} from 'node:net'
import {join} from 'node:path'
import {load} from 'js-yaml'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {KubeClient, type KubeObject} from '../../../src/cluster/client.js'
import {isMeshError} from '../../../src/lib/errors.js'
import {ROOT, alive, cleanup, ensureBuilt, kubectl, mesh, meshdPid, tempHome, until} from './helpers.js'

let home: string
const ns = 'mesh-lab'

beforeAll(() => {
  ensureBuilt()
  home = tempHome()
  const up = mesh(home, 'lab', 'up', '--runtime', 'virtual', '--json')
  if (up.status !== 0) throw new Error(`lab up failed: ${up.stdout}\n${up.stderr}`)
})

afterAll(() => cleanup(home))

const pods = (selector: string): KubeObject[] => {
  const r = kubectl(home, 'get', 'pods', '-n', ns, '-l', selector, '-o', 'json')
  return (r.json?.items ?? []) as KubeObject[]
}

describe('mesh lab up / status', () => {
  it('writes a private kubeconfig for context mesh-local and reports it', () => {
    const kc = join(home, 'kubeconfig')
    expect(statSync(kc).mode & 0o777).toBe(0o600)
    const doc = load(readFileSync(kc, 'utf8')) as any
    expect(doc['current-context']).toBe('mesh-local')
    expect(doc.clusters[0].cluster.server).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/)
    expect(doc.users[0].user.token).toMatch(/^[0-9a-f]{64}$/)
    const st = mesh(home, 'lab', 'status', '--json')
    expect(st.status).toBe(0)
    expect(st.json.result).toMatchObject({target: 'embedded', running: true, kubeconfig: kc, apiServer: doc.clusters[0].cluster.server})
    expect(st.json.result.ingress).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
  })

  it('is idempotent: a second lab up finds the running meshd and changes nothing', () => {
    const pid = meshdPid(home)
    const again = mesh(home, 'lab', 'up', '--json')
    expect(again.status).toBe(0)
    expect(again.json.result.alreadyRunning).toBe(true)
    expect(again.json.result.pid).toBe(pid)
  })

  it('gives a running lab its kubeconfig back when it was deleted', () => {
    const kc = join(home, 'kubeconfig')
    const before = readFileSync(kc, 'utf8')
    rmSync(kc)
    expect(mesh(home, 'lab', 'up').status).toBe(0)
    expect(readFileSync(kc, 'utf8')).toBe(before)
    expect(kubectl(home, 'get', 'ns', 'default', '-o', 'name').stdout.trim()).toBe('namespace/default')
  })

  it('a second meshd on the same home refuses to start (MESH_ALREADY_RUNNING, exit 69)', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'dist/local/meshd.js'), '--home', home], {encoding: 'utf8', timeout: 20_000})
    expect(r.status).toBe(69)
    expect(readFileSync(join(home, 'local/meshd.log'), 'utf8')).toMatch(/FATAL .*MESH_ALREADY_RUNNING/)
    expect(alive(meshdPid(home)!)).toBe(true)
  })
})

describe('kubectl against meshd', () => {
  it('lists the seeded namespaces', () => {
    const r = kubectl(home, 'get', 'ns', '-o', 'json')
    expect(r.status).toBe(0)
    const names = (r.json.items as KubeObject[]).map((n) => n.metadata.name)
    expect(names).toEqual(expect.arrayContaining(['default', 'kube-system', 'kube-public', 'istio-system']))
  })

  it('applies manifests/ and configs/ server-side and serves the Istio objects back', () => {
    // the namespace first: kubectl applies a directory in file-name order
    expect(kubectl(home, 'apply', '--server-side', '-f', 'manifests/00-namespace.yaml').status).toBe(0)
    const r = kubectl(home, 'apply', '--server-side', '-f', 'manifests/', '-f', 'configs/traffic/gateway.yaml', '-f', 'configs/traffic/destination-rule.yaml', '-f', 'configs/traffic/virtual-service-100-0.yaml', '-f', 'configs/mtls/peer-authentication-permissive.yaml', '-f', 'configs/security/deny-all.yaml')
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    const got = kubectl(home, 'get', 'vs,dr,gw,pa,authorizationpolicies', '-A', '-o', 'json')
    const kinds = (got.json.items as KubeObject[]).map((o) => `${o.kind}/${o.metadata.name}`)
    expect(kinds).toEqual(expect.arrayContaining(['VirtualService/hello', 'DestinationRule/hello', 'Gateway/hello-gateway', 'PeerAuthentication/default', 'AuthorizationPolicy/deny-all']))
  })

  it('runs the Deployment: ready replicas, scaling, Available, pod names and endpoints', async () => {
    expect(kubectl(home, 'wait', '--for=condition=Available', 'deploy/hello-v1', '-n', ns, '--timeout=30s').status).toBe(0)
    expect(kubectl(home, 'get', 'deploy', 'hello-v1', '-n', ns, '-o', 'jsonpath={.status.readyReplicas}').stdout).toBe('1')

    expect(kubectl(home, 'scale', 'deploy', 'hello-v1', '-n', ns, '--replicas=3').status).toBe(0)
    const w = kubectl(home, 'wait', '--for=condition=Available', 'deploy/hello-v1', '-n', ns, '--timeout=30s')
    expect(w.stdout).toContain('condition met')
    expect(kubectl(home, 'get', 'deploy', 'hello-v1', '-n', ns, '-o', 'jsonpath={.status.readyReplicas}').stdout).toBe('3')

    const v1 = pods('app=hello,version=v1,mesh.lab/faulty=false')
    expect(v1).toHaveLength(3)
    const hashes = new Set(v1.map((p) => p.metadata.labels!['pod-template-hash']))
    expect(hashes.size).toBe(1)
    for (const p of v1) expect(p.metadata.name).toMatch(new RegExp(`^hello-v1-${[...hashes][0]}-[a-z0-9]{5}$`))

    const readyIps = pods('app=hello')
      .filter((p) => p.status.conditions.some((c: any) => c.type === 'Ready' && c.status === 'True'))
      .map((p) => p.status.podIP)
      .sort()
    expect(readyIps.length).toBe(4) // 3 × v1 + 1 × v2
    // the endpoints controller follows the same pod events as the deployment's status
    const ep = await until('endpoints of the ready pods', () => {
      const e = kubectl(home, 'get', 'endpoints', 'hello', '-n', ns, '-o', 'json').json
      const addresses = (e?.subsets ?? []).flatMap((s: any) => (s.addresses ?? []).map((a: any) => a.ip)).sort()
      return JSON.stringify(addresses) === JSON.stringify(readyIps) && e
    }, 10_000, 100)
    expect(ep.subsets[0].ports).toEqual([{name: 'http', port: 5000, protocol: 'TCP'}])
  })

  it('refuses an invalid VirtualService with a 422 naming the field', () => {
    const bad = join(home, 'bad-vs.yaml')
    writeFileSync(
      bad,
      'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bad, namespace: mesh-lab}\nspec:\n  hosts: [hello]\n  http:\n  - route:\n    - destination: {host: hello, subset: v1}\n      weight: -5\n',
    )
    const r = kubectl(home, 'apply', '--server-side', '-f', bad)
    expect(r.status).not.toBe(0)
    expect(r.stderr).toContain('spec.http[0].route[0].weight')
    expect(kubectl(home, 'get', 'vs', 'bad', '-n', ns).status).not.toBe(0)
  })

  it('deleting a namespace removes its pods', async () => {
    expect(kubectl(home, 'get', 'pods', '-n', 'mesh-legacy', '-o', 'name').stdout).toMatch(/pod\/curl-/)
    expect(kubectl(home, 'delete', 'ns', 'mesh-legacy', '--wait=true', '--timeout=30s').status).toBe(0)
    const r = kubectl(home, 'get', 'pods', '-n', 'mesh-legacy', '-o', 'name')
    expect(r.stdout.trim()).toBe('')
  })
})

describe('KubeClient (client-node) against meshd', () => {
  it('applies with field manager mesh: twice is no change, a foreign field is a conflict', async () => {
    const client = KubeClient.fromKubeconfig(join(home, 'kubeconfig'))
    const web: KubeObject = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {name: 'web', namespace: 'client-test'},
      spec: {
        replicas: 1,
        selector: {matchLabels: {app: 'web'}},
        template: {metadata: {labels: {app: 'web'}}, spec: {containers: [{name: 'web', image: 'docker.io/istio/examples-helloworld-v1:1.0'}]}},
      },
    }
    const objects: KubeObject[] = [
      {apiVersion: 'v1', kind: 'Namespace', metadata: {name: 'client-test'}},
      {apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: 'cfg', namespace: 'client-test'}, data: {a: '1'}},
      web,
    ]
    const first = await client.apply(objects)
    expect(first.map((r) => r.action)).toEqual(['created', 'created', 'created'])
    const second = await client.apply(objects)
    expect(second.map((r) => r.action)).toEqual(['unchanged', 'unchanged', 'unchanged'])

    // kubectl takes spec.replicas over; mesh's next apply of another value is a reported conflict
    const kc = spawnSync('kubectl', ['--kubeconfig', join(home, 'kubeconfig'), '--cache-dir', join(home, 'kube-cache'), 'apply', '--server-side', '--force-conflicts', '-f', '-'], {
      input: JSON.stringify({...web, spec: {...web.spec, replicas: 3}}),
      encoding: 'utf8',
    })
    expect(kc.status).toBe(0)
    const err = await client.apply(web).catch((e) => e)
    expect(isMeshError(err)).toBe(true)
    expect(err.code).toBe('MESH_APPLY_CONFLICT')
    expect(err.exit).toBe(65)
    expect(err.message).toContain('.spec.replicas')
    expect(err.message).toContain('owned by "kubectl"')
    expect(err.suggestion).toContain('--force-conflicts')

    const forced = await client.apply(web, {force: true})
    expect(forced[0].action).toBe('configured')
    const settled = await client.waitFor({apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', namespace: 'client-test'}, {condition: 'Available'}, {timeoutMs: 20_000})
    expect(settled?.status.readyReplicas).toBe(1)
  })

  it('waits for a condition with watch and times out with a clear error', async () => {
    const client = KubeClient.fromKubeconfig(join(home, 'kubeconfig'))
    const ok = await client.waitFor({apiVersion: 'apps/v1', kind: 'Deployment', name: 'hello-v2', namespace: ns}, {condition: 'Available'}, {timeoutMs: 20_000})
    expect(ok?.metadata.name).toBe('hello-v2')
    const err = await client.waitFor({apiVersion: 'v1', kind: 'ConfigMap', name: 'never', namespace: ns}, (o) => Boolean(o), {timeoutMs: 300}).catch((e) => e)
    expect(err.code).toBe('MESH_WAIT_TIMEOUT')
    expect(err.exit).toBe(69)
  })

  it('lists, gets and deletes; a missing object is undefined', async () => {
    const client = KubeClient.fromKubeconfig(join(home, 'kubeconfig'))
    const vs = await client.list('networking.istio.io/v1', 'VirtualService', {namespace: ns})
    expect(vs.map((v) => v.metadata.name)).toEqual(expect.arrayContaining(['hello', 'hello-ingress']))
    expect(vs[0].kind).toBe('VirtualService')
    expect(await client.get({apiVersion: 'v1', kind: 'Service', name: 'nope', namespace: ns})).toBeUndefined()
    await client.apply({apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: 'tmp', namespace: ns}, data: {a: '1'}})
    expect(await client.delete({apiVersion: 'v1', kind: 'ConfigMap', name: 'tmp', namespace: ns})).toBe(true)
    expect(await client.delete({apiVersion: 'v1', kind: 'ConfigMap', name: 'tmp', namespace: ns})).toBe(false)
  })
})

describe('crash and restart', () => {
  it('kill -9 during a series of applies loses nothing acknowledged; resourceVersions keep increasing', async () => {
    const client = KubeClient.fromKubeconfig(join(home, 'kubeconfig'))
    const acked = new Map<string, string>()
    const pid = meshdPid(home)!
    let killed = false
    // four writers keep several writes in flight; meshd dies after the 40th acknowledgement
    const writer = async (w: number) => {
      for (let i = 0; i < 100 && !killed; i++) {
        try {
          const [r] = await client.apply({apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: `crash-${w}-${i}`, namespace: 'default'}, data: {i: String(i)}})
          acked.set(r.name, r.object.metadata.resourceVersion!)
          if (acked.size === 40 && !killed) {
            process.kill(pid, 'SIGKILL')
            killed = true
          }
        } catch (e) {
          expect((e as {code?: string}).code).toBe('MESH_CLUSTER_UNREACHABLE')
          return
        }
      }
    }
    await Promise.all([0, 1, 2, 3].map(writer))
    expect(killed).toBe(true)
    await until('meshd gone', () => !alive(pid))
    expect(acked.size).toBeGreaterThanOrEqual(40)
    const maxRv = Math.max(...[...acked.values()].map(Number))

    const up = mesh(home, 'lab', 'up', '--runtime', 'virtual', '--json')
    expect(up.status).toBe(0)
    expect(up.json.result.recoveredStalePid).toBe(pid)
    const after = KubeClient.fromKubeconfig(join(home, 'kubeconfig'))
    const cms = await after.list('v1', 'ConfigMap', {namespace: 'default'})
    const names = new Set(cms.map((c) => c.metadata.name))
    for (const name of acked.keys()) expect(names.has(name)).toBe(true)
    const [fresh] = await after.apply({apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: 'after-restart', namespace: 'default'}})
    expect(Number(fresh.object.metadata.resourceVersion)).toBeGreaterThan(maxRv)
    // the controllers picked up where they were
    expect(kubectl(home, 'wait', '--for=condition=Available', 'deploy/hello-v1', '-n', ns, '--timeout=30s').status).toBe(0)
  })

  it('a stale pid file (dead process) is reported as down and replaced by lab up', () => {
    expect(mesh(home, 'lab', 'down').status).toBe(0)
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!
    writeFileSync(join(home, 'local/meshd.pid'), `${dead}\n`)
    const st = mesh(home, 'lab', 'status', '--json')
    expect(st.status).toBe(69)
    expect(st.json.error.code).toBe('MESH_LAB_DOWN')
    const up = mesh(home, 'lab', 'up', '--runtime', 'virtual')
    expect(up.status).toBe(0)
    expect(up.stderr).toContain('MESH_STALE_PID')
    expect(meshdPid(home)).not.toBe(dead)
  })

  it('reports a taken API port as MESH_PORT_IN_USE (exit 69) and starts once it is free', async () => {
    const port = Number(new URL(mesh(home, 'lab', 'status', '--json').json.result.apiServer).port)
    expect(mesh(home, 'lab', 'down').status).toBe(0)
    const blocker: Server = createServer()
    await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', r))
    try {
      const up = mesh(home, 'lab', 'up', '--json')
      expect(up.status).toBe(69)
      expect(up.json.error.code).toBe('MESH_PORT_IN_USE')
      expect(up.json.error.message).toContain(String(port))
    } finally {
      await new Promise((r) => blocker.close(r))
    }
    const up = mesh(home, 'lab', 'up', '--runtime', 'virtual', '--json')
    expect(up.status).toBe(0)
    expect(up.json.result.apiServer).toBe(`https://127.0.0.1:${port}`)
  })
})

describe('mesh lab down', () => {
  it('stops meshd; then status says MESH_LAB_DOWN (69) and the client says unreachable', async () => {
    const pid = meshdPid(home)!
    const down = mesh(home, 'lab', 'down', '--json')
    expect(down.status).toBe(0)
    expect(down.json.result).toMatchObject({wasRunning: true, pid, purged: false})
    expect(alive(pid)).toBe(false)
    expect(existsSync(join(home, 'kubeconfig'))).toBe(true)
    const st = mesh(home, 'lab', 'status')
    expect(st.status).toBe(69)
    expect(st.stderr).toContain('MESH_LAB_DOWN')
    expect(st.stderr).toContain('mesh lab up')
    const err = await KubeClient.fromKubeconfig(join(home, 'kubeconfig'))
      .list('v1', 'Namespace')
      .catch((e) => e)
    expect(err.code).toBe('MESH_CLUSTER_UNREACHABLE')
    expect(err.exit).toBe(69)
    expect(err.message).toContain('https://127.0.0.1:')
    expect(err.suggestion).toContain('mesh lab up')
  })

  it('--purge removes the state and the kubeconfig', () => {
    const r = mesh(home, 'lab', 'down', '--purge', '--json')
    expect(r.status).toBe(0)
    expect(existsSync(join(home, 'kubeconfig'))).toBe(false)
    expect(existsSync(join(home, 'local'))).toBe(false)
  })
})
