// Pods as real processes on random loopback addresses, driven through the compiled runtime
// (dist/), as meshd runs it. Build first: `npm run build` (or npx tsc -p tsconfig.json).
import {spawn, type ChildProcess} from 'node:child_process'
import {existsSync, mkdtempSync, readFileSync, rmSync} from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {LaunchResult, PodLaunch} from '../../../src/local/controllers/pod-runtime.js'
import type {ProcessPodRuntime as Runtime} from '../../../src/local/runtime/process-runtime.js'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const distRuntime = join(root, 'dist/local/runtime/process-runtime.js')

type Ev = {kind: 'exited'; uid: string; code: number | null; signal: string | null} | {kind: 'readiness'; uid: string; ready: boolean}

const randomPodIP = (): string => `127.${1 + Math.floor(Math.random() * 254)}.${Math.floor(Math.random() * 256)}.${1 + Math.floor(Math.random() * 253)}`

let seq = 0
function podOf(image: string, extra: Partial<PodLaunch> = {}): PodLaunch {
  seq++
  return {
    uid: `uid-${process.pid}-${seq}`, name: `pod-${seq}-${Math.random().toString(36).slice(2, 7)}`, namespace: 'rt-test',
    labels: {app: 'test'}, serviceAccount: 'default', podIP: randomPodIP(), image, args: [], env: {},
    containerPorts: [5000], sidecar: false, restartPolicy: 'Always', ...extra,
  }
}

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await probe()
    if (v !== undefined && v !== false) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

function get(host: string, port: number, path: string): Promise<{status: number; body: string}> {
  return new Promise((resolve, reject) => {
    const req = http.get({host, port, path, agent: false}, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => resolve({status: res.statusCode ?? 0, body}))
    })
    req.on('error', reject)
  })
}

