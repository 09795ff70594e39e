// The embedded lab's life cycle as library functions (the `mesh lab up/down/status` commands
// only render these): start and stop meshd, describe the running lab, apply the baseline.
import {existsSync, readdirSync, readFileSync} from 'node:fs'
import {Socket} from 'node:net'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {loadAll} from 'js-yaml'
import {EXIT, MeshError} from '../lib/errors.js'
import {KUBE_CONTEXT, homePaths, meshHome} from '../local/home.js'
import {labBaseline} from '../mesh/baseline.js'
import type {ApplyResult, KubeObject} from './client.js'
import {meshdStatus, spawnMeshd, stopMeshd} from './meshd-process.js'
import {EmbeddedTarget, labDownError, type ProxySyncStatus, type Target} from './target.js'

export interface LabUpOptions {
  home?: string
  runtime?: 'process' | 'virtual'
  /** wait for meshd this long (default 30 s) */
  timeoutMs?: number
}

export interface LabUpResult {
  target: 'embedded'
  /** meshd was already running: nothing was started */
  alreadyRunning: boolean
  context: string
  kubeconfig: string
  apiServer: string
  /** base URL of the ingress gateway port */
  ingress: string
  pid: number
  podNetwork: string
  runtime: string
  /** ms from spawn to ready (0 when already running) */
  startMs: number
  /** pid of a meshd that had died and left its pid file behind */
  recoveredStalePid?: number
}

export async function labUp(opts: LabUpOptions = {}): Promise<LabUpResult> {
  const home = opts.home ?? meshHome()
  const paths = homePaths(home)
  const r = await spawnMeshd({home, runtime: opts.runtime, timeoutMs: opts.timeoutMs})
  return {
    target: 'embedded',
    alreadyRunning: r.alreadyRunning,
    context: KUBE_CONTEXT,
    kubeconfig: paths.kubeconfig,
    apiServer: `https://127.0.0.1:${r.state.apiPort}`,
    ingress: `http://127.0.0.1:${r.state.ingressPort}`,
    pid: r.pid,
    podNetwork: r.state.podNetwork,
    runtime: r.state.runtime ?? 'unknown',
    startMs: r.startMs,
    ...(r.recoveredStalePid !== undefined ? {recoveredStalePid: r.recoveredStalePid} : {}),
  }
}

export interface LabDownOptions {
  home?: string
  purge?: boolean
  timeoutMs?: number
}

export interface LabDownResult {
  target: 'embedded'
  wasRunning: boolean
  pid?: number
  /** meshd ignored SIGTERM and was killed */
  killed: boolean
  purged: boolean
  removed: string[]
}

export async function labDownEmbedded(opts: LabDownOptions = {}): Promise<LabDownResult> {
  const r = await stopMeshd({home: opts.home ?? meshHome(), purge: opts.purge, timeoutMs: opts.timeoutMs})
  return {target: 'embedded', wasRunning: r.wasRunning, ...(r.pid !== undefined ? {pid: r.pid} : {}), killed: r.killed, purged: Boolean(opts.purge), removed: r.removed}
}

export interface PodSummary {
  namespace: string
  name: string
  phase: string
  ready: boolean
  podIP: string | null
  restarts: number
  /** why a pod is not running, e.g. ImageNotEmulated */
  reason?: string
}

export interface LabStatus {
  target: 'embedded'
  running: true
  context: string
  kubeconfig: string
  apiServer: string
  /** base URL of the ingress gateway port */
  ingress: string | null
  /** something accepts connections on the ingress port */
  ingressListening: boolean
  pid: number
  startedAt: string
  podNetwork: string
  runtime: string
  pods: {total: number; ready: number; items: PodSummary[]}
  proxies: {generation: number; synced: boolean; items: ProxySyncStatus[]}
}

