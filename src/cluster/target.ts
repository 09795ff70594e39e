// What differs between the embedded cluster and a real one, behind one small interface:
// bring Istio up/down, reach the ingress, read proxy sync state, wait for propagation.
// Everything else in mesh talks to `target.client` (the Kubernetes API) and nothing else.
import {existsSync} from 'node:fs'
import {EXIT, MeshError, unavailable} from '../lib/errors.js'
import {PROXY_PORTS, type ProxySyncStatus} from '../local/dataplane/snapshot.js'
import {KUBE_CONTEXT, homePaths, meshHome, type HomePaths} from '../local/home.js'
import {KubeClient} from './client.js'
import {meshdStatus, spawnMeshd, stopMeshd, type SpawnMeshdResult, type StopMeshdResult} from './meshd-process.js'

export type {ProxySyncStatus}

export interface SyncResult {
  /** every proxy acknowledged `generation` (and at least `minProxies` were connected) */
  synced: boolean
  /** the config generation that was waited for */
  generation: number
  proxies: ProxySyncStatus[]
  waitedMs: number
}

export interface WaitForSyncOptions {
  /**
   * Embedded: a store resourceVersion; resolves once the config containing every write up to
   * it is acknowledged. Default: everything written so far.
   */
  generation?: number
  /** default 30 s; then MESH_SYNC_TIMEOUT (exit 69) */
  timeoutMs?: number
  /** wait until at least this many proxies are connected (default 0) */
  minProxies?: number
}

export interface InstallOptions {
  /** embedded: pod runtime for meshd */
  runtime?: 'process' | 'virtual'
  timeoutMs?: number
  /** embedded: called when a newly started meshd's API answers, before meshd is ready (see spawnMeshd) */
  onApiReady?: (info: {pid: number}) => void
}

export interface InstallResult {
  alreadyInstalled: boolean
  details: Record<string, unknown>
}

export interface UninstallOptions {
  /** embedded: also remove the cluster's state and kubeconfig */
  purge?: boolean
  timeoutMs?: number
}

export interface UninstallResult {
  wasInstalled: boolean
  details: Record<string, unknown>
}

export interface Target {
  readonly kind: 'embedded' | 'real'
  /** kubeconfig context */
  readonly context: string
  readonly kubeconfigPath: string
  /** the Kubernetes API of this target (throws MESH_LAB_DOWN when the embedded lab is down) */
  readonly client: KubeClient
  /** base URL of the ingress gateway, e.g. http://127.0.0.1:41234 */
  ingressUrl(): Promise<string>
  /** waits until the proxies acknowledged the config (a number is taken as the generation) */
  waitForSync(opts?: number | WaitForSyncOptions): Promise<SyncResult>
  proxyStatus(): Promise<ProxySyncStatus[]>
  /** brings the cluster side up (embedded: start meshd; real: install Istio) */
  install(opts?: InstallOptions): Promise<InstallResult>
  uninstall(opts?: UninstallOptions): Promise<UninstallResult>
  /**
   * Base URL of a proxy's admin endpoint (Envoy's :15000: /stats/prometheus, /clusters):
   * the ingress gateway, or the sidecar of a pod. Optional; undefined when this target cannot
   * reach it (then counter evidence is unavailable). Added for mesh verify (ADR 0121).
   */
  proxyAdminUrl?(proxy: ProxyRef): Promise<string | undefined>
}

/** A proxy: the ingress gateway, or the sidecar of one pod. */
export type ProxyRef = 'gateway' | {namespace: string; pod: string}

/** What `kubectl exec` gives back. */
export interface ExecResult {
  exitCode: number
  stdout: string
  stderr: string
}

export interface ExecOptions {
  /** container to run in (Istio pods also hold istio-proxy) */
  container?: string
  /** default 30 s */
  timeoutMs?: number
}

/** A target that can run a command inside a workload's pod (real clusters: kubectl exec). */
export interface PodExec {
  /** `workload` as kubectl names it, e.g. `deploy/curl` */
  execInPod(namespace: string, workload: string, command: string[], opts?: ExecOptions): Promise<ExecResult>
}

export const canExec = (t: unknown): t is PodExec => typeof (t as Partial<PodExec>)?.execInPod === 'function'

/** GET /mesh/v1/proxy-status answer (see src/local/distribution.ts). */
export interface ProxyStatusReport {
  generation: number
  synced: boolean
  /** store resourceVersion the current config reflects */
  covered: number
  proxies: ProxySyncStatus[]
}

export function labDownError(home: string): MeshError {
  return unavailable('MESH_LAB_DOWN', `the embedded lab is not running (mesh home ${home})`, 'Run mesh lab up.')
}