const alive = (pid: number): boolean => {
  try {
    // a zombie (dead, not yet reaped by a non-reaping init) counts as gone
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

let stateDir: string
let rt: Runtime
const events: Ev[] = []
const spawned: ChildProcess[] = []
const strayPids: number[] = []

const launched = (r: LaunchResult): number => {
  if (!r.ok) throw new Error(`launch failed: ${r.reason}: ${r.message}`)
  return r.pid
}
const readyEvent = (uid: string, ready = true) => () => events.find((e) => e.kind === 'readiness' && e.uid === uid && e.ready === ready)
const exitEvent = (uid: string) => () => events.find((e): e is Extract<Ev, {kind: 'exited'}> => e.kind === 'exited' && e.uid === uid)

beforeAll(async () => {
  if (!existsSync(distRuntime)) throw new Error(`${distRuntime} missing: run npm run build first`)
  const {ProcessPodRuntime} = (await import(pathToFileURL(distRuntime).href)) as {ProcessPodRuntime: typeof Runtime}
  stateDir = mkdtempSync(join(tmpdir(), 'mesh-runtime-'))
  rt = new ProcessPodRuntime({stateDir, meshd: {url: 'https://127.0.0.1:1', token: 't', caPem: ''}, sidecarImpl: 'passthrough'})
  rt.setListener({
    exited: (uid, code, signal) => events.push({kind: 'exited', uid, code, signal}),
    readiness: (uid, ready) => events.push({kind: 'readiness', uid, ready}),
  })
})

afterAll(async () => {
  await rt?.shutdown()
  for (const c of spawned) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  for (const pid of strayPids) if (alive(pid)) try { process.kill(pid, 'SIGKILL') } catch { /* gone */ }
  if (stateDir) rmSync(stateDir, {recursive: true, force: true})
})

describe('ProcessPodRuntime', () => {
  it('runs helloworld-v1 on its pod IP, reports readiness, and reports a kill -9 as SIGKILL', async () => {
    const pod = podOf('docker.io/istio/examples-helloworld-v1:1.0', {readinessProbe: {httpGet: {path: '/health', port: 5000}}})
    const pid = launched(await rt.launch(pod))
    await until('readiness', readyEvent(pod.uid))

    expect(await get(pod.podIP, 5000, '/hello')).toEqual({status: 200, body: `Hello version: v1, instance: ${pod.name}\n`})
    expect(await get(pod.podIP, 5000, '/health')).toEqual({status: 200, body: 'Helloworld is healthy'})
    expect((await get(pod.podIP, 5000, '/nope')).status).toBe(404)
    // bound to the pod IP only, not to every loopback address
    await expect(get('127.0.0.1', 5000, '/hello').then((r) => r.body)).rejects.toThrow()

    process.kill(pid, 'SIGKILL')
    const exit = await until('exited event', exitEvent(pod.uid))
    expect(exit).toMatchObject({code: null, signal: 'SIGKILL'})
    expect(events.filter((e) => e.uid === pod.uid).map((e) => e.kind === 'readiness' ? `ready=${e.ready}` : 'exited')).toEqual(['ready=true', 'ready=false', 'exited'])
    const log = readFileSync(join(stateDir, 'pods', `rt-test_${pod.name}.log`), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    expect(log.find((l) => l.msg === 'listening')).toMatchObject({address: `${pod.podIP}:5000`})
    expect(log.at(-1)).toMatchObject({src: 'kubelet', msg: 'process exited', signal: 'SIGKILL'})
  })

  it('runs a fortio faulty replica: 503 on every path, status via ?status=, ready by tcpSocket probe', async () => {
    const pod = podOf('fortio/fortio:1.69.0', {
      args: ['server', '-http-port', '5000', '-echo-server-default-params=status=503'],
      readinessProbe: {tcpSocket: {port: 5000}, periodSeconds: 1},
    })
    launched(await rt.launch(pod))
    await until('readiness', readyEvent(pod.uid))
    for (const path of ['/', '/hello', '/health', '/a/b?']) {
      // `/a/b?` has a (bare) query string, so the default params do not apply
      expect((await get(pod.podIP, 5000, path)).status, path).toBe(path.endsWith('?') ? 200 : 503)
    }
    expect((await get(pod.podIP, 5000, '/hello?status=418')).status).toBe(418)
    await rt.terminate(pod.uid)
    expect(await until('exited', exitEvent(pod.uid))).toMatchObject({code: 0, signal: null})
  })

  it('under a sidecar, moves the app to containerPort+30000 and fronts the container port', async () => {
    const pod = podOf('istio/examples-helloworld-v2', {sidecar: true, readinessProbe: {httpGet: {path: '/health', port: 5000}}})
    launched(await rt.launch(pod))
    await until('readiness', readyEvent(pod.uid))
    const body = `Hello version: v2, instance: ${pod.name}\n`
    expect(await get(pod.podIP, 35000, '/hello')).toEqual({status: 200, body})
    expect(await get(pod.podIP, 5000, '/hello')).toEqual({status: 200, body})
    await rt.terminate(pod.uid)
  })

  it('refuses an image it cannot emulate, naming it, and starts nothing', async () => {
    const pod = podOf('docker.io/library/nginx:1.27')
    const r = await rt.launch(pod)
    expect(r).toMatchObject({ok: false, reason: 'ImageNotEmulated'})
    expect(r.ok ? '' : r.message).toContain('"docker.io/library/nginx:1.27"')
    expect(existsSync(join(stateDir, 'pods', `rt-test_${pod.name}.log`))).toBe(false)
  })

  it('finishes an in-flight request on terminate (SIGTERM), then exits 0 and refuses new connections', async () => {
    const pod = podOf('fortio/fortio', {args: ['server', '-http-port', '5000']})
    launched(await rt.launch(pod))
    await until('readiness', readyEvent(pod.uid))
    const slow = get(pod.podIP, 5000, '/slow?delay=1s&status=201')
    // let the request reach the server before the pod is told to stop
    await new Promise((r) => setTimeout(r, 300))
    const stopped = rt.terminate(pod.uid)
    expect(await slow).toMatchObject({status: 201})
    await stopped
    expect(await until('exited', exitEvent(pod.uid))).toMatchObject({code: 0, signal: null})
    await expect(get(pod.podIP, 5000, '/')).rejects.toMatchObject({code: 'ECONNREFUSED'})
  })

  it('runs curl clients: `sleep infinity` keeps running; a one-shot curl prints the body and exits 0', async () => {
    const hello = podOf('istio/examples-helloworld-v1')
    launched(await rt.launch(hello))
    await until('hello ready', readyEvent(hello.uid))

    const sleeper = podOf('curlimages/curl:8.11.1', {command: ['sleep', 'infinity'], containerPorts: []})
    const sleeperPid = launched(await rt.launch(sleeper))
    await until('sleeper ready', readyEvent(sleeper.uid))

    const once = podOf('curlimages/curl', {args: ['-s', `http://${hello.podIP}:5000/hello`], containerPorts: [], restartPolicy: 'Never'})
    launched(await rt.launch(once))
    expect(await until('curl exit', exitEvent(once.uid))).toMatchObject({code: 0})
    const log = readFileSync(join(stateDir, 'pods', `rt-test_${once.name}.log`), 'utf8')
    expect(log).toContain(JSON.stringify(`Hello version: v1, instance: ${hello.name}\n`))

    expect(alive(sleeperPid)).toBe(true)
    expect(exitEvent(sleeper.uid)()).toBeUndefined()
    await Promise.all([rt.terminate(sleeper.uid), rt.terminate(hello.uid)])
  })

  it('leaves no orphan: when its parent is killed with -9, the pod process exits', async () => {
    const pod = podOf('istio/examples-helloworld-v1')
    const parent = spawn(process.execPath, [join(root, 'test/integration/runtime/fixtures/parent.mjs'), pathToFileURL(distRuntime).href, stateDir, JSON.stringify(pod)], {stdio: ['ignore', 'pipe', 'inherit']})
    spawned.push(parent)
    let out = ''
    parent.stdout!.on('data', (c: Buffer) => { out += c.toString() })
    const lines = () => out.split('\n').filter(Boolean).map((l) => JSON.parse(l))
    const launchedPod = await until('parent launched the pod', () => lines().find((l) => 'ok' in l))
    expect(launchedPod).toMatchObject({ok: true})
    strayPids.push(launchedPod.pid)
    await until('pod ready under the parent', () => lines().some((l) => l.ready) || undefined)
    expect((await get(pod.podIP, 5000, '/hello')).status).toBe(200)

    parent.kill('SIGKILL')
    await until('pod process gone', () => !alive(launchedPod.pid) || undefined)
    await expect(get(pod.podIP, 5000, '/hello')).rejects.toMatchObject({code: 'ECONNREFUSED'})
  })
})
