// meshd: the embedded cluster's daemon. One process per mesh home: the Kubernetes-compatible
// API on 127.0.0.1, the store, the controllers and the pods they run, the mesh CA and config
// distribution. Started detached by `mesh lab up` (`node dist/local/meshd.js --home <dir>`),
// stopped with SIGTERM by `mesh lab down`. See ADR 0033 for the lock and state files.
import {closeSync, mkdirSync, openSync, readFileSync, rmSync, unlinkSync, writeSync} from 'node:fs'
import type {Server} from 'node:https'
import {join} from 'node:path'
import {createServer, type AddressInfo} from 'node:net'
import {pathToFileURL} from 'node:url'
import {EXIT, MeshError, invalid, isMeshError, unavailable} from '../lib/errors.js'
import {istioAdmission} from './admission.js'
import {createApiServer} from './api/server.js'
import {createServingCa} from './api/serving-cert.js'
import {FileStore} from './api/store.js'
import type {KubeObject} from './api/types.js'
import {GatewaySupervisor, type GatewayInfo} from './controllers/gateway.js'
import {ControllerManager} from './controllers/manager.js'
import type {PodRuntime} from './controllers/pod-runtime.js'
import {VirtualPodRuntime} from './controllers/virtual-runtime.js'
import type {ProxyIdentity, WorkloadSecret} from './dataplane/snapshot.js'
import {ConfigDistributor} from './distribution.js'
import {
  homePaths,
  isMeshdProcess,
  isProcessAlive,
  loadOrCreateClusterConfig,
  meshHome,
  saveClusterConfig,
  writeFileAtomic,
  writeKubeconfig,
  type HomePaths,
  type MeshdState,
} from './home.js'
import type {MeshCa} from './pki/ca.js'

export type RuntimeKind = 'process' | 'virtual'

export interface MeshdOptions {
  home: string
  /** 'process' (default): one OS process per pod; falls back to 'virtual' when unavailable */
  runtime?: RuntimeKind
  /** a ready-made runtime (tests); wins over `runtime` */
  podRuntime?: PodRuntime
  /** write log lines here (default: append to <home>/local/meshd.log) */
  log?: (line: string) => void
  /** fsync store writes (default true) */
  fsync?: boolean
  /** start the ingress gateway process (default true; only with the process runtime) */
  gateway?: boolean
  /**
   * lifetime of workload certificates in seconds (default: env MESH_WORKLOAD_CERT_TTL_SECONDS,
   * else 1 h); each is renewed at half its lifetime. Short values are for rotation tests.
   */
  workloadCertTtlSeconds?: number
}

export interface MeshdHandle {
  paths: HomePaths
  state: MeshdState
  store: FileStore
  controllers: ControllerManager
  distributor: ConfigDistributor
  runtime: PodRuntime
  runtimeKind: RuntimeKind
  server: Server
  stop(): Promise<void>
}

const SEED_NAMESPACES = ['default', 'kube-system', 'kube-public', 'istio-system']

