// `mesh lab up / status / down` on a real embedded lab (meshd, pod processes, the ingress
// gateway process) in a temp MESH_HOME, as a user runs them, plus the failure cases that must
// change nothing: ports in use, a stale pid file, a lab that is down.
import {spawnSync} from 'node:child_process'
import {existsSync, readFileSync, writeFileSync} from 'node:fs'
import {createServer, type Server} from 'node:net'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {KubeClient, type KubeObject} from '../../../src/cluster/client.js'
import {buildHelloVirtualServices} from '../../../src/mesh/traffic.js'
import {ROOT, alive, build, cleanup, mesh, meshdPid, tempHome, type Run} from './helpers.js'

let home: string
let up: Run

beforeAll(async () => {
  build()
  home = tempHome()
  up = await mesh(home, ['lab', 'up', '--json'])
  if (up.status !== 0) throw new Error(`lab up failed: ${up.stdout}\n${up.stderr}`)
}, 120_000)

afterAll(() => cleanup(home), 60_000)

const kubectl = (...args: string[]) =>
  spawnSync('kubectl', ['--kubeconfig', join(home, 'kubeconfig'), '--cache-dir', join(home, 'kube-cache'), ...args], {encoding: 'utf8', timeout: 60_000})

const block = async (port: number): Promise<Server> => {
  const s = createServer()
  await new Promise<void>((r) => s.listen(port, '127.0.0.1', r))
  return s
}
const unblock = (s: Server) => new Promise((r) => s.close(r))

describe('mesh lab up (embedded)', () => {
  it('starts meshd, applies the lab and returns once pods are Ready and proxies SYNCED', () => {
    const r = up.json.result
    expect(r).toMatchObject({target: 'embedded', context: 'mesh-local', changed: true, alreadyRunning: false, ingressVia: 'embedded', remembered: true})
    expect(r.apply.created).toBe(r.apply.items.length)
    expect(r.apply.items.map((i: {kind: string; name: string}) => `${i.kind}/${i.name}`)).toEqual(
      expect.arrayContaining(['Namespace/mesh-lab', 'Namespace/mesh-legacy', 'Deployment/hello-v1', 'Deployment/hello-v2', 'Gateway/hello-gateway', 'VirtualService/hello', 'PeerAuthentication/default']),
    )
    expect(r.rollout.ready).toBe(r.rollout.pods)
    expect(r.rollout.pods).toBe(4) // hello v1, hello v2, curl in mesh-lab and in mesh-legacy; the faulty replica at 0
    expect(r.proxies.synced).toBe(true)
    expect(r.proxies.items.every((p: {state: string}) => p.state === 'SYNCED')).toBe(true)
    expect(r.proxies.items.map((p: {kind: string}) => p.kind)).toContain('gateway')
    expect(r.kubeconfig).toBe(join(home, 'kubeconfig'))
    expect(r.ingress).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    // progress goes nowhere under --json
    expect(up.stderr).toBe('')
  })

  it('leaves every pod Ready for kubectl, and the objects owned by field manager mesh', () => {
    const pods = JSON.parse(kubectl('get', 'pods', '-n', 'mesh-lab', '-o', 'json').stdout).items
    expect(pods.map((p: any) => p.metadata.labels.app).sort()).toEqual(['curl', 'hello', 'hello'])
    for (const p of pods) expect(p.status.conditions.find((c: any) => c.type === 'Ready').status).toBe('True')
    const vs = JSON.parse(kubectl('get', 'virtualservice', 'hello', '-n', 'mesh-lab', '-o', 'json', '--show-managed-fields').stdout)
    expect(vs.metadata.managedFields.map((m: any) => m.manager)).toContain('mesh')
  })

  it('prints where the ingress is: the gateway answers HTTP there', async () => {
    const res = await fetch(`${up.json.result.ingress}/hello`, {signal: AbortSignal.timeout(10_000)})
    expect(res.status).toBeGreaterThanOrEqual(200)
    await res.text()
  })

  // the mesh sidecar (src/local/dataplane/sidecar.ts) is what terminates the gateway's mTLS at the pod
  it('GET <ingress>/hello answers Hello version: v1', async () => {
    const res = await fetch(`${up.json.result.ingress}/hello`, {signal: AbortSignal.timeout(10_000)})
    expect(await res.text()).toMatch(/^Hello version: v1, instance: hello-v1-/)
  })

  it('a second lab up changes nothing and says so', async () => {
    const pid = meshdPid(home)
    const again = await mesh(home, ['lab', 'up', '--json'])
    expect(again.status).toBe(0)
    const r = again.json.result
    expect(r).toMatchObject({changed: false, alreadyRunning: true, pid})
    expect(r.apply.items.filter((i: {action: string}) => i.action !== 'unchanged')).toEqual([])
    expect(r.apply.unchanged).toBe(up.json.result.apply.created)
    const human = await mesh(home, ['lab', 'up'])
    expect(human.status).toBe(0)
    expect(human.stdout).toContain('The lab was already up; nothing changed.')
    expect(human.stderr).toContain(`meshd is already running (pid ${pid})`)
    expect(human.stderr).toMatch(/all \d+ objects unchanged/)
    expect(human.stdout).toContain('mesh canary shift 90/10')
    expect(human.stdout).toContain('mesh verify split --expect 90/10')
    expect(human.stdout).toContain(`kubectl --kubeconfig ${join(home, 'kubeconfig')} get pods -n mesh-lab`)
  })

  it('remembers the embedded target', () => {
    expect(JSON.parse(readFileSync(join(home, 'target.json'), 'utf8'))).toMatchObject({kind: 'embedded', context: 'mesh-local', kubeconfigPath: join(home, 'kubeconfig')})
  })
})