/** The embedded cluster: meshd in the mesh home, context mesh-local. */
export class EmbeddedTarget implements Target {
  readonly kind = 'embedded' as const
  readonly context = KUBE_CONTEXT
  readonly paths: HomePaths
  private cached?: KubeClient

  constructor(home: string = meshHome()) {
    this.paths = homePaths(home)
  }

  get home(): string {
    return this.paths.home
  }

  get kubeconfigPath(): string {
    return this.paths.kubeconfig
  }

  get client(): KubeClient {
    if (!this.cached) {
      if (!existsSync(this.paths.kubeconfig)) throw labDownError(this.paths.home)
      this.cached = KubeClient.forEmbedded(this.paths.kubeconfig, KUBE_CONTEXT)
    }
    return this.cached
  }

  /** meshd's published state; MESH_LAB_DOWN when it is not running. */
  running() {
    const st = meshdStatus(this.paths.home)
    if (!st.running || !st.state) throw labDownError(this.paths.home)
    return st.state
  }

  async ingressUrl(): Promise<string> {
    return `http://127.0.0.1:${this.running().ingressPort}`
  }

  async proxyStatus(): Promise<ProxySyncStatus[]> {
    return (await this.report()).proxies
  }

  async report(): Promise<ProxyStatusReport> {
    this.running()
    return this.client.request<ProxyStatusReport>('/mesh/v1/proxy-status')
  }

  async waitForSync(opts?: number | WaitForSyncOptions): Promise<SyncResult> {
    const o: WaitForSyncOptions = typeof opts === 'number' ? {generation: opts} : (opts ?? {})
    this.running()
    const started = Date.now()
    const deadline = started + (o.timeoutMs ?? 30_000)
    const generation = o.generation ?? (await this.storeVersion())
    const min = o.minProxies ?? 0
    let last: ProxyStatusReport | undefined
    for (;;) {
      const remaining = Math.max(0, deadline - Date.now())
      last = await this.client.request<ProxyStatusReport>('/mesh/v1/proxy-status', {
        query: {wait: generation, timeoutMs: remaining},
        timeoutMs: remaining + 5000,
      })
      const target = Math.min(generation, last.generation)
      const included = generation <= last.generation || generation <= (last.covered ?? 0)
      const ok = included && last.proxies.every((p) => p.acked >= target) && last.proxies.length >= min
      if (ok) return {synced: true, generation, proxies: last.proxies, waitedMs: Date.now() - started}
      if (Date.now() >= deadline) break
      await new Promise((r) => setTimeout(r, 50))
    }
    const behind = last.proxies.filter((p) => p.acked < Math.min(generation, last!.generation)).map((p) => `${p.proxy} (${p.state}, acked ${p.acked})`)
    throw new MeshError(
      'MESH_SYNC_TIMEOUT',
      `proxies did not acknowledge config generation ${generation} within ${o.timeoutMs ?? 30_000} ms` +
        (behind.length ? `: ${behind.join(', ')}` : `: ${last.proxies.length} of ${min} expected proxies connected`),
      {suggestion: 'Check the proxies with mesh lab status; a pod may be restarting.', exit: EXIT.unavailable},
    )
  }

  async install(opts: InstallOptions = {}): Promise<InstallResult> {
    const r: SpawnMeshdResult = await spawnMeshd({home: this.paths.home, runtime: opts.runtime, timeoutMs: opts.timeoutMs, ...(opts.onApiReady ? {onApiReady: opts.onApiReady} : {})})
    this.cached = undefined
    return {alreadyInstalled: r.alreadyRunning, details: {...r}}
  }

  /** The gateway's admin port from meshd.json; a sidecar's admin listens on <podIP>:15000. */
  async proxyAdminUrl(proxy: ProxyRef): Promise<string | undefined> {
    const st = this.running()
    if (proxy === 'gateway') return st.gateway?.adminPort ? `http://127.0.0.1:${st.gateway.adminPort}` : undefined
    const pod = await this.client.get({apiVersion: 'v1', kind: 'Pod', name: proxy.pod, namespace: proxy.namespace})
    const ip = pod?.status?.podIP as string | undefined
    return ip ? `http://${ip}:${PROXY_PORTS.admin}` : undefined
  }

  async uninstall(opts: UninstallOptions = {}): Promise<UninstallResult> {
    const r: StopMeshdResult = await stopMeshd({home: this.paths.home, purge: opts.purge, timeoutMs: opts.timeoutMs})
    this.cached = undefined
    return {wasInstalled: r.wasRunning, details: {...r}}
  }

  /** The store's current resourceVersion: every write so far is at or below it. */
  private async storeVersion(): Promise<number> {
    const list = await this.client.request<{metadata?: {resourceVersion?: string}}>('/api/v1/namespaces', {query: {limit: 1}})
    return Number(list.metadata?.resourceVersion ?? 0)
  }
}
