// The lab's life cycle as library functions (the `mesh lab up/down/status` commands only render
// these), on either kind of target: bring the cluster side up (meshd, or Istio via istioctl),
// apply manifests/ and the Istio baseline as field manager `mesh`, wait for rollouts and proxy
// sync, describe the running lab, and take it down touching only what mesh manages.
import {existsSync, readdirSync, readFileSync} from 'node:fs'
import {createServer, Socket} from 'node:net'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {loadAll} from 'js-yaml'
import type {IstioProfile, MeshWarning} from '../install/istioctl.js'
import {readLabState, type MtlsState, type PolicyInfo, type VersionPods, type WeightsState} from '../lab/state.js'
import {EXIT, MeshError, unavailable} from '../lib/errors.js'
import {PROXY_IMAGE} from '../local/controllers/kubelet.js'
import {KUBE_CONTEXT, homePaths, meshHome, readClusterConfig, type MeshdState} from '../local/home.js'
import {MESH_SIDECAR_MODULE} from '../local/runtime/sidecar-seam.js'
import {labBaseline} from '../mesh/baseline.js'
import {LAB} from '../mesh/lab.js'
import type {Weights} from '../mesh/weights.js'
import type {ApplyResult, KubeClient, KubeObject} from './client.js'
import {FIELD_MANAGER, MANAGED_BY_LABEL, MANAGED_BY_VALUE, describeObject, isManaged, requireConfirmation} from './guard.js'
import {withLabLock} from './lock.js'
import {meshdStatus, stopMeshd} from './meshd-process.js'
import type {OpenedTarget} from './open.js'
import type {PreflightReport, RealTarget} from './real-target.js'
import {forgetTarget, rememberTarget, selectTarget, type TargetDescriptor} from './select.js'
import {EmbeddedTarget, labDownError, type ProxySyncStatus, type Target} from './target.js'

/** What a stage callback receives: a stage starts, ends, or says something on the way. */
export interface LabProgress {
  kind: 'stage' | 'done' | 'info'
  text: string
}
export type OnProgress = (p: LabProgress) => void

const majorMinor = (v: string) => v.split('.').slice(0, 2).join('.')
/**
 * What `lab status` says about the embedded cluster's Istio: the release of the proxy image its
 * pods get (the same minor as the pinned istioctl release; a unit test keeps them together).
 * Not read from install/istioctl.js, which brings istioctl's and the real-cluster code along.
 */
export const EMBEDDED_ISTIO = `embedded (Istio ${majorMinor(PROXY_IMAGE.slice(PROXY_IMAGE.lastIndexOf(':') + 1))} semantics)`
const SIDECAR_ANNOTATION = 'sidecar.istio.io/status'
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

// ------------------------------------------------------------------ lab files

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
const rankOf = (o: KubeObject) => {
  const i = KIND_ORDER.indexOf(o.kind)
  return i < 0 ? KIND_ORDER.length : i
}

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
  return objs.map((o, i) => ({o, i})).sort((a, b) => rankOf(a.o) - rankOf(b.o) || a.i - b.i).map((x) => x.o)
}

/** manifests/ then the Istio baseline from src/mesh (Gateway, DR, VS 100/0, PERMISSIVE). */
export function baselineObjects(): KubeObject[] {
  return [...loadManifests(join(labFilesRoot(), 'manifests')), ...(labBaseline() as unknown as KubeObject[])]
}

/** The namespaces the lab's manifests create (mesh-lab, mesh-legacy). */
export function labNamespaces(objects: KubeObject[] = baselineObjects()): string[] {
  return objects.filter((o) => o.kind === 'Namespace').map((o) => o.metadata.name)
}

const refOf = (o: KubeObject) => ({apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, ...(o.metadata.namespace ? {namespace: o.metadata.namespace} : {})})

/**
 * Server-side apply of the lab's starting point as field manager `mesh`: namespaces first, then
 * each kind group (service accounts, services, Istio config, deployments) in parallel. Results in
 * object order. Istio config goes before the Deployments so new proxies start with it.
 */
export async function applyBaseline(target: Pick<Target, 'client'>, opts: {force?: boolean; dryRun?: boolean; objects?: KubeObject[]} = {}): Promise<ApplyResult[]> {
  const objects = opts.objects ?? baselineObjects()
  const results = new Map<KubeObject, ApplyResult>()
  for (const batch of applyGroups(objects)) {
    const applied = await Promise.all(batch.map((o) => target.client.apply(o, {fieldManager: FIELD_MANAGER, force: opts.force, dryRun: opts.dryRun})))
    batch.forEach((o, i) => results.set(o, applied[i]![0]!))
  }
  return objects.map((o) => results.get(o)!)
}

/** Objects in apply groups: namespaces, service accounts, …, services, Istio config, then Deployments. */
function applyGroups(objects: KubeObject[]): KubeObject[][] {
  // Istio kinds rank just before Deployment (after Service)
  const groupOf = (o: KubeObject) => (o.kind === 'Deployment' ? KIND_ORDER.length : rankOf(o) === KIND_ORDER.length ? KIND_ORDER.length - 0.5 : rankOf(o))
  const groups = [...new Set(objects.map(groupOf))].sort((a, b) => a - b)
  return groups.map((g) => objects.filter((o) => groupOf(o) === g))
}

/**
 * `lab up`'s coarser order, three round trips: namespaces, then everything that lives in them
 * except Deployments (nothing among those needs another to exist), then the Deployments, so new
 * pods find their service accounts and their proxies start with the Istio config.
 */
function ensureGroups(objects: KubeObject[]): KubeObject[][] {
  const phase = (o: KubeObject) => (o.kind === 'Namespace' ? 0 : o.kind === 'Deployment' ? 2 : 1)
  return [0, 1, 2].map((p) => objects.filter((o) => phase(o) === p)).filter((g) => g.length > 0)
}

/**
 * What `lab up` did with one object: created (was missing), adopted (existed without mesh's
 * label; taken over with --force-conflicts), unchanged (there, as the baseline has it), or kept
 * (there, managed by mesh, but different from the baseline — a canary step, a scaled replica:
 * left alone, `mesh lab reset` restores it).
 */
export type EnsureAction = ApplyResult['action'] | 'adopted' | 'kept'

export interface EnsureItem {
  kind: string
  namespace?: string
  name: string
  action: EnsureAction
  /** for kept: why it differs (server-side dry run) */
  reason?: string
}