/** Starts meshd in this process. Throws MeshError MESH_ALREADY_RUNNING / MESH_PORT_IN_USE. */
export async function startMeshd(opts: MeshdOptions): Promise<MeshdHandle> {
  const paths = homePaths(opts.home)
  mkdirSync(paths.localDir, {recursive: true, mode: 0o700})
  const log = opts.log ?? fileLogger(paths.logFile)
  acquirePidLock(paths, log)
  const cleanups: Array<() => Promise<void> | void> = [() => releasePidLock(paths)]
  const undo = async () => {
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined)
  }
  try {
    const cfg = loadOrCreateClusterConfig(paths)
    clearStaleStoreLock(paths, log)
    const store = await FileStore.open({dir: paths.storeDir, fsync: opts.fsync ?? true, initialNamespaces: SEED_NAMESPACES})
    cleanups.push(() => store.close())
    const tls = await createServingCa(join(paths.pkiDir, 'api'))
    const workloadTtl = workloadCertTtl(opts.workloadCertTtlSeconds, process.env.MESH_WORKLOAD_CERT_TTL_SECONDS)
    // the mesh CA (and its crypto library) loads on the first proxy subscription, not at start
    let meshCa: Promise<MeshCa> | undefined
    const issueSecret = async (id: ProxyIdentity): Promise<WorkloadSecret> => {
      meshCa ??= import('./pki/ca.js')
        .then((m) => m.loadOrCreateMeshCa(join(paths.pkiDir, 'mesh')))
        .catch((e: unknown) => {
          meshCa = undefined // try again on the next subscription
          throw e
        })
      return (await meshCa).issueFor(id.namespace, id.serviceAccount, workloadTtl === undefined ? {} : {ttlSeconds: workloadTtl})
    }

    const distributor = new ConfigDistributor({store, issueSecret, log})
    const server = createApiServer({
      store,
      token: cfg.token,
      tlsKey: tls.key,
      tlsCert: tls.cert,
      validators: istioAdmission,
      extraRoutes: (req, res) => distributor.handle(req, res),
    })
    const apiPort = await listen(server, cfg.apiPort)
    cleanups.push(() => closeServer(server))
    const ingressPort = cfg.ingressPort ?? (await freePort())
    if (cfg.apiPort !== apiPort || cfg.ingressPort !== ingressPort) saveClusterConfig(paths, {...cfg, apiPort, ingressPort})
    writeKubeconfig(paths, {caPem: tls.caCert, apiPort, token: cfg.token})

    const {runtime, kind} = opts.podRuntime
      ? {runtime: opts.podRuntime, kind: 'virtual' as RuntimeKind}
      : await chooseRuntime(opts.runtime ?? 'process', paths, {url: `https://127.0.0.1:${apiPort}`, token: cfg.token, caPem: tls.caCert}, log)
    const controllers = new ControllerManager({store, runtime, podNetwork: cfg.podNetwork, log})
    distributor.start()
    controllers.start()
    cleanups.push(async () => {
      distributor.stop()
      await controllers.stop()
    })

    const state: MeshdState = {
      pid: process.pid,
      apiPort,
      ingressPort,
      podNetwork: cfg.podNetwork,
      startedAt: new Date().toISOString(),
      runtime: kind,
      version: meshVersion(),
    }
    let ready = false
    const publish = () => writeFileAtomic(paths.stateFile, JSON.stringify(state, null, 2) + '\n')
    // the ingress gateway is a real process: it runs with the process runtime only
    const gateway = kind === 'process' && opts.gateway !== false ? new GatewaySupervisor({
      paths,
      ingressPort,
      log,
      onListening: (info: GatewayInfo) => {
        state.gateway = info
        if (ready) publish()
      },
    }) : undefined
    if (gateway?.available()) {
      cleanups.push(() => gateway.stop())
      await gateway.start()
    } else if (gateway) log('ingress gateway not built (dist/local/dataplane/gateway-main.js missing); no ingress')
    publish()
    ready = true
    cleanups.push(() => rmSync(paths.stateFile, {force: true}))
    log(`meshd ${state.version} ready: api https://127.0.0.1:${apiPort}, ingress port ${ingressPort}, pods ${cfg.podNetwork}, runtime ${kind}, pid ${process.pid}`)

    let stopping: Promise<void> | undefined
    return {
      paths,
      state,
      store,
      controllers,
      distributor,
      runtime,
      runtimeKind: kind,
      server,
      stop: () => (stopping ??= (async () => {
        log('meshd stopping')
        await undo()
        log('meshd stopped')
      })()),
    }
  } catch (e) {
    await undo()
    throw e
  }
}

