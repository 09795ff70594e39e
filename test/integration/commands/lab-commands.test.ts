// canary / mtls / policy / call / lab reset end to end on a real embedded lab (meshd, pod
// processes, proxies) in a temp MESH_HOME. One lab for the file; the tests run in order.
import {writeFileSync, readFileSync} from 'node:fs'
import {join} from 'node:path'
import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {KubeClient} from '../../../src/cluster/client.js'
import {cleanupLab, ensureBuilt, hits, istioVersions, labClient, mesh, ROOT, routeWeights, startLab, tempHome} from './helpers.js'

let home: string
let ingress: string
let client: KubeClient

const vs = (name: string) => client.get({apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', name, namespace: 'mesh-lab'})

beforeAll(async () => {
  ensureBuilt()
  home = tempHome()
  ;({ingress} = await startLab(home))
  client = labClient(home)
}, 180_000)

afterAll(async () => {
  await cleanupLab(home)
}, 60_000)

describe('canary', () => {
  it('lab reset left the baseline: 100/0 on both VirtualServices, PERMISSIVE, no policies', async () => {
    expect(routeWeights(await vs('hello'))).toBe('v1=100,v2=0')
    const st = await mesh(home, ['canary', 'status', '--json'])
    expect(st.status).toBe(0)
    expect(st.json.result.weights).toMatchObject({weights: {v1: 100, v2: 0}, source: 'virtualservice', consistent: true})
    expect(st.json.result.pods.versions.map((v: {version: string; ready: number}) => [v.version, v.ready])).toEqual([
      ['v1', 1],
      ['v2', 1],
    ])
    const mtls = await mesh(home, ['mtls', 'status', '--json'])
    expect(mtls.json.result.namespaces.find((n: {namespace: string}) => n.namespace === 'mesh-lab')).toMatchObject({mode: 'PERMISSIVE', source: 'namespace'})
    const pol = await mesh(home, ['policy', 'list', '--json'])
    expect(pol.json.result).toEqual([])
  })

  it('canary shift 90/10 applies both VirtualServices, waits for the proxies, and status shows it', async () => {
    const r = await mesh(home, ['canary', 'shift', '90/10'])
    expect(r.status).toBe(0)
    expect(r.stdout).toContain('100/0 → 90/10')
    expect(r.stdout).toMatch(/v1 █{18}░{2}\s+90%/)
    expect(r.stdout).toMatch(/acknowledged the change in \d+ ms|no proxy connected yet/)
    expect(routeWeights(await vs('hello'))).toBe('v1=90,v2=10')
    expect(routeWeights(await vs('hello-ingress'))).toBe('v1=90,v2=10')
    const managers = ((await vs('hello'))!.metadata.managedFields as Array<{manager: string}> | undefined)?.map((m) => m.manager)
    expect(managers).toContain('mesh')
    const st = await mesh(home, ['canary', 'status', '--json'])
    expect(st.json.result.weights.weights).toEqual({v1: 90, v2: 10})
    expect(st.json.result.position).toMatchObject({onPlan: true, step: 2})
  })

  it('in a real terminal the spinner stops and the command exits', async () => {
    // a spinner that is never stopped keeps node alive: the command would print and then hang
    const session = `mesh-tty-${process.pid}`
    const socket = join(home, 'tmux.sock')
    const cmd = `env -u CI MESH_HOME=${home} node ${join(ROOT, 'bin', 'run.js')} canary shift 90/10; echo EXIT=$?`
    await execa('tmux', ['-S', socket, 'new-session', '-d', '-x', '120', '-y', '30', '-s', session, cmd + '; sleep 60'])
    try {
      let screen = ''
      for (let i = 0; i < 150 && !/EXIT=\d+/.test(screen); i++) {
        await new Promise((r) => setTimeout(r, 200))
        screen = (await execa('tmux', ['-S', socket, 'capture-pane', '-p', '-t', session])).stdout
      }
      expect(screen).toMatch(/EXIT=0/)
      expect(screen).toContain('90/10')
    } finally {
      await execa('tmux', ['-S', socket, 'kill-server'], {reject: false})
    }
  })

  it('bad input exits 65 with the domain code and changes nothing', async () => {
    const before = await istioVersions(client)
    const cases: Array<[string[], string]> = [
      [['canary', 'shift', '90/20'], 'MESH_WEIGHTS_SUM'],
      [['canary', 'shift', 'v3'], 'MESH_WEIGHTS_FORMAT'],
      [['canary', 'shift', 'abc'], 'MESH_WEIGHTS_FORMAT'],
      [['canary', 'step', '--steps', '50/50,10/90,20/80'], 'MESH_CANARY_STEPS_ORDER'],
      [['mtls', 'loose'], 'MESH_MTLS_MODE'],
      [['policy', 'allow', '--to', 'hello', '--methods', 'FETCH'], 'MESH_HTTP_METHOD'],
      [['canary', 'shift', '50/50', '--context', 'does-not-exist'], 'MESH_CONTEXT_NOT_FOUND'],
    ]
    for (const [args, code] of cases) {
      const r = await mesh(home, [...args, '--json'], {env: {KUBECONFIG: join(home, 'kubeconfig')}})
      expect(r.status, args.join(' ')).toBe(65)
      expect(r.json?.error?.code, args.join(' ')).toBe(code)
    }
    expect(await istioVersions(client)).toEqual(before)
  })

  it('--dry-run prints the YAML, has the server validate it, and changes nothing', async () => {
    const before = await istioVersions(client)
    const r = await mesh(home, ['canary', 'shift', '50/50', '--dry-run'])
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/kind: VirtualService[\s\S]*weight: 50/)
    expect(r.stderr).toContain('server-side dry run')
    const p = await mesh(home, ['policy', 'deny-all', '--dry-run'])
    expect(p.stdout).toContain('kind: AuthorizationPolicy')
    expect(await istioVersions(client)).toEqual(before)
  })

  it('two canary shifts at once are serialized by the lab lock', async () => {
    const [a, b] = await Promise.all([mesh(home, ['canary', 'shift', '50/50', '--json']), mesh(home, ['canary', 'shift', '0/100', '--json'])])
    expect([a.status, b.status]).toEqual([0, 0])
    const ra = a.json.result
    const rb = b.json.result
    const [first, second] = ra.from.v2 === 10 ? [ra, rb] : [rb, ra]
    expect(first.from).toEqual({v1: 90, v2: 10})
    expect(second.from).toEqual(first.to)
    const final = second.to as {v1: number; v2: number}
    expect(routeWeights(await vs('hello'))).toBe(`v1=${final.v1},v2=${final.v2}`)
  })

  it('canary step moves along the plan and at the last step says so, exit 0, nothing changed', async () => {
    await mesh(home, ['canary', 'shift', '50/50'])
    const s = await mesh(home, ['canary', 'step', '--json'])
    expect(s.status).toBe(0)
    expect(s.json.result.shift.to).toEqual({v1: 0, v2: 100})
    const before = await istioVersions(client)
    const last = await mesh(home, ['canary', 'step'])
    expect(last.status).toBe(0)
    expect(last.stdout).toContain('Already at the last step (0/100)')
    expect(await istioVersions(client)).toEqual(before)
  })

  it('after canary shift 0/100 every ingress response says v2', async () => {
    const r = await mesh(home, ['canary', 'shift', '0/100'])
    expect(r.status).toBe(0)
    const answers = await hits(`${ingress}/hello`, 20)
    expect(answers.map((a) => a.status)).toEqual(Array(20).fill(200))
    expect(answers.every((a) => /Hello version: v2/.test(a.body))).toBe(true)
    const back = await mesh(home, ['canary', 'rollback'])
    expect(back.stdout).toContain('0/100 → 100/0')
    const v1 = await hits(`${ingress}/hello`, 20)
    expect(v1.every((a) => /Hello version: v1/.test(a.body))).toBe(true)
  })

  it('Ctrl-C during canary run leaves the last applied step in place and says which', async () => {
    await mesh(home, ['canary', 'rollback'])
    const child = execa(process.execPath, [join(ROOT, 'bin/run.js'), 'canary', 'run', '--analysis', 'none', '--interval', '60s'], {
      cwd: ROOT,
      env: {...process.env, MESH_HOME: home, CI: 'true', NO_COLOR: '1'},
      reject: false,
      stdin: 'ignore',
    })
    let out = ''
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
    let err = ''
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
    // 100/0 is in place; the run gates it (none), waits, … wait for its first pause before 90/10
    const deadline = Date.now() + 60_000
    while (!/waiting .* before 90\/10/.test(err) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    expect(err).toMatch(/waiting .* before 90\/10/)
    child.kill('SIGINT')
    const r = await child
    expect(r.exitCode).toBe(130)
    expect(out).toContain('Interrupted: 100/0 stays in place (step 1 of 4)')
    expect(routeWeights(await vs('hello'))).toBe('v1=100,v2=0')
    const progress = JSON.parse(readFileSync(join(home, 'canary-run.json'), 'utf8'))
    expect(progress.status).toBe('interrupted')
  })

  it('canary run walks the plan through split gates; an inconclusive gate rolls back (exit 2)', async () => {
    const ok = await mesh(home, ['canary', 'run', '--steps', '100/0,50/50,0/100', '--interval', '0s', '--max-requests', '10000', '--json'], {timeoutMs: 240_000})
    expect(ok.status).toBe(0)
    expect(ok.json.result.status).toBe('completed')
    expect(ok.json.result.steps.filter((s: {gate?: {verdict: string}}) => s.gate).every((s: {gate: {verdict: string}}) => s.gate.verdict === 'pass')).toBe(true)
    await mesh(home, ['canary', 'rollback'])
    // a budget of 50 requests cannot decide 90/10 within ±1 point: inconclusive → back to 100/0
    const inc = await mesh(home, ['canary', 'run', '--steps', '100/0,90/10,0/100', '--interval', '0s', '--max-requests', '50', '--tolerance', '1', '--json'])
    expect(inc.status).toBe(2)
    expect(inc.json.result.status).toBe('rolled-back')
    expect(routeWeights(await vs('hello'))).toBe('v1=100,v2=0')
  }, 300_000)
})

describe('effect on traffic: mTLS and authorization', () => {
  it('mtls strict: the legacy caller is reset (000, exit 0), the meshed caller gets 200', async () => {
    await mesh(home, ['canary', 'rollback'])
    const s = await mesh(home, ['mtls', 'strict'])
    expect(s.status).toBe(0)
    expect(s.stdout).toContain('PERMISSIVE → STRICT')
    const legacy = await mesh(home, ['call', '--from', 'legacy'])
    expect(legacy.status).toBe(0)
    expect(legacy.stdout.trim()).toBe('000 connection reset')
    const meshed = await mesh(home, ['call', '--from', 'meshed', '--json'])
    expect(meshed.status).toBe(0)
    expect(meshed.json.result).toMatchObject({from: 'meshed', status: 200, reset: false})
    expect(meshed.json.result.body).toMatch(/Hello version: v1/)
    await mesh(home, ['mtls', 'permissive'])
    const again = await mesh(home, ['call', '--from', 'legacy'])
    // no sidecar, no VirtualService: the legacy caller reaches whichever hello pod it picked
    expect(again.stdout).toMatch(/^200 Hello version: v[12],/)
  })

  it('policy deny-all: the ingress gets 403 RBAC: access denied', async () => {
    expect((await mesh(home, ['policy', 'deny-all'])).status).toBe(0)
    const r = await mesh(home, ['call', '--from', 'ingress'])
    expect(r.stdout.trim()).toBe('403 RBAC: access denied')
    const direct = await hits(`${ingress}/hello`, 3)
    expect(direct.map((d) => d.status)).toEqual([403, 403, 403])
  })

  it('policy allow --methods GET: GET 200, POST 403; policy reset removes only mesh policies', async () => {
    const a = await mesh(home, ['policy', 'allow', '--to', 'hello', '--methods', 'GET', '--json'])
    expect(a.status).toBe(0)
    expect(a.json.result.policy.name).toBe('allow-get-hello')
    expect((await hits(`${ingress}/hello`, 1))[0]!.status).toBe(200)
    expect((await hits(`${ingress}/hello`, 1, {method: 'POST', body: 'x'}))[0]!.status).toBe(403)
    const post = await mesh(home, ['call', '--from', 'ingress', '--method', 'POST', '--json'])
    expect(post.json.result.status).toBe(403)
    // someone else's policy survives mesh policy reset
    await client.apply({apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: {name: 'audit-all', namespace: 'mesh-lab'}, spec: {action: 'AUDIT', rules: [{}]}}, {fieldManager: 'someone'})
    const reset = await mesh(home, ['policy', 'reset', '--json'])
    expect(reset.status).toBe(0)
    expect(reset.json.result.deleted.map((d: {name: string}) => d.name).sort()).toEqual(['allow-get-hello', 'deny-all'])
    expect(reset.json.result.kept.map((d: {name: string}) => d.name)).toEqual(['audit-all'])
    // with no mesh policy left the POST reaches the app again, which (like Istio's helloworld) only serves GET
    expect((await hits(`${ingress}/hello`, 1, {method: 'POST', body: 'x'}))[0]!.status).toBe(405)
    await client.delete({apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', name: 'audit-all', namespace: 'mesh-lab'})
  })
})

describe('real-cluster path and lab reset', () => {
  it('canary shift --context mesh-local treats the embedded API as a real cluster: same apply, istioctl proxy-status wait', async () => {
    const ps = join(home, 'proxy-status.txt')
    writeFileSync(
      ps,
      'NAME                                   CLUSTER     CDS        LDS        EDS        RDS        ECDS        ISTIOD           VERSION\n' +
        'istio-ingressgateway-5d9.istio-system  Kubernetes  SYNCED     SYNCED     SYNCED     SYNCED     NOT SENT    istiod-7f-abc    1.28.1\n',
    )
    const log = join(home, 'istioctl.log')
    const env = {KUBECONFIG: join(home, 'kubeconfig'), MESH_ISTIOCTL: join(ROOT, 'test/fixtures/istioctl/istioctl'), FAKE_ISTIOCTL_PROXY_STATUS: ps, FAKE_ISTIOCTL_LOG: log}
    const r = await mesh(home, ['canary', 'shift', '50/50', '--context', 'mesh-local', '--json'], {env})
    expect(r.status, r.stdout + r.stderr).toBe(0)
    expect(r.json.result.to).toEqual({v1: 50, v2: 50})
    expect(r.json.result.sync).toMatchObject({synced: true, proxies: 1})
    expect(routeWeights(await vs('hello'))).toBe('v1=50,v2=50')
    const calls = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l).argv as string[])
    expect(calls.some((a) => a[0] === 'proxy-status' && a.includes('--context') && a.includes('mesh-local'))).toBe(true)
    const st = await mesh(home, ['canary', 'status', '--context', 'mesh-local', '--json'], {env})
    expect(st.json.result.weights.weights).toEqual({v1: 50, v2: 50})
  })

  it('lab reset returns to baseline and removes mesh policies; running it again changes nothing', async () => {
    await mesh(home, ['canary', 'shift', '0/100'])
    await mesh(home, ['mtls', 'strict', '--mesh'])
    await mesh(home, ['policy', 'deny-all'])
    const r = await mesh(home, ['lab', 'reset', '--json'])
    expect(r.status).toBe(0)
    expect(r.json.result.deletedPolicies).toEqual([{namespace: 'mesh-lab', name: 'deny-all'}])
    expect(r.json.result.deletedPeerAuthentications).toEqual([{namespace: 'istio-system', name: 'default'}])
    expect(routeWeights(await vs('hello'))).toBe('v1=100,v2=0')
    const m = await mesh(home, ['mtls', 'status', '--json'])
    expect(m.json.result.mesh.source).toBe('default')
    const before = await istioVersions(client)
    const again = await mesh(home, ['lab', 'reset', '--json'])
    expect(again.json.result.changed).toBe(false)
    expect(await istioVersions(client)).toEqual(before)
  })
})

describe('a lab that is down', () => {
  it('every command exits 69 with MESH_LAB_DOWN and "run mesh lab up"', async () => {
    const down = tempHome('mesh-cmd-down-')
    try {
      for (const args of [['canary', 'shift', '90/10'], ['canary', 'status'], ['canary', 'step'], ['canary', 'rollback'], ['canary', 'run'], ['mtls', 'strict'], ['mtls', 'status'], ['policy', 'deny-all'], ['policy', 'list'], ['policy', 'reset'], ['call', '--from', 'ingress'], ['lab', 'reset']]) {
        const r = await mesh(down, [...args, '--json'])
        expect(r.status, args.join(' ')).toBe(69)
        expect(r.json?.error).toMatchObject({code: 'MESH_LAB_DOWN', suggestion: 'Run mesh lab up.'})
      }
      // a dry run still shows what would be applied
      const dry = await mesh(down, ['mtls', 'strict', '--dry-run'])
      expect(dry.status).toBe(0)
      expect(dry.stdout).toContain('mode: STRICT')
      expect(dry.stderr).toContain('the lab is down')
    } finally {
      await cleanupLab(down)
    }
  }, 120_000)
})
