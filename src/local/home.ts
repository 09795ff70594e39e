// Where the embedded cluster keeps its files. One mesh home (`$MESH_HOME`, default ~/.mesh)
// is one lab: tests and parallel labs each use their own directory.
import {randomBytes, randomInt} from 'node:crypto'
import {chmodSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync} from 'node:fs'
import {homedir} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {dump} from 'js-yaml'

/** The kubeconfig context (and cluster/user name) of the embedded cluster. */
export const KUBE_CONTEXT = 'mesh-local'

export interface HomePaths {
  home: string
  /** state of the embedded cluster: store, pki, pid/state/log files */
  localDir: string
  /** the API store's journal and snapshot */
  storeDir: string
  /** mesh CA and serving certificates */
  pkiDir: string
  /** meshd's pid; present while meshd runs (stale after a crash) */
  pidFile: string
  /** {pid, apiPort, ingressPort, podNetwork, startedAt}: written once meshd is ready */
  stateFile: string
  logFile: string
  /** token, ports and pod network chosen at first start and kept across restarts (0600) */
  clusterFile: string
  /** kubeconfig for the embedded cluster (0600) */
  kubeconfig: string
}

export function meshHome(env: NodeJS.ProcessEnv = process.env): string {
  const h = env.MESH_HOME?.trim()
  return resolve(h ? h : join(homedir(), '.mesh'))
}

export function homePaths(home: string = meshHome()): HomePaths {
  const root = resolve(home)
  const localDir = join(root, 'local')
  return {
    home: root,
    localDir,
    storeDir: join(localDir, 'store'),
    pkiDir: join(localDir, 'pki'),
    pidFile: join(localDir, 'meshd.pid'),
    stateFile: join(localDir, 'meshd.json'),
    logFile: join(localDir, 'meshd.log'),
    clusterFile: join(localDir, 'cluster.json'),
    kubeconfig: join(root, 'kubeconfig'),
  }
}

/** Choices made once per cluster and kept so the kubeconfig and addresses stay valid. */
export interface ClusterConfig {
  /** bearer token the API requires (64 hex chars) */
  token: string
  /** API port on 127.0.0.1, fixed after the first start */
  apiPort?: number
  /** ingress gateway port on 127.0.0.1, fixed after the first start */
  ingressPort?: number
  /** pod network, `127.X.0.0/16` */
  podNetwork: string
  createdAt: string
}

/** What a running meshd publishes in meshd.json once it serves. */
export interface MeshdState {
  pid: number
  apiPort: number
  ingressPort: number
  podNetwork: string
  startedAt: string
  /** pod runtime in use: 'process' or 'virtual' */
  runtime?: string
  version?: string
  /** the ingress gateway process, once it listens (process runtime only) */
  gateway?: {pid: number; port: number; adminPort?: number}
}

/** Writes a file so readers see the old or the new content, never a torn one. */
export function writeFileAtomic(path: string, data: string, mode = 0o644): void {
  mkdirSync(dirname(path), {recursive: true})
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  const fd = openSync(tmp, 'w', mode)
  try {
    writeSync(fd, data)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  chmodSync(tmp, mode)
  renameSync(tmp, path)
}

function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T
  } catch {
    return undefined
  }
}

/** A random pod network 127.X.0.0/16 with X in 10..250. */
export function randomPodNetwork(): string {
  return `127.${randomInt(10, 251)}.0.0/16`
}

/** The second octet of a `127.X.0.0/16` pod network. */
export function podNetworkOctet(podNetwork: string): number {
  const m = /^127\.(\d{1,3})\.0\.0\/16$/.exec(podNetwork)
  const x = m ? Number(m[1]) : NaN
  if (!(x >= 1 && x <= 254)) throw new Error(`pod network "${podNetwork}" is not of the form 127.X.0.0/16`)
  return x
}

export function readClusterConfig(paths: HomePaths): ClusterConfig | undefined {
  const c = readJson<ClusterConfig>(paths.clusterFile)
  return c && typeof c.token === 'string' && typeof c.podNetwork === 'string' ? c : undefined
}

export function saveClusterConfig(paths: HomePaths, cfg: ClusterConfig): void {
  writeFileAtomic(paths.clusterFile, JSON.stringify(cfg, null, 2) + '\n', 0o600)
}

/** Reads cluster.json, creating it (new token and pod network) on the first start. */
export function loadOrCreateClusterConfig(paths: HomePaths): ClusterConfig {
  const existing = readClusterConfig(paths)
  if (existing) return existing
  mkdirSync(paths.localDir, {recursive: true, mode: 0o700})
  const cfg: ClusterConfig = {
    token: randomBytes(32).toString('hex'),
    podNetwork: randomPodNetwork(),
    createdAt: new Date().toISOString(),
  }
  saveClusterConfig(paths, cfg)
  return cfg
}

export function readMeshdState(paths: HomePaths): MeshdState | undefined {
  const s = readJson<MeshdState>(paths.stateFile)
  return s && typeof s.pid === 'number' && typeof s.apiPort === 'number' ? s : undefined
}

export function readPid(paths: HomePaths): number | undefined {
  try {
    const n = Number(readFileSync(paths.pidFile, 'utf8').trim())
    return Number.isInteger(n) && n > 0 ? n : undefined
  } catch {
    return undefined
  }
}

/** True while the process runs; an exited process its parent has not reaped yet (a zombie) counts as gone. */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (e) {
    // EPERM: it exists but belongs to someone else
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return true // no /proc (macOS): kill(0) is all we know
  }
}

/**
 * True when `pid` is alive and, where the OS lets us look (Linux /proc), is a meshd: a pid
 * file left by a crash may name a number the OS has since given to another process.
 */
export function isMeshdProcess(pid: number): boolean {
  if (!isProcessAlive(pid)) return false
  const cmdline = `/proc/${pid}/cmdline`
  if (!existsSync('/proc/self/cmdline')) return true
  try {
    return readFileSync(cmdline, 'utf8').includes('meshd')
  } catch {
    return false
  }
}

/** The pid of the meshd that owns this home, or undefined (no pid file, or a stale one). */
export function liveMeshdPid(paths: HomePaths): number | undefined {
  const pid = readPid(paths)
  return pid !== undefined && isMeshdProcess(pid) ? pid : undefined
}

export interface KubeconfigInput {
  /** PEM of the CA that signed the API's serving certificate */
  caPem: string
  apiPort: number
  token: string
  context?: string
}

/** The kubeconfig document for the embedded cluster. */
export function kubeconfigYaml(input: KubeconfigInput): string {
  const name = input.context ?? KUBE_CONTEXT
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name,
        cluster: {
          server: `https://127.0.0.1:${input.apiPort}`,
          'certificate-authority-data': Buffer.from(input.caPem).toString('base64'),
        },
      },
    ],
    users: [{name, user: {token: input.token}}],
    contexts: [{name, context: {cluster: name, user: name, namespace: 'default'}}],
    'current-context': name,
    preferences: {},
  }
  return dump(doc, {lineWidth: -1})
}

export function writeKubeconfig(paths: HomePaths, input: KubeconfigInput): void {
  writeFileAtomic(paths.kubeconfig, kubeconfigYaml(input), 0o600)
}