async function chooseRuntime(
  want: RuntimeKind,
  paths: HomePaths,
  meshd: {url: string; token: string; caPem: string},
  log: (l: string) => void,
): Promise<{runtime: PodRuntime; kind: RuntimeKind}> {
  if (want === 'process') {
    try {
      const mod = (await import('./runtime/process-runtime.js')) as {
        ProcessPodRuntime: new (o: {stateDir: string; meshd: {url: string; token: string; caPem: string}}) => PodRuntime
      }
      return {runtime: new mod.ProcessPodRuntime({stateDir: paths.localDir, meshd}), kind: 'process'}
    } catch (e) {
      log(`process pod runtime unavailable (${(e as Error).message}); pods run virtually (Running and Ready without a process)`)
    }
  }
  return {runtime: new VirtualPodRuntime(), kind: 'virtual'}
}

/** The workload certificate TTL from the option or the env var; undefined = the CA's default (1 h). */
export function workloadCertTtl(option: number | undefined, env: string | undefined): number | undefined {
  const raw = option ?? (env === undefined || env.trim() === '' ? undefined : Number(env))
  if (raw === undefined) return undefined
  // below 2 s a renewal at half the lifetime would race the expiry itself
  if (!Number.isInteger(raw) || raw < 2 || raw > 90 * 24 * 3600) {
    throw invalid(
      'MESH_CERT_TTL_INVALID',
      `MESH_WORKLOAD_CERT_TTL_SECONDS "${option ?? env}" is not a whole number of seconds in 2..7776000`,
      'unset it for the default (3600), or give e.g. 6 to watch certificates rotate every 3 s',
      'MESH_WORKLOAD_CERT_TTL_SECONDS',
    )
  }
  return raw
}

// ------------------------------------------------------------------ pid lock

/** Creates meshd.pid exclusively; a pid file of a dead (or non-meshd) process is stale and replaced. */
export function acquirePidLock(paths: HomePaths, log: (l: string) => void = () => undefined): void {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(paths.pidFile, 'wx', 0o644)
      writeSync(fd, `${process.pid}\n`)
      closeSync(fd)
      return
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
    }
    let pid: number | undefined
    try {
      pid = Number(readFileSync(paths.pidFile, 'utf8').trim()) || undefined
    } catch {
      pid = undefined
    }
    if (pid !== undefined && pid !== process.pid && isMeshdProcess(pid)) {
      throw unavailable(
        'MESH_ALREADY_RUNNING',
        `meshd is already running for ${paths.home} (pid ${pid})`,
        'Use the running lab (mesh lab status), or stop it first with mesh lab down.',
      )
    }
    log(`removing stale pid file ${paths.pidFile} (pid ${pid ?? '?'} is not a running meshd)`)
    try {
      unlinkSync(paths.pidFile)
    } catch {
      // another starter removed it first; try again
    }
  }
  throw unavailable('MESH_ALREADY_RUNNING', `could not take ${paths.pidFile}: another meshd is starting`, 'Wait a moment and run mesh lab status.')
}

/**
 * We hold meshd.pid, so no other meshd uses this home. A store lock naming a process that is
 * gone, or has exited and not been reaped yet (a zombie after kill -9), is left over: drop it.
 */
function clearStaleStoreLock(paths: HomePaths, log: (l: string) => void): void {
  const lock = join(paths.storeDir, 'store.lock')
  try {
    const pid = Number(readFileSync(lock, 'utf8').trim())
    if (pid && pid !== process.pid && !isProcessAlive(pid)) {
      unlinkSync(lock)
      log(`removed the store lock of exited process ${pid}`)
    }
  } catch {
    // no lock file
  }
}

function releasePidLock(paths: HomePaths): void {
  try {
    if (Number(readFileSync(paths.pidFile, 'utf8').trim()) === process.pid) unlinkSync(paths.pidFile)
  } catch {
    // already gone
  }
}

// ------------------------------------------------------------------ network

function listen(server: Server, port: number | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      server.off('listening', onListening)
      if (e.code === 'EADDRINUSE' && port) {
        reject(
          unavailable(
            'MESH_PORT_IN_USE',
            `the lab's API port 127.0.0.1:${port} is in use by another program`,
            `Stop whatever listens on ${port} (e.g. \`ss -ltnp | grep :${port}\`), or remove the lab with mesh lab down --purge to pick a new port.`,
          ),
        )
      } else reject(e)
    }
    const onListening = () => {
      server.off('error', onError)
      resolve((server.address() as AddressInfo).port)
    }
    server.once('error', onError)
    server.once('listening', onListening)
    server.listen(port ?? 0, '127.0.0.1')
  })
}