export interface ApplySummary {
  created: number
  configured: number
  unchanged: number
  kept: number
  /** `Kind namespace/name: action` for each object */
  items: EnsureItem[]
}

export function summarizeApply(results: Array<Pick<ApplyResult, 'kind' | 'name' | 'namespace'> & {action: EnsureAction; reason?: string}>): ApplySummary {
  const count = (...a: EnsureAction[]) => results.filter((r) => a.includes(r.action)).length
  return {
    created: count('created'),
    configured: count('configured', 'adopted'),
    unchanged: count('unchanged'),
    kept: count('kept'),
    items: results.map((r) => ({kind: r.kind, ...(r.namespace ? {namespace: r.namespace} : {}), name: r.name, action: r.action, ...(r.reason ? {reason: r.reason} : {})})),
  }
}

/**
 * `lab up`'s apply: make the lab present without undoing what was done to it since. Missing
 * objects are created (server-side apply, field manager mesh); objects mesh manages are left as
 * they are and compared with the baseline by a server-side dry run (unchanged / kept); objects
 * without mesh's label are MESH_NOT_MANAGED (65) before anything is written, unless
 * `force` (--force-conflicts) adopts them. Namespaces first, Deployments last (ensureGroups).
 */
export async function ensureBaseline(target: Pick<Target, 'client'>, opts: {force?: boolean; objects?: KubeObject[]} = {}): Promise<EnsureItem[]> {
  const client = target.client
  const objects = opts.objects ?? baselineObjects()
  const existing = await Promise.all(objects.map((o) => client.get(refOf(o))))
  const foreign = existing.filter((x): x is KubeObject => Boolean(x) && !isManaged(x as KubeObject))
  if (foreign.length > 0 && !opts.force) {
    throw new MeshError(
      'MESH_NOT_MANAGED',
      `refusing to take over ${foreign.map(describeObject).join(', ')}: ${foreign.length === 1 ? 'it exists' : 'they exist'} without the label ${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`,
      {suggestion: 'Delete or rename those objects, or re-run with --force-conflicts to let mesh manage them.', field: 'metadata.labels', exit: EXIT.invalidInput},
    )
  }
  const one = async (o: KubeObject, before: KubeObject | undefined): Promise<EnsureItem> => {
    const id = {kind: o.kind, ...(o.metadata.namespace ? {namespace: o.metadata.namespace} : {}), name: o.metadata.name}
    // `existing` was just read: apply need not read each object again
    if (!before) return {...id, action: (await client.apply(o, {fieldManager: FIELD_MANAGER, current: [before]}))[0]!.action}
    if (!isManaged(before)) {
      await client.apply(o, {fieldManager: FIELD_MANAGER, force: true, current: [before]})
      return {...id, action: 'adopted'}
    }
    try {
      const [dry] = await client.apply(o, {fieldManager: FIELD_MANAGER, dryRun: true, current: [before]})
      return dry!.action === 'unchanged' ? {...id, action: 'unchanged'} : {...id, action: 'kept', reason: 'differs from the baseline'}
    } catch (e) {
      if ((e as MeshError).code !== 'MESH_APPLY_CONFLICT') throw e
      return {...id, action: 'kept', reason: (e as Error).message.split('\n')[0]}
    }
  }
  const results = new Map<KubeObject, EnsureItem>()
  for (const g of ensureGroups(objects)) {
    const items = await Promise.all(g.map((o) => one(o, existing[objects.indexOf(o)])))
    g.forEach((o, i) => results.set(o, items[i]!))
  }
  return objects.map((o) => results.get(o)!)
}

// ------------------------------------------------------------------ rollout wait

export interface RolloutState {
  ready: boolean
  deployments: Array<{namespace: string; name: string; replicas: number; ready: number; available: boolean}>
  pods: {total: number; ready: number}
  /** what is not ready yet, one line each */
  pending: string[]
}

const podReady = (p: KubeObject) => Boolean((p.status?.conditions as Array<{type: string; status: string}> | undefined)?.some((c) => c.type === 'Ready' && c.status === 'True'))

/** Deployments of the lab Available with every replica ready and updated; every (non-terminating) pod Ready. */
export async function rolloutState(client: KubeClient, namespaces: string[]): Promise<RolloutState> {
  const per = await Promise.all(namespaces.map(async (namespace) => {
    const [deps, pods] = await Promise.all([client.list('apps/v1', 'Deployment', {namespace}), client.list('v1', 'Pod', {namespace})])
    return {deps, pods}
  }))
  const deployments: RolloutState['deployments'] = []
  const pending: string[] = []
  let total = 0
  let ready = 0
  for (const {deps, pods} of per) {
    for (const d of deps) {
      const replicas = Number(d.spec?.replicas ?? 1)
      const st = d.status ?? {}
      const r = Number(st.readyReplicas ?? 0)
      const upd = Number(st.updatedReplicas ?? 0)
      const observed = Number(st.observedGeneration ?? 0) >= Number(d.metadata.generation ?? 0)
      const available = replicas === 0 || Boolean((st.conditions as Array<{type: string; status: string}> | undefined)?.some((c) => c.type === 'Available' && c.status === 'True'))
      deployments.push({namespace: d.metadata.namespace ?? '', name: d.metadata.name, replicas, ready: r, available})
      if (!observed || r < replicas || upd < replicas || !available) pending.push(`deployment ${d.metadata.namespace}/${d.metadata.name}: ${r}/${replicas} ready`)
    }
    for (const p of pods) {
      if (p.metadata.deletionTimestamp) continue
      total++
      if (podReady(p)) ready++
      else {
        const cs = (p.status?.containerStatuses ?? []) as Array<{state?: {waiting?: {reason?: string; message?: string}}}>
        const waiting = cs.find((c) => c.state?.waiting?.reason)?.state?.waiting
        pending.push(`pod ${p.metadata.namespace}/${p.metadata.name}: ${p.status?.phase ?? 'Pending'}${waiting ? ` (${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''})` : ''}`)
      }
    }
  }
  return {ready: pending.length === 0, deployments, pods: {total, ready}, pending}
}

