// One pod = one process (dist/local/runtime/pod-main.js), started by ProcessPodRuntime.
// It runs the emulated app of the pod's image on the pod's loopback address and, for meshed
// pods, the sidecar in front of it. stdout/stderr go to the pod's log file as JSON lines.
// It stops gracefully on SIGTERM and exits on its own when meshd (its parent) goes away.

import http from 'node:http'
import net from 'node:net'
import type {PodLaunch} from '../controllers/pod-runtime.js'
import {handlerFor, runCurl, tcpEcho} from './apps.js'
import {planPod, type AppListener} from './images.js'
import {appPort} from './paths.js'
import {POD_ENV, type PodInit, type PodMessage, type StartedListener} from './protocol.js'
import {startSidecar, type StartedSidecar} from './sidecar-seam.js'

type Level = 'info' | 'warn' | 'error'

let podRef = ''
function log(level: Level, msg: string, fields: Record<string, unknown> = {}, src = 'pod'): void {
  process.stdout.write(`${JSON.stringify({time: new Date().toISOString(), level, src, pod: podRef, msg, ...fields})}\n`)
}

function send(msg: PodMessage): void {
  if (process.send && process.connected) process.send(msg, undefined, {}, () => {})
}

function readPod(): PodLaunch {
  const raw = process.env[POD_ENV] ?? process.argv[2]
  if (!raw) throw new Error(`no pod given: set ${POD_ENV} to the PodLaunch JSON`)
  const pod = JSON.parse(raw) as PodLaunch
  if (!pod || typeof pod.podIP !== 'string' || typeof pod.name !== 'string') throw new Error(`${POD_ENV} is not a PodLaunch`)
  return pod
}

function readInit(): Promise<PodInit> {
  const fallback: PodInit = {type: 'init', meshd: {url: '', token: '', caPem: ''}, stateDir: process.cwd(), sidecarImpl: 'auto'}
  if (!process.send || !process.connected) return Promise.resolve(fallback)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no init message from the runtime within 10 s')), 10_000)
    const onMessage = (m: unknown): void => {
      if ((m as PodInit)?.type !== 'init') return
      clearTimeout(timer)
      process.off('message', onMessage)
      resolve(m as PodInit)
    }
    process.on('message', onMessage)
  })
}

// ---------------------------------------------------------------------------------------------

interface Running {
  close(): Promise<void>
}

let draining = false

function listen(server: net.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen({host, port}, () => {
      server.off('error', reject)
      resolve()
    })
  })
}

async function startHttp(l: AppListener, host: string, port: number, hostname: string): Promise<Running> {
  const handler = handlerFor(l.behaviour, hostname)
  if (!handler) throw new Error(`listener ${l.name} has no HTTP behaviour`)
  const server = http.createServer((req, res) => {
    // finishing in-flight work during a stop: answer, then close the connection
    if (draining) res.setHeader('Connection', 'close')
    try {
      handler(req, res)
    } catch (error) {
      log('error', 'handler failed', {error: String(error)})
      if (!res.headersSent) {
        res.statusCode = 500
        res.end()
      } else res.destroy()
    }
  })
  // generous idle keep-alive so proxies with connection pools rarely race a server-side close
  server.keepAliveTimeout = 60_000
  server.headersTimeout = 61_000
  await listen(server, host, port)
  return {
    close: () => new Promise<void>((resolve) => {
      const idle = setInterval(() => server.closeIdleConnections(), 50)
      server.close(() => {
        clearInterval(idle)
        resolve()
      })
      server.closeIdleConnections()
    }),
  }
}

