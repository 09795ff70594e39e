// Starting and stopping the meshd daemon of a mesh home from the CLI: spawn it detached,
// wait until it serves, stop it with SIGTERM (SIGKILL after a grace period). ADR 0033.
import {spawn} from 'node:child_process'
import {closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync} from 'node:fs'
import {createServer} from 'node:net'
import {dirname, join, sep} from 'node:path'
import {fileURLToPath} from 'node:url'
import {EXIT, MeshError, unavailable, type ExitCode} from '../lib/errors.js'
import {
  homePaths,
  isProcessAlive,
  liveMeshdPid,
  readClusterConfig,
  readMeshdState,
  readPid,
  writeKubeconfig,
  type HomePaths,
  type MeshdState,
} from '../local/home.js'
import {KubeClient} from './client.js'

/** meshd writes this before exiting when it cannot start (see src/local/meshd.ts). */
const FATAL_PREFIX = 'FATAL '

/** The compiled daemon entry: dist/local/meshd.js (also when this module runs from src/ under vitest). */
export function meshdEntry(): string {
  const here = fileURLToPath(import.meta.url)
  const sibling = join(dirname(here), '..', 'local', 'meshd.js')
  if (existsSync(sibling)) return sibling
  const i = here.lastIndexOf(`${sep}src${sep}`)
  if (i >= 0) return join(here.slice(0, i), 'dist', 'local', 'meshd.js')
  return sibling
}

export interface MeshdStatus {
  paths: HomePaths
  running: boolean
  pid?: number
  /** meshd.json of the running meshd */
  state?: MeshdState
  /** a pid file whose process is gone (meshd crashed or was killed) */
  stalePid?: number
}

export function meshdStatus(home: string): MeshdStatus {
  const paths = homePaths(home)
  const pid = liveMeshdPid(paths)
  if (pid === undefined) {
    const stale = readPid(paths)
    return {paths, running: false, ...(stale !== undefined ? {stalePid: stale} : {})}
  }
  const state = readMeshdState(paths)
  return {paths, running: true, pid, ...(state && state.pid === pid ? {state} : {})}
}

export interface SpawnMeshdOptions {
  home: string
  /** pod runtime for meshd (default: meshd's own default, process) */
  runtime?: 'process' | 'virtual'
  /** give up waiting for readiness after this long (default 30 s) */
  timeoutMs?: number
  env?: NodeJS.ProcessEnv
  /**
   * Called once the new meshd's API answers, which is before meshd is ready (it still starts the
   * ingress gateway): lets `lab up` apply the lab meanwhile. Not called when meshd already ran.
   */
  onApiReady?: (info: {pid: number}) => void
}

export interface SpawnMeshdResult {
  alreadyRunning: boolean
  pid: number
  state: MeshdState
  /** a stale pid file (from a meshd that died) was found and meshd replaced it */
  recoveredStalePid?: number
  /** wall time from spawn to ready (0 when already running) */
  startMs: number
}

/** Starts meshd for `home` unless one already runs there; resolves when it answers /readyz. */
export async function spawnMeshd(opts: SpawnMeshdOptions): Promise<SpawnMeshdResult> {
  const paths = homePaths(opts.home)
  const timeoutMs = opts.timeoutMs ?? 30_000
  const running = meshdStatus(opts.home)
  if (running.running) {
    restoreKubeconfig(paths, running.state)
    const state = await waitReady(paths, running.pid!, Date.now() + timeoutMs, () => undefined)
    return {alreadyRunning: true, pid: running.pid!, state, startMs: 0}
  }
  const cfg = readClusterConfig(paths)
  if (cfg?.apiPort && !(await portFree(cfg.apiPort))) throw portInUse(cfg.apiPort)

  const entry = meshdEntry()
  if (!existsSync(entry)) {
    throw new MeshError('MESH_MESHD_NOT_BUILT', `the meshd daemon is missing at ${entry}`, {suggestion: 'Build mesh first: npm run build.', exit: EXIT.internal})
  }
  mkdirSync(paths.localDir, {recursive: true, mode: 0o700})
  const logOffset = existsSync(paths.logFile) ? statSync(paths.logFile).size : 0
  const fd = openSync(paths.logFile, 'a')
  const started = Date.now()
  let exited: {code: number | null; signal: string | null} | undefined
  try {
    const args = [entry, '--home', paths.home, ...(opts.runtime ? ['--runtime', opts.runtime] : [])]
    const child = spawn(process.execPath, args, {detached: true, stdio: ['ignore', fd, fd], env: opts.env ?? process.env})
    child.on('exit', (code, signal) => (exited = {code, signal}))
    child.unref()
    const pid = child.pid
    if (!pid) throw new MeshError('MESH_MESHD_START_FAILED', 'could not start meshd (no process id)', {suggestion: `See ${paths.logFile}.`, exit: EXIT.unavailable})
    try {
      const state = await waitReady(paths, pid, started + timeoutMs, () => exited, opts.onApiReady)
      return {alreadyRunning: false, pid, state, startMs: Date.now() - started, ...(running.stalePid !== undefined ? {recoveredStalePid: running.stalePid} : {})}
    } catch (e) {
      const fatal = fatalFromLog(paths.logFile, logOffset)
      if (fatal?.code === 'MESH_ALREADY_RUNNING') {
        // another `mesh lab up` won the race: use its meshd
        const other = liveMeshdPid(paths)
        if (other !== undefined) {
          const state = await waitReady(paths, other, started + timeoutMs, () => undefined)
          return {alreadyRunning: true, pid: other, state, startMs: 0}
        }
      }
      if (fatal) throw new MeshError(fatal.code, fatal.message, {suggestion: fatal.suggestion, exit: fatal.exitCode, cause: e})
      if (!exited && isProcessAlive(pid)) process.kill(pid, 'SIGTERM')
      const tail = lastLines(paths.logFile, logOffset, 15)
      const why = exited ? `meshd exited (${exited.signal ?? `code ${exited.code}`}) before it was ready` : `meshd was not ready within ${timeoutMs} ms`
      throw new MeshError('MESH_MESHD_START_FAILED', `${why}; last lines of ${paths.logFile}:\n${tail || '(empty)'}`, {
        suggestion: `Read ${paths.logFile}; run mesh lab down --purge to start from a clean state if it is corrupt.`,
        exit: EXIT.unavailable,
        cause: e,
      })
    }
  } finally {
    closeSync(fd)
  }
}