export interface RolloutWaitOptions {
  timeoutMs: number
  /** between checks; with `watch`, only the fallback when no event arrives */
  intervalMs: number
  context: string
  /**
   * Check again when a Pod or Deployment changes (watches) instead of polling every intervalMs:
   * on the embedded cluster, polling four lists every 50 ms costs meshd CPU the starting pods need.
   */
  watch?: boolean
  /** stop waiting (the wait then rejects with the signal's reason) */
  signal?: AbortSignal
}

export async function waitForRollout(client: KubeClient, namespaces: string[], opts: RolloutWaitOptions): Promise<RolloutState> {
  const deadline = Date.now() + opts.timeoutMs
  let changed = false
  let wake: (() => void) | undefined
  const onEvent = () => {
    changed = true
    wake?.()
  }
  const watches = opts.watch
    ? await Promise.all([client.watch('v1', 'Pod', {}, onEvent), client.watch('apps/v1', 'Deployment', {}, onEvent)]).catch(() => [])
    : []
  // a watch that ends (or fails) leaves the fallback interval in charge
  const pause = watches.length ? Math.max(opts.intervalMs, 500) : opts.intervalMs
  try {
    for (;;) {
      opts.signal?.throwIfAborted()
      changed = false
      const s = await rolloutState(client, namespaces)
      if (s.ready) return s
      if (Date.now() >= deadline) {
        throw unavailable(
          'MESH_LAB_NOT_READY',
          `the lab on context "${opts.context}" was not ready within ${Math.round(opts.timeoutMs / 1000)} s: ${s.pending.slice(0, 6).join('; ')}${s.pending.length > 6 ? `; and ${s.pending.length - 6} more` : ''}`,
          `Look at the pods: kubectl get pods -n ${namespaces.join(',')} (or raise --timeout).`,
        )
      }
      if (!changed) {
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer)
            opts.signal?.removeEventListener('abort', done)
            wake = undefined
            resolve()
          }
          const timer = setTimeout(done, Math.min(pause, Math.max(0, deadline - Date.now())))
          opts.signal?.addEventListener('abort', done)
          wake = done
        })
      }
      // status updates come in bursts (pod Ready → endpoints → deployment): check once per burst
      if (watches.length) await sleep(10)
    }
  } finally {
    for (const w of watches) w.stop()
  }
}

// ------------------------------------------------------------------ lab up

export interface LabUpOptions {
  home?: string
  /** --context: a real cluster (else the remembered target, else embedded) */
  context?: string
  kubeconfig?: string
  env?: NodeJS.ProcessEnv
  /** --yes: allow a context that does not look like a local lab cluster */
  yes?: boolean
  /** real clusters: the Istio release to install (default the pinned one) */
  istioVersion?: string
  /** real clusters: istioctl profile (demo, default, minimal) */
  profile?: string
  /** embedded: pod runtime for meshd */
  runtime?: 'process' | 'virtual'
  /** whole wait budget: meshd start, rollouts, proxy sync (default 60 s embedded, 300 s real) */
  timeoutMs?: number
  /** take over fields another field manager owns */
  forceConflicts?: boolean
  onProgress?: OnProgress
}

export interface LabUpResult {
  target: 'embedded' | 'real'
  context: string
  kubeconfig: string
  /** base URL of the ingress gateway (null when it cannot be reached) */
  ingress: string | null
  /** how the ingress is reached: a loopback port (embedded), a LoadBalancer, or kubectl port-forward per command */
  ingressVia: 'embedded' | 'loadbalancer' | 'port-forward' | 'unavailable'
  /** nothing at all changed: meshd/Istio were there and every object was unchanged */
  changed: boolean
  /** embedded: meshd was already running (nothing was started) */
  alreadyRunning: boolean
  apply: ApplySummary
  rollout: {deployments: number; pods: number; ready: number}
  proxies: {synced: boolean; count: number; items: ProxySyncStatus[]}
  /** ms from start to a ready lab */
  elapsedMs: number
  /** ms per stage: cluster (meshd start / preflight + Istio), apply, rollout, sync, ingress */
  stagesMs: Record<string, number>
  warnings: MeshWarning[]
  /** the target later commands use without flags */
  remembered: boolean
  // embedded
  apiServer?: string
  pid?: number
  podNetwork?: string
  runtime?: string
  /** ms from spawn to meshd ready (0 when already running) */
  startMs?: number
  /** pid of a meshd that had died and left its pid file behind */
  recoveredStalePid?: number
  // real
  preflight?: PreflightReport
  istio?: {action: 'installed' | 'unchanged' | 'existing'; version?: string; profile: string; istioctl?: string}
  /** real + port-forward: how to reach the ingress from your own shell */
  portForwardCommand?: string
  /** the `kubectl` prefix for this lab */
  kubectl: string
}

/** lap('name') records the ms since the previous lap (the first since `from`). */
function lapTimer(from: number): ((name: string) => void) & {stages: Record<string, number>} {
  let last = from
  const stages: Record<string, number> = {}
  const lap = (name: string) => {
    const now = Date.now()
    stages[name] = now - last
    last = now
  }
  return Object.assign(lap, {stages})
}

/** --profile and --istio-version checked; the istioctl module loads only when they are given or the target is real. */
async function validateUpOptions(opts: LabUpOptions): Promise<{profile: IstioProfile; istioVersion: string}> {
  const {DEFAULT_ISTIO_VERSION, validateIstioVersion, validateProfile} = await import('../install/istioctl.js')
  return {profile: validateProfile(opts.profile ?? 'demo'), istioVersion: validateIstioVersion(opts.istioVersion ?? DEFAULT_ISTIO_VERSION)}
}

/**
 * The target a descriptor names. The embedded one is built here; real clusters go through
 * open.ts, loaded only then (client-node, execa, istioctl: ~0.6 s of imports).
 */
async function openTargetFor(descriptor: TargetDescriptor, opts: {home: string; env: NodeJS.ProcessEnv; istioVersion?: string}): Promise<OpenedTarget> {
  if (descriptor.kind === 'embedded') return Object.assign(new EmbeddedTarget(opts.home), {descriptor, close: async () => {}})
  const {targetFor} = await import('./open.js')
  return targetFor(descriptor, opts)
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer()
    s.once('error', () => resolve(false))
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
  })
}

/**
 * `mesh lab up`: bring the lab up on the selected target and wait until it is ready. Bad input
 * (profile, version, unknown context, unsafe context without --yes) fails before anything is
 * touched. Running it again changes nothing and says so (`changed: false`).
 */