/** The running lab; MESH_LAB_DOWN (exit 69) when meshd is not running. */
export async function labStatus(opts: {home?: string} = {}): Promise<LabStatus> {
  const home = opts.home ?? meshHome()
  const st = meshdStatus(home)
  if (!st.running || !st.state) throw labDownError(home)
  const target = new EmbeddedTarget(home)
  const pods = await target.client.list('v1', 'Pod')
  const items: PodSummary[] = pods.map((p) => {
    const status = (p.status ?? {}) as {
      phase?: string
      podIP?: string
      conditions?: Array<{type: string; status: string}>
      containerStatuses?: Array<{restartCount?: number; state?: {waiting?: {reason?: string}}}>
    }
    const reason = status.containerStatuses?.find((c) => c.state?.waiting?.reason)?.state?.waiting?.reason
    return {
      namespace: p.metadata.namespace ?? '',
      name: p.metadata.name,
      phase: status.phase ?? 'Pending',
      ready: Boolean(status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')),
      podIP: status.podIP ?? null,
      restarts: status.containerStatuses?.[0]?.restartCount ?? 0,
      ...(reason ? {reason} : {}),
    }
  })
  const report = await target.report()
  const ingressListening = await listening(st.state.ingressPort)
  return {
    target: 'embedded',
    running: true,
    context: KUBE_CONTEXT,
    kubeconfig: st.paths.kubeconfig,
    apiServer: `https://127.0.0.1:${st.state.apiPort}`,
    ingress: `http://127.0.0.1:${st.state.ingressPort}`,
    ingressListening,
    pid: st.state.pid,
    startedAt: st.state.startedAt,
    podNetwork: st.state.podNetwork,
    runtime: st.state.runtime ?? 'unknown',
    pods: {total: items.length, ready: items.filter((p) => p.ready).length, items},
    proxies: {generation: report.generation, synced: report.synced, items: report.proxies},
  }
}

function listening(port: number, timeoutMs = 300): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket()
    const done = (ok: boolean) => {
      s.destroy()
      resolve(ok)
    }
    s.setTimeout(timeoutMs, () => done(false))
    s.once('error', () => done(false))
    s.connect(port, '127.0.0.1', () => done(true))
  })
}

// ------------------------------------------------------------------ baseline

/** The directory holding manifests/ and configs/ (the package root). */
export function labFilesRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'manifests'))) return dir
    dir = dirname(dir)
  }
  throw new MeshError('MESH_LAB_FILES_MISSING', 'cannot find the lab manifests/ directory next to the mesh installation', {
    suggestion: 'Reinstall mesh; the package ships manifests/ and configs/.',
    exit: EXIT.internal,
  })
}

const KIND_ORDER = ['Namespace', 'ServiceAccount', 'ConfigMap', 'Secret', 'Service', 'Deployment']

/** Every object in the YAML files of a directory (sorted by file name), in apply order. */
export function loadManifests(dir: string): KubeObject[] {
  const files = readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
  const objs: KubeObject[] = []
  for (const f of files) {
    for (const doc of loadAll(readFileSync(join(dir, f), 'utf8'))) {
      if (doc && typeof doc === 'object' && 'kind' in doc) objs.push(doc as KubeObject)
    }
  }
  const rank = (o: KubeObject) => {
    const i = KIND_ORDER.indexOf(o.kind)
    return i < 0 ? KIND_ORDER.length : i
  }
  return objs.map((o, i) => ({o, i})).sort((a, b) => rank(a.o) - rank(b.o) || a.i - b.i).map((x) => x.o)
}

/**
 * Applies the lab's starting point: manifests/ (namespace, hello v1/v2, clients) and the
 * Istio baseline from src/mesh (100/0, PERMISSIVE, no policies), server-side as `mesh`.
 */
export async function applyBaseline(target: Target, opts: {force?: boolean; dryRun?: boolean} = {}): Promise<ApplyResult[]> {
  const objects = [...loadManifests(join(labFilesRoot(), 'manifests')), ...(labBaseline() as unknown as KubeObject[])]
  return target.client.apply(objects, {fieldManager: 'mesh', force: opts.force, dryRun: opts.dryRun})
}