async function startTcp(host: string, port: number): Promise<Running> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    tcpEcho(s)
  })
  await listen(server, host, port)
  return {
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve())
      for (const s of sockets) s.end()
    }),
  }
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const pod = readPod()
  podRef = `${pod.namespace}/${pod.name}`
  process.title = `mesh-pod ${podRef}`
  const graceMs = (pod.terminationGracePeriodSeconds ?? 5) * 1000
  const running: Running[] = []
  let sidecar: StartedSidecar | undefined
  let stopping = false

  const stop = async (reason: string): Promise<void> => {
    if (stopping) return
    stopping = true
    draining = true
    log('info', 'stopping', {reason})
    send({type: 'stopping', reason})
    // the runtime SIGKILLs after the grace period; this cap matters when meshd is gone
    setTimeout(() => {
      log('warn', 'grace period over, exiting with work in flight', {graceMs})
      process.exit(0)
    }, graceMs)
    await Promise.all([...running.map((r) => r.close()), sidecar?.stop()])
    log('info', 'stopped', {reason})
    process.exit(0)
  }

  process.on('SIGTERM', () => void stop('SIGTERM'))
  process.on('SIGINT', () => void stop('SIGINT'))
  // meshd gone: the IPC channel closes, or (without IPC) we get re-parented
  process.on('disconnect', () => void stop('parent-gone'))
  const parent = process.ppid
  setInterval(() => {
    if (process.ppid !== parent) void stop('parent-gone')
  }, 1000).unref()

  const init = await readInit()
  const planned = planPod(pod)
  if (!planned.ok) {
    log('error', planned.message, {reason: planned.reason})
    process.exit(2)
  }
  const {plan} = planned
  log('info', 'starting', {image: pod.image, podIP: pod.podIP, sidecar: pod.sidecar, pid: process.pid})
  for (const n of plan.notEmulated) log('warn', `not emulated: ${n}`)

  const listeners: StartedListener[] = []
  for (const l of plan.listeners) {
    const port = appPort(l.port, pod.sidecar)
    running.push(l.behaviour.kind === 'tcp-echo' ? await startTcp(pod.podIP, port) : await startHttp(l, pod.podIP, port, pod.env.HOSTNAME ?? pod.name))
    listeners.push({name: l.name, address: pod.podIP, port})
    log('info', 'listening', {listener: l.name, address: `${pod.podIP}:${port}`, imagePort: l.port})
  }

  if (pod.sidecar && !stopping) {
    const appPorts = pod.containerPorts.map((containerPort) => ({containerPort, appPort: appPort(containerPort, true)}))
    sidecar = await startSidecar({pod, appPorts, meshd: init.meshd, stateDir: init.stateDir}, init.sidecarImpl, (level, msg, fields) => log(level, msg, fields, 'sidecar'))
    if (sidecar.ready) {
      // as in Istio, a meshed pod is not ready before its proxy has configuration
      const since = performance.now()
      const slow = setInterval(() => log('warn', 'sidecar still waiting for its first configuration from meshd', {waitedMs: Math.round(performance.now() - since)}), 10_000)
      await sidecar.ready.finally(() => clearInterval(slow))
      log('info', 'sidecar configured', {waitedMs: Math.round(performance.now() - since)})
    }
  }
  if (stopping) return
  send({type: 'started', listeners, sidecar: sidecar?.kind})

  const main = plan.main
  switch (main.kind) {
    case 'serve':
      return
    case 'sleep':
      // a ref'd timer keeps an idle client alive even without an IPC channel
      if (main.ms === null) setInterval(() => {}, 1 << 30)
      else setTimeout(() => process.exit(0), main.ms)
      return
    case 'exit':
      process.stderr.write(`${JSON.stringify({time: new Date().toISOString(), level: 'error', src: 'app', pod: podRef, stream: 'stderr', msg: main.stderr})}\n`)
      process.exit(main.code)
      return
    case 'curl': {
      const code = await runCurl(main.request, {outbound: sidecar?.outbound}, {
        stdout: (text) => log('info', text, {stream: 'stdout'}, 'app'),
        stderr: (text) => log('error', text, {stream: 'stderr'}, 'app'),
      })
      log('info', 'curl finished', {exitCode: code})
      process.exit(code)
    }
  }
}

main().catch((error: unknown) => {
  const e = error as NodeJS.ErrnoException
  log('error', 'pod failed to start', {error: e?.message ?? String(error), code: e?.code})
  process.exit(1)
})