export async function labUp(opts: LabUpOptions = {}): Promise<LabUpResult> {
  const env = opts.env ?? process.env
  const home = opts.home ?? meshHome(env)
  // the defaults are valid: without flags the embedded path never loads the istioctl module
  const flagged = opts.profile !== undefined || opts.istioVersion !== undefined
  let istio = flagged ? await validateUpOptions(opts) : undefined
  const descriptor = selectTarget({context: opts.context, kubeconfig: opts.kubeconfig, home, env})
  if (descriptor.kind === 'real') requireConfirmation(descriptor.context, 'install Istio and the lab', Boolean(opts.yes))
  if (descriptor.kind === 'real') istio ??= await validateUpOptions(opts)
  return withLabLock(home, async () => {
    const target = await openTargetFor(descriptor, {home, env, ...(istio ? {istioVersion: istio.istioVersion} : {})})
    try {
      return descriptor.kind === 'embedded'
        ? await upEmbedded(target as unknown as EmbeddedTarget & OpenedTarget, descriptor, home, opts)
        : await upReal(target as unknown as RealTarget & OpenedTarget, descriptor, home, {...opts, profile: istio!.profile, istioVersion: istio!.istioVersion})
    } finally {
      await target.close()
    }
  })
}

/** How many proxies the embedded cluster should report: the gateway, plus one per meshed pod once the mesh sidecar exists. */
async function expectedEmbeddedProxies(client: KubeClient, state: MeshdState | undefined, namespaces: string[]): Promise<number> {
  let n = state?.gateway ? 1 : 0
  const sidecarBuilt = existsSync(fileURLToPath(MESH_SIDECAR_MODULE))
  if (sidecarBuilt && state?.runtime === 'process') {
    for (const ns of namespaces) {
      const pods = await client.list('v1', 'Pod', {namespace: ns})
      n += pods.filter((p) => !p.metadata.deletionTimestamp && podReady(p) && p.metadata.annotations?.[SIDECAR_ANNOTATION]).length
    }
  }
  return n
}

async function upEmbedded(target: EmbeddedTarget & OpenedTarget, descriptor: TargetDescriptor, home: string, opts: LabUpOptions): Promise<LabUpResult> {
  const started = Date.now()
  const progress = opts.onProgress ?? (() => {})
  const timeoutMs = opts.timeoutMs ?? 60_000
  const deadline = () => Math.max(1000, started + timeoutMs - Date.now())
  const warnings: MeshWarning[] = []
  const paths = homePaths(home)

  progress({kind: 'stage', text: 'Starting the embedded cluster (meshd)'})
  const before = meshdStatus(home)
  if (!before.running) {
    // the API port is checked by spawnMeshd; the ingress port is ours to check (the gateway would only retry)
    const cfg = readClusterConfig(paths)
    if (cfg?.ingressPort && !(await portFree(cfg.ingressPort))) {
      throw unavailable(
        'MESH_PORT_IN_USE',
        `the lab's ingress port 127.0.0.1:${cfg.ingressPort} is in use by another program`,
        `Stop whatever listens on ${cfg.ingressPort} (e.g. \`ss -ltnp | grep :${cfg.ingressPort}\`), or run mesh lab down --purge to pick new ports.`,
      )
    }
  }
  type Started = {alreadyRunning: boolean; pid: number; state: MeshdState; startMs: number; recoveredStalePid?: number}
  // A new meshd answers on its API before it is ready (it still starts the ingress gateway, ~0.5 s):
  // the lab is applied and the pods start meanwhile; meshd must be ready before the sync stage.
  let apiUp: ((info: {pid: number}) => void) | undefined
  const answers = new Promise<{pid: number}>((resolve) => (apiUp = resolve))
  const installing = target.install({runtime: opts.runtime, timeoutMs: deadline(), onApiReady: apiUp}).then((up) => up.details as Started)
  installing.catch(() => undefined)
  // read the lab's files while meshd boots
  const objects = baselineObjects()
  const namespaces = labNamespaces(objects)
  const first = await Promise.race([answers, installing])
  let d: Started | undefined = 'startMs' in first ? first : undefined
  const noteStart = (s: Started) => {
    if (s.recoveredStalePid !== undefined) {
      warnings.push({code: 'MESH_STALE_PID', message: `a meshd (pid ${s.recoveredStalePid}) had stopped without cleaning up; its state was kept and reused`})
    }
    if (opts.runtime && s.alreadyRunning && s.state.runtime && s.state.runtime !== opts.runtime) {
      warnings.push({code: 'MESH_RUNTIME_KEPT', message: `meshd is already running with the ${s.state.runtime} runtime; --runtime ${opts.runtime} takes effect after mesh lab down`})
    }
  }
  if (d) {
    noteStart(d)
    progress({kind: 'done', text: d.alreadyRunning ? `meshd is already running (pid ${d.pid})` : `meshd is ready in ${(d.startMs / 1000).toFixed(1)} s (pid ${d.pid})`})
  } else {
    progress({kind: 'done', text: `meshd answers in ${((Date.now() - started) / 1000).toFixed(1)} s (pid ${first.pid}); the lab is applied while it finishes starting`})
  }
  const lap = lapTimer(started)
  lap('cluster')

  // a meshd that fails after its API came up explains more than the apply that then fails
  const apply = await applyLab(target, objects, {...opts, waitMs: deadline(), intervalMs: 50}, progress).catch(async (e: unknown) => {
    if (!d) await installing
    throw e
  })
  lap('apply')

  progress({kind: 'stage', text: 'Waiting for the deployments and pods'})
  const stopRollout = new AbortController()
  const rolling = waitForRollout(target.client, namespaces, {timeoutMs: deadline(), intervalMs: 50, context: target.context, watch: true, signal: stopRollout.signal})
  rolling.catch(() => undefined)
  if (!d) {
    try {
      d = await installing
    } catch (e) {
      stopRollout.abort()
      throw e
    }
    noteStart(d)
  }
  const rollout = await rolling
  progress({kind: 'done', text: `${rollout.pods.ready}/${rollout.pods.total} pods ready in ${namespaces.join(', ')}`})
  lap('rollout')

  progress({kind: 'stage', text: 'Waiting for the proxies to acknowledge the config'})
  const state = meshdStatus(home).state ?? d.state
  const minProxies = await expectedEmbeddedProxies(target.client, state, namespaces)
  const sync = await target.waitForSync({minProxies, timeoutMs: deadline()})
  lap('sync')
  progress({kind: 'done', text: `${sync.proxies.length} prox${sync.proxies.length === 1 ? 'y' : 'ies'} SYNCED`})
  if (state.runtime === 'process' && !state.gateway) {
    warnings.push({code: 'MESH_INGRESS_UNAVAILABLE', message: `the ingress gateway is not listening on 127.0.0.1:${state.ingressPort} (see ${join(paths.localDir, 'gateway.log')})`})
  }
  if (state.runtime === 'virtual') {
    warnings.push({code: 'MESH_VIRTUAL_RUNTIME', message: 'pods run virtually (no processes): no ingress gateway or sidecars, so no traffic can flow; use --runtime process for traffic'})
  }

  rememberTarget(home, descriptor)
  const changed = !d.alreadyRunning || apply.created + apply.configured > 0
  return {
    target: 'embedded',
    context: KUBE_CONTEXT,
    kubeconfig: paths.kubeconfig,
    ingress: `http://127.0.0.1:${state.ingressPort}`,
    ingressVia: 'embedded',
    changed,
    alreadyRunning: d.alreadyRunning,
    apply,
    rollout: {deployments: rollout.deployments.length, pods: rollout.pods.total, ready: rollout.pods.ready},
    proxies: {synced: sync.synced, count: sync.proxies.length, items: sync.proxies},
    elapsedMs: Date.now() - started,
    stagesMs: lap.stages,
    warnings,
    remembered: true,
    apiServer: `https://127.0.0.1:${state.apiPort}`,
    pid: d.pid,
    podNetwork: state.podNetwork,
    runtime: state.runtime ?? 'unknown',
    startMs: d.startMs,
    ...(d.recoveredStalePid !== undefined ? {recoveredStalePid: d.recoveredStalePid} : {}),
    kubectl: `kubectl --kubeconfig ${paths.kubeconfig}`,
  }
}