/** A port nothing listens on right now (for the ingress gateway, which binds it later). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port
      s.close(() => resolve(port))
    })
  })
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve())
    // watches and config streams are long-lived: end them instead of waiting
    server.closeAllConnections()
  })
}

// ------------------------------------------------------------------ process entry

function fileLogger(path: string): (line: string) => void {
  const tty = Boolean(process.stderr.isTTY)
  return (line: string) => {
    const text = `${new Date().toISOString()} ${line}\n`
    try {
      const fd = openSync(path, 'a')
      writeSync(fd, text)
      closeSync(fd)
    } catch {
      // logging must never take meshd down
    }
    if (tty) process.stderr.write(text)
  }
}

function meshVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {version?: string}
    return pkg.version ?? '0.0.0'
  } catch {
    return '0.0.0'
  }
}

/** The line `mesh lab up` looks for in meshd.log when meshd exits before it is ready. */
export const FATAL_PREFIX = 'FATAL '

export function parseArgs(argv: string[]): {home: string; runtime: RuntimeKind} {
  let home = meshHome()
  let runtime: RuntimeKind = process.env.MESH_RUNTIME === 'virtual' ? 'virtual' : 'process'
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined]
    const value = () => inline ?? argv[++i]
    if (flag === '--home') home = value() ?? home
    else if (flag === '--runtime') {
      const v = value()
      if (v !== 'process' && v !== 'virtual') throw new MeshError('MESH_USAGE', `--runtime must be process or virtual, got "${v}"`, {exit: EXIT.usage})
      runtime = v
    } else throw new MeshError('MESH_USAGE', `unknown meshd argument "${a}"`, {suggestion: 'meshd --home <dir> [--runtime process|virtual]', exit: EXIT.usage})
  }
  return {home, runtime}
}

async function main(): Promise<void> {
  let log: (l: string) => void = (l) => process.stderr.write(l + '\n')
  try {
    const args = parseArgs(process.argv.slice(2))
    const paths = homePaths(args.home)
    mkdirSync(paths.localDir, {recursive: true, mode: 0o700})
    log = fileLogger(paths.logFile)
    log(`meshd starting (pid ${process.pid}, home ${paths.home})`)
    const handle = await startMeshd({home: args.home, runtime: args.runtime, log})
    const shutdown = (signal: string) => {
      log(`received ${signal}`)
      const force = setTimeout(() => {
        log('graceful stop took too long; exiting')
        process.exit(EXIT.internal)
      }, 20_000)
      force.unref()
      handle.stop().then(
        () => process.exit(0),
        (e) => {
          log(`stop failed: ${(e as Error).stack ?? e}`)
          process.exit(EXIT.internal)
        },
      )
    }
    process.on('SIGTERM', () => shutdown('SIGTERM'))
    process.on('SIGINT', () => shutdown('SIGINT'))
    process.on('SIGHUP', () => shutdown('SIGHUP'))
  } catch (e) {
    const err = isMeshError(e) ? e : new MeshError('MESH_MESHD_START_FAILED', (e as Error)?.message ?? String(e), {exit: EXIT.internal, cause: e})
    if (!isMeshError(e)) log(String((e as Error)?.stack ?? e))
    log(FATAL_PREFIX + JSON.stringify(err.toJSON()))
    process.exit(err.exit)
  }
}

const entry = process.argv[1]
if (entry && import.meta.url === pathToFileURL(entry).href) {
  process.on('uncaughtException', (e) => {
    // stderr goes to meshd.log when `mesh lab up` started us
    process.stderr.write(`${new Date().toISOString()} meshd: uncaught: ${e.stack ?? e}\n`)
    process.exit(EXIT.internal)
  })
  void main()
}