describe('mesh lab status (embedded)', () => {
  it('reports kubeconfig, ingress, Istio, weights 100/0, mTLS PERMISSIVE, no policies, pods per version and proxy sync', async () => {
    const st = await mesh(home, ['lab', 'status', '--json'])
    expect(st.status).toBe(0)
    const s = st.json.result
    expect(s).toMatchObject({
      target: 'embedded',
      context: 'mesh-local',
      kubeconfig: join(home, 'kubeconfig'),
      ingress: up.json.result.ingress,
      ingressListening: true,
      istio: {version: 'embedded (Istio 1.28 semantics)'},
      weights: {v1: 100, v2: 0},
      mtls: {mode: 'PERMISSIVE', namespace: 'mesh-lab', mesh: 'PERMISSIVE'},
      policies: [],
    })
    expect(s.versions.map((v: any) => [v.version, v.ready, v.total])).toEqual([
      ['v1', 1, 1],
      ['v2', 1, 1],
    ])
    expect(s.proxies.synced).toBe(true)
    const human = await mesh(home, ['lab', 'status'])
    expect(human.stdout).toMatch(/weights\s+v1 100 \/ v2 0/)
    expect(human.stdout).toMatch(/mTLS\s+mesh-lab PERMISSIVE, mesh-wide PERMISSIVE/)
    expect(human.stdout).toMatch(/istio\s+embedded \(Istio 1\.28 semantics\)/)
  })
})

describe('mesh lab up on a lab that moved on', () => {
  it('keeps a canary step in place (no reset to 100/0) and says which objects differ from the baseline', async () => {
    const client = KubeClient.fromKubeconfig(join(home, 'kubeconfig'))
    await client.apply(buildHelloVirtualServices({v1: 90, v2: 10}) as unknown as KubeObject[], {fieldManager: 'mesh'})
    const r = await mesh(home, ['lab', 'up', '--json'])
    expect(r.status, r.stdout).toBe(0)
    expect(r.json.result.changed).toBe(false)
    const kept = r.json.result.apply.items.filter((i: {action: string}) => i.action === 'kept').map((i: {name: string}) => i.name)
    expect(kept.sort()).toEqual(['hello', 'hello-ingress'])
    const st = await mesh(home, ['lab', 'status', '--json'])
    expect(st.json.result.weights).toEqual({v1: 90, v2: 10})
    const human = await mesh(home, ['lab', 'up'])
    expect(human.stdout).toContain('kept:        VirtualService mesh-lab/hello, VirtualService mesh-lab/hello-ingress')
    expect(human.stdout).toContain('mesh lab reset restores them')
    // back to the baseline for the tests below
    await client.apply(buildHelloVirtualServices({v1: 100, v2: 0}) as unknown as KubeObject[], {fieldManager: 'mesh'})
  })
})