/** A lab namespace still being deleted (lab up right after lab down) refuses new objects: wait until it is gone. */
async function waitNamespacesGone(client: KubeClient, namespaces: string[], timeoutMs: number, intervalMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (const name of namespaces) {
    for (;;) {
      const ns = await client.get({apiVersion: 'v1', kind: 'Namespace', name})
      if (!ns?.metadata.deletionTimestamp) break
      if (Date.now() >= deadline) {
        throw unavailable('MESH_NAMESPACE_TERMINATING', `namespace ${name} is still being deleted`, `Wait until \`kubectl get ns ${name}\` no longer lists it, then re-run mesh lab up.`)
      }
      await sleep(intervalMs)
    }
  }
}

async function applyLab(target: Pick<Target, 'client'>, objects: KubeObject[], opts: LabUpOptions & {waitMs: number; intervalMs: number}, progress: OnProgress): Promise<ApplySummary> {
  progress({kind: 'stage', text: 'Applying manifests/ and the Istio baseline (100/0, PERMISSIVE, no policies)'})
  await waitNamespacesGone(target.client, labNamespaces(objects), opts.waitMs, opts.intervalMs)
  const apply = summarizeApply(await ensureBaseline(target, {force: opts.forceConflicts, objects}))
  const parts = [
    apply.created ? `${apply.created} created` : '',
    apply.configured ? `${apply.configured} taken over` : '',
    apply.unchanged ? `${apply.unchanged} unchanged` : '',
    apply.kept ? `${apply.kept} kept as they are (differ from the baseline; mesh lab reset restores them)` : '',
  ].filter(Boolean)
  progress({kind: 'done', text: apply.created + apply.configured === 0 && apply.kept === 0 ? `all ${apply.unchanged} objects unchanged` : parts.join(', ')})
  return apply
}