async function waitReady(paths: HomePaths, pid: number, deadline: number, exited: () => unknown, onApiReady?: (info: {pid: number}) => void): Promise<MeshdState> {
  let client: KubeClient | undefined
  let lastErr: unknown
  for (;;) {
    if (exited()) throw new Error('meshd exited')
    if (onApiReady && readPid(paths) === pid && existsSync(paths.kubeconfig)) {
      // meshd writes the kubeconfig once its API listens (a previous run's names the same port and CA)
      try {
        client ??= KubeClient.forEmbedded(paths.kubeconfig)
        if (String(await client.request<string>('/readyz', {timeoutMs: 2000})).trim() === 'ok') {
          onApiReady({pid})
          onApiReady = undefined
        }
      } catch {
        client = undefined
      }
    }
    const state = readMeshdState(paths)
    if (state && state.pid === pid && existsSync(paths.kubeconfig)) {
      try {
        client ??= KubeClient.forEmbedded(paths.kubeconfig)
        const r = await client.request<string>('/readyz', {timeoutMs: 2000})
        if (String(r).trim() === 'ok') return state
      } catch (e) {
        lastErr = e
        client = undefined
      }
    }
    if (Date.now() > deadline) throw lastErr ?? new Error('timeout')
    if (!isProcessAlive(pid)) throw new Error('meshd exited')
    await sleep(20)
  }
}

/** A running lab whose kubeconfig was deleted gets it back (meshd writes it only at start). */
function restoreKubeconfig(paths: HomePaths, state: MeshdState | undefined): void {
  if (existsSync(paths.kubeconfig) || !state) return
  const cfg = readClusterConfig(paths)
  const caFile = join(paths.pkiDir, 'api', 'ca.crt')
  if (!cfg || !existsSync(caFile)) return
  writeKubeconfig(paths, {caPem: readFileSync(caFile, 'utf8'), apiPort: state.apiPort, token: cfg.token})
}

export interface StopMeshdOptions {
  home: string
  /** SIGKILL after this long (default 15 s) */
  timeoutMs?: number
  /** also remove the cluster's state (store, certificates, pod logs) and the kubeconfig */
  purge?: boolean
}

export interface StopMeshdResult {
  wasRunning: boolean
  pid?: number
  /** SIGTERM was not enough */
  killed: boolean
  /** paths removed by --purge */
  removed: string[]
}

export async function stopMeshd(opts: StopMeshdOptions): Promise<StopMeshdResult> {
  const paths = homePaths(opts.home)
  const pid = liveMeshdPid(paths)
  let killed = false
  if (pid !== undefined) {
    signal(pid, 'SIGTERM')
    const deadline = Date.now() + (opts.timeoutMs ?? 15_000)
    while (isProcessAlive(pid) && Date.now() < deadline) await sleep(50)
    if (isProcessAlive(pid)) {
      signal(pid, 'SIGKILL')
      killed = true
      const hard = Date.now() + 5000
      while (isProcessAlive(pid) && Date.now() < hard) await sleep(50)
    }
  }
  // files a dead meshd could not clean up
  if (liveMeshdPid(paths) === undefined) {
    rmSync(paths.pidFile, {force: true})
    rmSync(paths.stateFile, {force: true})
  }
  const removed: string[] = []
  if (opts.purge) {
    for (const p of [paths.localDir, paths.kubeconfig]) {
      if (existsSync(p)) {
        rmSync(p, {recursive: true, force: true})
        removed.push(p)
      }
    }
  }
  return {wasRunning: pid !== undefined, ...(pid !== undefined ? {pid} : {}), killed, removed}
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig)
  } catch {
    // already gone
  }
}

export function portInUse(port: number): MeshError {
  return unavailable(
    'MESH_PORT_IN_USE',
    `the lab's API port 127.0.0.1:${port} is in use by another program`,
    `Stop whatever listens on ${port} (e.g. \`ss -ltnp | grep :${port}\`), or run mesh lab down --purge to pick a new port.`,
  )
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer()
    s.once('error', () => resolve(false))
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
  })
}

interface FatalLine {
  code: string
  message: string
  suggestion: string
  exitCode: ExitCode
}

function fatalFromLog(path: string, offset: number): FatalLine | undefined {
  const lines = logSince(path, offset).split('\n')
  for (let i = lines.length - 1; i >= 0; i--) {
    const at = lines[i].indexOf(FATAL_PREFIX)
    if (at < 0) continue
    try {
      const f = JSON.parse(lines[i].slice(at + FATAL_PREFIX.length)) as FatalLine
      if (typeof f.code === 'string') return f
    } catch {
      // not ours
    }
  }
  return undefined
}

function logSince(path: string, offset: number): string {
  try {
    return readFileSync(path).subarray(offset).toString('utf8')
  } catch {
    return ''
  }
}

function lastLines(path: string, offset: number, n: number): string {
  return logSince(path, offset).trimEnd().split('\n').slice(-n).join('\n')
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