describe('failures that change nothing', () => {
  it('--context does-not-exist is MESH_CONTEXT_NOT_FOUND (65); the running lab is untouched', async () => {
    const pid = meshdPid(home)
    const r = await mesh(home, ['lab', 'up', '--context', 'does-not-exist', '--json'], {KUBECONFIG: join(home, 'kubeconfig')})
    expect(r.status).toBe(65)
    expect(r.json.error.code).toBe('MESH_CONTEXT_NOT_FOUND')
    expect(r.json.error.message).toContain('does-not-exist')
    expect(meshdPid(home)).toBe(pid)
    expect(JSON.parse(readFileSync(join(home, 'target.json'), 'utf8')).kind).toBe('embedded')
  })

  it('an unknown --profile is MESH_ISTIO_PROFILE_INVALID (65)', async () => {
    const r = await mesh(home, ['lab', 'up', '--profile', 'bogus'])
    expect(r.status).toBe(65)
    expect(r.stderr).toContain('MESH_ISTIO_PROFILE_INVALID')
    expect(r.stderr).toContain('"bogus"')
  })

  it('the ingress port in use: MESH_PORT_IN_USE (69) naming it, meshd not started', async () => {
    const ingressPort = Number(new URL(up.json.result.ingress).port)
    expect((await mesh(home, ['lab', 'down'])).status).toBe(0)
    const s = await block(ingressPort)
    try {
      const r = await mesh(home, ['lab', 'up', '--json'])
      expect(r.status).toBe(69)
      expect(r.json.error).toMatchObject({code: 'MESH_PORT_IN_USE'})
      expect(r.json.error.message).toContain(`ingress port 127.0.0.1:${ingressPort}`)
      expect(meshdPid(home)).toBeUndefined()
    } finally {
      await unblock(s)
    }
  })

  it('the API port in use: MESH_PORT_IN_USE (69) naming it', async () => {
    const apiPort = Number(new URL(up.json.result.apiServer).port)
    const s = await block(apiPort)
    try {
      const r = await mesh(home, ['lab', 'up', '--json'])
      expect(r.status).toBe(69)
      expect(r.json.error.code).toBe('MESH_PORT_IN_USE')
      expect(r.json.error.message).toContain(`API port 127.0.0.1:${apiPort}`)
      expect(meshdPid(home)).toBeUndefined()
    } finally {
      await unblock(s)
    }
  })

  it('a stale meshd pid file is recovered with a warning, and the lab comes back as it was', async () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!
    writeFileSync(join(home, 'local/meshd.pid'), `${dead}\n`)
    const st = await mesh(home, ['lab', 'status', '--json'])
    expect(st.status).toBe(69)
    const r = await mesh(home, ['lab', 'up', '--json'])
    expect(r.status).toBe(0)
    expect(r.json.warnings).toEqual(expect.arrayContaining([expect.objectContaining({code: 'MESH_STALE_PID'})]))
    expect(r.json.result.recoveredStalePid).toBe(dead)
    expect(r.json.result.apply.created + r.json.result.apply.configured).toBe(0)
    expect(r.json.result.ingress).toBe(up.json.result.ingress)
    expect(alive(meshdPid(home)!)).toBe(true)
  })
})

describe('mesh lab down (embedded)', () => {
  it('stops meshd; status is then MESH_LAB_DOWN (69) with "Run mesh lab up."', async () => {
    const pid = meshdPid(home)!
    const down = await mesh(home, ['lab', 'down', '--json'])
    expect(down.status).toBe(0)
    expect(down.json.result).toMatchObject({target: 'embedded', wasRunning: true, pid, purged: false})
    expect(alive(pid)).toBe(false)
    const st = await mesh(home, ['lab', 'status', '--json'])
    expect(st.status).toBe(69)
    expect(st.json.error).toMatchObject({code: 'MESH_LAB_DOWN', suggestion: 'Run mesh lab up.'})
  })

  it('--purge removes the state and forgets the target', async () => {
    const r = await mesh(home, ['lab', 'down', '--purge', '--json'])
    expect(r.status).toBe(0)
    expect(r.json.result).toMatchObject({purged: true, forgotten: true})
    expect(existsSync(join(home, 'local'))).toBe(false)
    expect(existsSync(join(home, 'target.json'))).toBe(false)
  })
})