async function upReal(target: RealTarget & OpenedTarget, descriptor: TargetDescriptor, home: string, opts: LabUpOptions & {profile: IstioProfile; istioVersion: string}): Promise<LabUpResult> {
  const started = Date.now()
  const progress = opts.onProgress ?? (() => {})
  const timeoutMs = opts.timeoutMs ?? 300_000
  const deadline = () => Math.max(1000, started + timeoutMs - Date.now())
  const warnings: MeshWarning[] = []
  if (opts.runtime) warnings.push({code: 'MESH_FLAG_IGNORED', message: `--runtime ${opts.runtime} applies to the embedded cluster only; ignored on context "${descriptor.context}"`})

  const lap = lapTimer(started)
  progress({kind: 'stage', text: `Preflight checks on context ${descriptor.context}`})
  const preflight = await target.preflight()
  for (const c of preflight.checks) progress({kind: 'info', text: `${c.status === 'ok' ? '✔' : c.status === 'fail' ? '×' : '‼'} ${c.message}`})
  if (!preflight.ok) {
    const failed = preflight.checks.filter((c) => c.status === 'fail').map((c) => c.message)
    throw unavailable('MESH_PREFLIGHT_FAILED', `preflight failed on context "${descriptor.context}": ${failed.join('; ')}`, `Fix the failed checks (kubectl --context ${descriptor.context} cluster-info), then re-run mesh lab up.`)
  }
  progress({kind: 'done', text: `preflight passed (Kubernetes ${preflight.serverVersion ?? 'unknown'})`})

  progress({kind: 'stage', text: `Istio ${opts.istioVersion} (profile ${opts.profile}) through istioctl`})
  const istio = await target.ensureIstio({yes: Boolean(opts.yes), profile: opts.profile, version: opts.istioVersion})
  warnings.push(...istio.warnings)
  progress({
    kind: 'done',
    text: istio.action === 'installed' ? `Istio ${istio.version} installed` : istio.action === 'unchanged' ? `Istio ${istio.version} already installed by mesh; unchanged` : `using the Istio already on the cluster (${istio.version ?? 'version unknown'}); not installed by mesh`,
  })

  lap('cluster')
  const objects = baselineObjects()
  const namespaces = labNamespaces(objects)
  const apply = await applyLab(target, objects, {...opts, waitMs: deadline(), intervalMs: 1000}, progress)
  lap('apply')

  progress({kind: 'stage', text: 'Waiting for the rollouts'})
  const rollout = await waitForRollout(target.client, namespaces, {timeoutMs: deadline(), intervalMs: 1000, context: descriptor.context})
  progress({kind: 'done', text: `${rollout.pods.ready}/${rollout.pods.total} pods ready in ${namespaces.join(', ')}`})
  lap('rollout')

  progress({kind: 'stage', text: 'Waiting for the proxies to be SYNCED (istioctl proxy-status)'})
  const meshed = await meshedNamespaces(target.client, namespaces)
  let minProxies = 0
  for (const ns of meshed) minProxies += (await target.client.list('v1', 'Pod', {namespace: ns})).filter((p) => !p.metadata.deletionTimestamp && podReady(p)).length
  const watched = new Set([...meshed, 'istio-system'])
  const sync = await target.waitForSync({minProxies, timeoutMs: deadline(), match: (row) => watched.has(row.namespace)})
  progress({kind: 'done', text: `${sync.rows.length} prox${sync.rows.length === 1 ? 'y' : 'ies'} SYNCED`})
  lap('sync')

  progress({kind: 'stage', text: 'Finding the ingress gateway'})
  let ingress: string | null = null
  let ingressVia: LabUpResult['ingressVia'] = 'unavailable'
  let portForwardCommand: string | undefined
  try {
    const h = await target.openIngress()
    ingressVia = h.via === 'loadbalancer' ? 'loadbalancer' : 'port-forward'
    ingress = h.url
    if (h.via === 'port-forward') {
      const port = (await target.ingressAddress()).port
      portForwardCommand = `kubectl --context ${descriptor.context} port-forward -n istio-system svc/istio-ingressgateway 8080:${port}`
    }
    progress({kind: 'done', text: h.via === 'loadbalancer' ? `ingress at ${h.url} (LoadBalancer)` : `no LoadBalancer address: reached through kubectl port-forward (${h.url} while this command ran)`})
  } catch (e) {
    warnings.push({code: (e as MeshError).code ?? 'MESH_INGRESS_UNAVAILABLE', message: (e as Error).message})
    progress({kind: 'done', text: 'ingress not reachable (see the warning)'})
  }

  lap('ingress')
  rememberTarget(home, descriptor)
  const kubeArgs = descriptor.kubeconfigPath ? ` --kubeconfig ${descriptor.kubeconfigPath}` : ''
  return {
    target: 'real',
    context: descriptor.context,
    kubeconfig: descriptor.kubeconfigPath,
    ingress,
    ingressVia,
    changed: istio.changed || apply.created + apply.configured > 0,
    alreadyRunning: !istio.changed,
    apply,
    rollout: {deployments: rollout.deployments.length, pods: rollout.pods.total, ready: rollout.pods.ready},
    proxies: {synced: sync.synced, count: sync.rows.length, items: sync.proxies},
    elapsedMs: Date.now() - started,
    stagesMs: lap.stages,
    warnings,
    remembered: true,
    preflight,
    istio: {action: istio.action, ...(istio.version ? {version: istio.version} : {}), profile: opts.profile, ...(istio.istioctl ? {istioctl: istio.istioctl.path} : {})},
    ...(portForwardCommand ? {portForwardCommand} : {}),
    kubectl: `kubectl --context ${descriptor.context}${kubeArgs}`,
  }
}

async function meshedNamespaces(client: KubeClient, namespaces: string[]): Promise<string[]> {
  const out: string[] = []
  for (const name of namespaces) {
    const ns = await client.get({apiVersion: 'v1', kind: 'Namespace', name})
    if (ns?.metadata.labels?.['istio-injection'] === 'enabled') out.push(name)
  }
  return out
}

// ------------------------------------------------------------------ lab down

export interface LabDownOptions {
  home?: string
  context?: string
  kubeconfig?: string
  env?: NodeJS.ProcessEnv
  /** embedded: also remove the cluster's state; real: also uninstall Istio if mesh installed it */
  purge?: boolean
  /** --yes: allow a context that does not look like a local lab cluster */
  yes?: boolean
  timeoutMs?: number
  onProgress?: OnProgress
}

export interface LeftObject {
  kind: string
  namespace?: string
  name: string
  /** why mesh left it */
  reason: string
}

export interface LabDownResult {
  target: 'embedded' | 'real'
  context: string
  // embedded
  wasRunning: boolean
  pid?: number
  /** meshd ignored SIGTERM and was killed */
  killed: boolean
  purged: boolean
  /** embedded: paths removed by --purge */
  removed: string[]
  // real
  /** objects mesh deleted, `Kind namespace/name` */
  deleted: string[]
  /** objects mesh left in place (not managed by mesh, or inside a namespace kept for them) */
  left: LeftObject[]
  istio?: {uninstalled: boolean; warnings: MeshWarning[]}
  warnings: MeshWarning[]
  /** the remembered target was forgotten (--purge) */
  forgotten: boolean
}

export async function labDownEmbedded(opts: {home?: string; purge?: boolean; timeoutMs?: number} = {}): Promise<LabDownResult> {
  const home = opts.home ?? meshHome()
  const r = await stopMeshd({home, purge: opts.purge, timeoutMs: opts.timeoutMs})
  if (opts.purge) forgetTarget(home)
  return {
    target: 'embedded',
    context: KUBE_CONTEXT,
    wasRunning: r.wasRunning,
    ...(r.pid !== undefined ? {pid: r.pid} : {}),
    killed: r.killed,
    purged: Boolean(opts.purge),
    removed: r.removed,
    deleted: [],
    left: [],
    warnings: r.killed ? [{code: 'MESH_MESHD_KILLED', message: 'meshd did not stop in time and was killed; its state is journaled and will be recovered by the next mesh lab up'}] : [],
    forgotten: Boolean(opts.purge),
  }
}

/** `mesh lab down` on the selected target (a remembered real context needs not exist any more only with --purge). */
export async function labDown(opts: LabDownOptions = {}): Promise<LabDownResult> {
  const env = opts.env ?? process.env
  const home = opts.home ?? meshHome(env)
  const descriptor = selectTarget({context: opts.context, kubeconfig: opts.kubeconfig, home, env})
  if (descriptor.kind === 'real') requireConfirmation(descriptor.context, 'remove the lab', Boolean(opts.yes))
  return withLabLock(home, async () => {
    if (descriptor.kind === 'embedded') {
      opts.onProgress?.({kind: 'stage', text: 'Stopping the embedded cluster'})
      return labDownEmbedded({home, purge: opts.purge, timeoutMs: opts.timeoutMs})
    }
    const target = (await openTargetFor(descriptor, {home, env})) as unknown as RealTarget & OpenedTarget
    try {
      return await downReal(target, descriptor, home, opts)
    } finally {
      await target.close()
    }
  })
}

/** Kinds mesh may have created in a lab, deleted in this order (config first, namespaces last). */
const MANAGED_KINDS: Array<{apiVersion: string; kind: string}> = [
  {apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy'},
  {apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication'},
  {apiVersion: 'networking.istio.io/v1', kind: 'VirtualService'},
  {apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule'},
  {apiVersion: 'networking.istio.io/v1', kind: 'Gateway'},
  {apiVersion: 'telemetry.istio.io/v1', kind: 'Telemetry'},
  {apiVersion: 'apps/v1', kind: 'Deployment'},
  {apiVersion: 'v1', kind: 'Service'},
  {apiVersion: 'v1', kind: 'ServiceAccount'},
  {apiVersion: 'v1', kind: 'ConfigMap'},
]

/** Objects every namespace gets from Kubernetes or Istio themselves: not the user's, not a reason to keep a namespace. */
const isSystemObject = (o: KubeObject): boolean =>
  (o.kind === 'ConfigMap' && (o.metadata.name === 'kube-root-ca.crt' || o.metadata.name === 'istio-ca-root-cert')) ||
  (o.kind === 'ServiceAccount' && o.metadata.name === 'default') ||
  (o.kind === 'Secret' && o.type === 'kubernetes.io/service-account-token')

const fmt = (o: {kind: string; metadata: {namespace?: string; name: string}}) => `${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`

async function listOrEmpty(client: KubeClient, apiVersion: string, kind: string, query: {namespace?: string; labelSelector?: string}): Promise<KubeObject[]> {
  try {
    return await client.list(apiVersion, kind, query)
  } catch (e) {
    // a kind the cluster does not serve (e.g. Istio's CRDs already removed) holds nothing of ours
    if ((e as MeshError).code === 'MESH_KIND_UNKNOWN' || /not found|could not find|unknown/i.test((e as Error).message)) return []
    throw e
  }
}

async function downReal(target: RealTarget & OpenedTarget, descriptor: TargetDescriptor, home: string, opts: LabDownOptions): Promise<LabDownResult> {
  const progress = opts.onProgress ?? (() => {})
  const client = target.client
  const selector = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`
  const deleted: string[] = []
  const left: LeftObject[] = []
  const warnings: MeshWarning[] = []
  const labNs = labNamespaces()

  progress({kind: 'stage', text: `Deleting the objects mesh manages on context ${descriptor.context}`})
  for (const k of MANAGED_KINDS) {
    const items = await listOrEmpty(client, k.apiVersion, k.kind, {labelSelector: selector})
    for (const o of items) {
      // the install record goes with Istio (--purge), not with the lab
      if (o.kind === 'ConfigMap' && o.metadata.namespace === 'istio-system' && o.metadata.name === 'mesh-state') continue
      if (await client.delete({apiVersion: k.apiVersion, kind: k.kind, name: o.metadata.name, ...(o.metadata.namespace ? {namespace: o.metadata.namespace} : {})})) deleted.push(fmt(o))
    }
  }
  // a namespace goes only when mesh manages it and nothing of anyone else's is inside
  for (const name of labNs) {
    const ns = await client.get({apiVersion: 'v1', kind: 'Namespace', name})
    if (!ns) continue
    if (!isManaged(ns)) {
      left.push({kind: 'Namespace', name, reason: 'not managed by mesh'})
      continue
    }
    const foreign: KubeObject[] = []
    for (const k of [...MANAGED_KINDS, {apiVersion: 'v1', kind: 'Secret'}, {apiVersion: 'v1', kind: 'Pod'}]) {
      for (const o of await listOrEmpty(client, k.apiVersion, k.kind, {namespace: name})) {
        if (isManaged(o) || isSystemObject(o) || o.metadata.deletionTimestamp) continue
        // pods of mesh's Deployments are being deleted with them
        if (o.kind === 'Pod' && (o.metadata.ownerReferences as unknown[] | undefined)?.length) continue
        if (o.kind === 'Pod' && o.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE) continue
        foreign.push(o)
      }
    }
    if (foreign.length > 0) {
      for (const o of foreign) left.push({kind: o.kind, namespace: name, name: o.metadata.name, reason: 'not managed by mesh'})
      left.push({kind: 'Namespace', name, reason: `kept: it holds ${foreign.length} object(s) mesh does not manage`})
      continue
    }
    if (await client.delete({apiVersion: 'v1', kind: 'Namespace', name})) deleted.push(`Namespace ${name}`)
  }
  // objects carrying other owners' labels in the lab's other namespaces are never listed, so never touched
  progress({kind: 'done', text: `deleted ${deleted.length} object(s)${left.length ? `; left ${left.length} not managed by mesh` : ''}`})

  let istio: LabDownResult['istio']
  if (opts.purge) {
    progress({kind: 'stage', text: 'Uninstalling Istio (only if mesh installed it)'})
    const r = await target.uninstallIstio({yes: Boolean(opts.yes)})
    istio = {uninstalled: r.uninstalled, warnings: r.warnings}
    warnings.push(...r.warnings)
    progress({kind: 'done', text: r.uninstalled ? 'Istio uninstalled' : 'Istio left in place: mesh did not install it'})
    forgetTarget(home)
  }
  return {
    target: 'real',
    context: descriptor.context,
    wasRunning: deleted.length > 0,
    killed: false,
    purged: Boolean(opts.purge),
    removed: [],
    deleted,
    left,
    ...(istio ? {istio} : {}),
    warnings,
    forgotten: Boolean(opts.purge),
  }
}

// ------------------------------------------------------------------ lab status

export interface PodSummary {
  namespace: string
  name: string
  phase: string
  ready: boolean
  podIP: string | null
  restarts: number
  version?: string
  /** why a pod is not running, e.g. ImageNotEmulated */
  reason?: string
}

export interface LabStatus {
  target: 'embedded' | 'real'
  running: true
  context: string
  kubeconfig: string
  apiServer: string
  /** Istio on this target: `embedded (Istio 1.28 semantics)`, or istiod's version */
  istio: {version: string; installedByMesh?: boolean}
  /** base URL of the ingress gateway (real + port-forward: null, each command opens its own) */
  ingress: string | null
  ingressVia: 'embedded' | 'loadbalancer' | 'port-forward' | 'unavailable'
  /** something accepts connections on the ingress (embedded) */
  ingressListening: boolean
  /** the split the `hello` VirtualService routes */
  weights: Weights
  weightsDetail: WeightsState
  /** mTLS of the lab namespace and mesh-wide */
  mtls: {mode: string; namespace: string; mesh: string; detail: MtlsState}
  policies: PolicyInfo[]
  pods: {total: number; ready: number; items: PodSummary[]}
  /** hello pods per version label */
  versions: VersionPods[]
  proxies: {generation?: number; synced: boolean; items: ProxySyncStatus[]; error?: string}
  // embedded
  pid?: number
  startedAt?: string
  podNetwork?: string
  runtime?: string
}

export interface LabStatusOptions {
  home?: string
  context?: string
  kubeconfig?: string
  env?: NodeJS.ProcessEnv
}

function podSummary(p: KubeObject): PodSummary {
  const status = (p.status ?? {}) as {
    phase?: string
    podIP?: string
    conditions?: Array<{type: string; status: string}>
    containerStatuses?: Array<{restartCount?: number; state?: {waiting?: {reason?: string}}}>
  }
  const reason = status.containerStatuses?.find((c) => c.state?.waiting?.reason)?.state?.waiting?.reason
  const version = p.metadata.labels?.[LAB.versionLabel]
  return {
    namespace: p.metadata.namespace ?? '',
    name: p.metadata.name,
    phase: status.phase ?? 'Pending',
    ready: podReady(p) && !p.metadata.deletionTimestamp,
    podIP: status.podIP ?? null,
    restarts: status.containerStatuses?.[0]?.restartCount ?? 0,
    ...(version ? {version} : {}),
    ...(reason ? {reason} : {}),
  }
}

/**
 * The running lab. Embedded and meshd down, or a real context without the lab namespace →
 * MESH_LAB_DOWN (exit 69, "Run mesh lab up.").
 */
export async function labStatus(opts: LabStatusOptions = {}): Promise<LabStatus> {
  const env = opts.env ?? process.env
  const home = opts.home ?? meshHome(env)
  const descriptor = selectTarget({context: opts.context, kubeconfig: opts.kubeconfig, home, env})
  const target = await openTargetFor(descriptor, {home, env})
  try {
    return descriptor.kind === 'embedded' ? await statusEmbedded(target as unknown as EmbeddedTarget, home) : await statusReal(target as unknown as RealTarget & OpenedTarget, descriptor)
  } finally {
    await target.close()
  }
}

async function common(target: Target, namespaces: string[]) {
  const [state, podLists] = await Promise.all([
    readLabState(target, {parts: ['weights', 'mtls', 'policies', 'pods', 'proxies']}),
    Promise.all(namespaces.map((namespace) => target.client.list('v1', 'Pod', {namespace}))),
  ])
  const items = podLists.flat().map(podSummary)
  const nsMode = state.mtls!.namespaces.find((n) => n.namespace === LAB.namespace)?.mode ?? state.mtls!.mesh.mode
  return {
    weights: state.weights!.weights,
    weightsDetail: state.weights!,
    mtls: {mode: nsMode, namespace: LAB.namespace, mesh: state.mtls!.mesh.mode, detail: state.mtls!},
    policies: state.policies!,
    pods: {total: items.length, ready: items.filter((p) => p.ready).length, items},
    versions: state.pods!.versions,
    proxiesState: state.proxies!,
  }
}

async function statusEmbedded(target: EmbeddedTarget, home: string): Promise<LabStatus> {
  const st = meshdStatus(home)
  if (!st.running || !st.state) throw labDownError(home)
  const [c, report, ingressListening] = await Promise.all([common(target, labNamespaces()), target.report(), listening(st.state.ingressPort)])
  return {
    target: 'embedded',
    running: true,
    context: KUBE_CONTEXT,
    kubeconfig: st.paths.kubeconfig,
    apiServer: `https://127.0.0.1:${st.state.apiPort}`,
    istio: {version: EMBEDDED_ISTIO},
    ingress: `http://127.0.0.1:${st.state.ingressPort}`,
    ingressVia: 'embedded',
    ingressListening,
    weights: c.weights,
    weightsDetail: c.weightsDetail,
    mtls: c.mtls,
    policies: c.policies,
    pods: c.pods,
    versions: c.versions,
    proxies: {generation: report.generation, synced: report.synced, items: report.proxies},
    pid: st.state.pid,
    startedAt: st.state.startedAt,
    podNetwork: st.state.podNetwork,
    runtime: st.state.runtime ?? 'unknown',
  }
}

async function statusReal(target: RealTarget & OpenedTarget, descriptor: TargetDescriptor): Promise<LabStatus> {
  const ns = await target.client.get({apiVersion: 'v1', kind: 'Namespace', name: LAB.namespace})
  if (!ns) {
    throw unavailable('MESH_LAB_DOWN', `the lab is not deployed on context "${descriptor.context}" (no namespace ${LAB.namespace})`, 'Run mesh lab up.')
  }
  const [c, istio, addr] = await Promise.all([common(target, labNamespaces()), target.istioPresence(), target.ingressAddress().catch(() => undefined)])
  const ingressVia: LabStatus['ingressVia'] = addr ? (addr.lbUrl ? 'loadbalancer' : 'port-forward') : 'unavailable'
  return {
    target: 'real',
    running: true,
    context: descriptor.context,
    kubeconfig: descriptor.kubeconfigPath,
    apiServer: target.client.server,
    istio: {version: istio.version ?? (istio.present ? 'unknown' : 'not installed'), installedByMesh: Boolean(istio.installedByMesh)},
    ingress: addr?.lbUrl ?? null,
    ingressVia,
    ingressListening: Boolean(addr),
    weights: c.weights,
    weightsDetail: c.weightsDetail,
    mtls: c.mtls,
    policies: c.policies,
    pods: c.pods,
    versions: c.versions,
    proxies: {synced: c.proxiesState.synced, items: c.proxiesState.items, ...(c.proxiesState.error ? {error: c.proxiesState.error} : {})},
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
