// The real-cluster side of the target interface: preflight against the cluster's API, Istio
// through istioctl, the ingress through a LoadBalancer address or `kubectl port-forward`, and
// config propagation through `istioctl proxy-status`.
import {
  ApiextensionsV1Api,
  AppsV1Api,
  AuthorizationV1Api,
  CoreV1Api,
  VersionApi,
  type KubeConfig,
  type V1Service,
} from '@kubernetes/client-node'
import {execa, type ResultPromise} from 'execa'
import {EXIT, MeshError, unavailable} from '../lib/errors.js'
import {
  DEFAULT_ISTIO_VERSION,
  ensureIstioctl,
  installIstio,
  runIstioctl,
  uninstallIstio,
  type IstioProfile,
  type IstioctlLocation,
  type MeshWarning,
  type UninstallIstioResult,
} from '../install/istioctl.js'
import {parseProxyStatus, summarizeSync, type ProxyStatusRow, type SyncSummary} from '../install/proxy-status.js'
import {ISTIO_NAMESPACE, readInstallRecord, writeInstallRecord, type InstallRecord} from '../install/record.js'
import {PROXY_PORTS} from '../local/dataplane/snapshot.js'
import {KubeClient} from './client.js'
import {requireConfirmation} from './guard.js'
import {childKubeconfig, kubeConfigFor, kubeconfigSource} from './kubeconfig.js'
import type {TargetDescriptor} from './select.js'
import type {ExecOptions, ExecResult, InstallOptions, InstallResult, PodExec, ProxyRef, ProxySyncStatus, SyncResult, Target, UninstallOptions, UninstallResult} from './target.js'

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'unknown'

export interface PreflightCheck {
  id: string
  status: CheckStatus
  message: string
}

export type Permission = 'allowed' | 'denied' | 'unknown'

export interface IstioPresence {
  /** Istio's CRDs or istiod are there */
  present: boolean
  /** the istio-system namespace exists (alone it does not mean Istio is installed) */
  namespace: boolean
  /** istiod's image tag, when istiod is found */
  version?: string
  /** set when mesh installed this Istio (istio-system/mesh-state) */
  installedByMesh?: InstallRecord
  evidence: string[]
}

export interface PreflightReport {
  context: string
  server?: string
  reachable: boolean
  /** gitVersion from /version, e.g. v1.32.2 */
  serverVersion?: string
  permissions: Record<string, Permission>
  istio?: IstioPresence
  checks: PreflightCheck[]
  /** no check failed */
  ok: boolean
}

export interface IngressHandle {
  /** base URL of the ingress gateway, e.g. http://127.0.0.1:41234 */
  url: string
  via: 'loadbalancer' | 'port-forward' | 'embedded'
  /** stop the port-forward (no-op for a LoadBalancer) */
  close(): Promise<void>
}

export interface WaitForSyncOptions {
  /** accepted for the Target interface; istiod's acks mean "latest pushed", so it is not compared (ADR 0084) */
  generation?: number
  timeoutMs?: number
  intervalMs?: number
  /** which proxies must be in sync; default all */
  match?: (row: ProxyStatusRow) => boolean
  /** wait until at least this many matching proxies are listed; default 1 */
  minProxies?: number
  signal?: AbortSignal
}

export interface SyncReport {
  summary: SyncSummary
  rows: ProxyStatusRow[]
  polls: number
}

/** A proxy-status row that also reads as the embedded cluster's ProxySyncStatus. */
export type RealProxyStatus = ProxyStatusRow & ProxySyncStatus

/** What RealTarget.waitForSync answers: istioctl's view plus the Target interface's SyncResult. */
export type RealSyncResult = SyncReport & SyncResult

/** Target.install on a real cluster: ensureIstio's options (all optional; --yes defaults off). */
export interface RealInstallOptions extends InstallOptions {
  yes?: boolean
  profile?: IstioProfile
  version?: string
  revision?: string
  signal?: AbortSignal
}

export interface RealUninstallOptions extends UninstallOptions {
  yes?: boolean
  signal?: AbortSignal
}

export interface EnsureIstioOptions {
  profile?: IstioProfile
  version?: string
  revision?: string
  /** --yes: allow changing a context that is not a local lab cluster */
  yes: boolean
  signal?: AbortSignal
}

export interface EnsureIstioResult {
  /** installed: mesh ran istioctl install; unchanged: the same Istio mesh installed was there; existing: someone else's Istio is used as is */
  action: 'installed' | 'unchanged' | 'existing'
  changed: boolean
  version?: string
  istioctl?: IstioctlLocation
  warnings: MeshWarning[]
}

/**
 * What every target offers the commands. The colleague-owned `Target` interface in
 * src/cluster/target.ts is the reference; this mirrors what RealTarget implements.
 */
export interface RealTargetShape {
  readonly kind: 'real'
  readonly context: string
  readonly kubeconfigPath: string
  kubeConfig(): KubeConfig
  preflight(): Promise<PreflightReport>
  ensureIstio(opts: EnsureIstioOptions): Promise<EnsureIstioResult>
  uninstallIstio(opts: {yes: boolean; signal?: AbortSignal}): Promise<UninstallIstioResult>
  ingress(opts?: IngressOptions): Promise<IngressHandle>
  proxyStatus(): Promise<RealProxyStatus[]>
  waitForSync(opts?: number | WaitForSyncOptions): Promise<RealSyncResult>
  close(): Promise<void>
}

export interface RealTargetOptions {
  context: string
  /** one kubeconfig path or a KUBECONFIG-style list; empty = kubectl's defaults */
  kubeconfigPath?: string
  env?: NodeJS.ProcessEnv
  home?: string
  /** pinned Istio version for downloads and checks */
  istioVersion?: string
  /** kubectl binary; default MESH_KUBECTL or `kubectl` */
  kubectl?: string
}

export interface IngressOptions {
  /** how long to wait for a LoadBalancer address before port-forwarding; default 5 s */
  lbWaitMs?: number
  /** how long kubectl may take to report its forwarding port; default 20 s */
  portForwardTimeoutMs?: number
  signal?: AbortSignal
}

export const INGRESS_SERVICE = 'istio-ingressgateway'

const statusOf = (e: unknown): number | undefined => {
  const err = e as {code?: number; statusCode?: number}
  return typeof err?.code === 'number' ? err.code : err?.statusCode
}
const firstLine = (e: unknown) => String((e as Error)?.message ?? e).split('\n')[0]
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms)
    signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), {once: true})
  })

/** `v1.32.2+k3s1` → [1, 32] */
export function parseServerVersion(gitVersion: string): [number, number] | undefined {
  const m = /^v?(\d+)\.(\d+)/.exec(gitVersion)
  return m ? [Number(m[1]), Number(m[2])] : undefined
}

/** The local port in kubectl's "Forwarding from 127.0.0.1:<port> -> <target>" line. */
export function parsePortForwardPort(text: string): number | undefined {
  const m = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(text)
  return m ? Number(m[1]) : undefined
}

/** The ingress's http port and, if the service has one, its LoadBalancer base URL. */
export function ingressFromService(svc: V1Service): {port: number; lbUrl?: string} {
  const ports = svc.spec?.ports ?? []
  const http = ports.find((p) => p.name === 'http2') ?? ports.find((p) => p.name === 'http') ?? ports.find((p) => p.port === 80) ?? ports[0]
  const port = http?.port ?? 80
  const lb = svc.spec?.type === 'LoadBalancer' ? svc.status?.loadBalancer?.ingress?.[0] : undefined
  const host = lb?.ip ?? lb?.hostname
  if (!host) return {port}
  const h = host.includes(':') ? `[${host}]` : host
  return {port, lbUrl: `http://${h}${port === 80 ? '' : `:${port}`}`}
}

/** A proxy's overall state from its per-xDS cells, in the embedded cluster's words. */
export function syncStateOf(row: ProxyStatusRow): ProxySyncStatus['state'] {
  const states = Object.values(row.xds).map((x) => x?.state)
  if (states.some((s) => s === 'STALE' || s === 'UNKNOWN')) return 'STALE'
  if (states.length > 0 && states.every((s) => s === 'NOT SENT' || s === 'IGNORED')) return 'NOT_SENT'
  return 'SYNCED'
}

/** Adds the Target interface's fields to a proxy-status row (no generations on a real cluster: 0). */
export function asProxySyncStatus(row: ProxyStatusRow): RealProxyStatus {
  return {...row, proxy: row.id, kind: /ingressgateway|egressgateway/.test(row.pod) ? 'gateway' : 'sidecar', sent: 0, acked: 0, state: syncStateOf(row)}
}

export class RealTarget implements RealTargetShape, Target, PodExec {
  readonly kind = 'real' as const
  readonly context: string
  readonly kubeconfigPath: string
  private readonly env: NodeJS.ProcessEnv
  private readonly home?: string
  private readonly istioVersion: string
  private readonly kubectl: string
  private kc?: KubeConfig
  private istioctl?: IstioctlLocation
  private readonly forwards = new Set<ResultPromise>()
  private cachedClient?: KubeClient
  private ingressHandle?: Promise<IngressHandle>
  private adminForwards = new Map<string, Promise<string>>()

  constructor(opts: RealTargetOptions) {
    this.context = opts.context
    this.kubeconfigPath = opts.kubeconfigPath ?? ''
    this.env = opts.env ?? process.env
    this.home = opts.home
    this.istioVersion = opts.istioVersion ?? DEFAULT_ISTIO_VERSION
    this.kubectl = opts.kubectl ?? this.env.MESH_KUBECTL ?? 'kubectl'
  }

  static fromDescriptor(d: TargetDescriptor, opts: Omit<RealTargetOptions, 'context' | 'kubeconfigPath'> = {}): RealTarget {
    if (d.kind !== 'real') throw new MeshError('MESH_INTERNAL', `RealTarget cannot serve a ${d.kind} target`, {exit: EXIT.internal})
    return new RealTarget({...opts, context: d.context, kubeconfigPath: d.kubeconfigPath})
  }

  /** client-node config for this context (validates the context exists) */
  kubeConfig(): KubeConfig {
    if (!this.kc) {
      const src = this.kubeconfigPath ? kubeconfigSource(this.kubeconfigPath, this.env) : {env: this.env}
      this.kc = kubeConfigFor({...src, context: this.context}).kc
    }
    return this.kc
  }

  /** The cluster's Kubernetes API (the same client the embedded target uses). */
  get client(): KubeClient {
    this.cachedClient ??= new KubeClient(this.kubeConfig())
    return this.cachedClient
  }

  /**
   * Target.ingressUrl: the ingress() handle, opened once and kept (a port-forward lives until
   * close()). A failed attempt is not cached.
   */
  async ingressUrl(): Promise<string> {
    return (await this.openIngress()).url
  }

  /** The kept ingress handle (url and how it is reached), opening it on first use. */
  openIngress(opts?: IngressOptions): Promise<IngressHandle> {
    const h = (this.ingressHandle ??= this.ingress(opts))
    h.catch(() => {
      if (this.ingressHandle === h) this.ingressHandle = undefined
    })
    return h
  }

  /** Target.install: ensureIstio (needs yes: true off local lab contexts). */
  async install(opts: RealInstallOptions = {}): Promise<InstallResult> {
    const r = await this.ensureIstio({yes: opts.yes ?? false, profile: opts.profile, version: opts.version, revision: opts.revision, signal: opts.signal})
    return {alreadyInstalled: !r.changed, details: {...r}}
  }

  /** Target.uninstall: istioctl uninstall when mesh installed this Istio (needs yes: true off local lab contexts). */
  async uninstall(opts: RealUninstallOptions = {}): Promise<UninstallResult> {
    const r = await this.uninstallIstio({yes: opts.yes ?? false, signal: opts.signal})
    return {wasInstalled: r.uninstalled, details: {...r}}
  }

  private get childKube() {
    return this.kubeconfigPath ? childKubeconfig(this.kubeconfigPath) : {args: [], env: {}}
  }

  async preflight(): Promise<PreflightReport> {
    const kc = this.kubeConfig()
    const server = kc.getCurrentCluster()?.server
    const checks: PreflightCheck[] = []
    const report: PreflightReport = {context: this.context, server, reachable: false, permissions: {}, checks, ok: false}
    try {
      const v = await kc.makeApiClient(VersionApi).getCode()
      report.reachable = true
      report.serverVersion = v.gitVersion
      const mm = parseServerVersion(v.gitVersion)
      if (mm && (mm[0] > 1 || mm[1] >= 28)) checks.push({id: 'api', status: 'ok', message: `API server ${server} answers, Kubernetes ${v.gitVersion}`})
      else checks.push({id: 'api', status: 'warn', message: `Kubernetes ${v.gitVersion} at ${server} is older than 1.28; Istio ${this.istioVersion} may not support it`})
    } catch (e) {
      checks.push({id: 'api', status: 'fail', message: `API server ${server ?? '(none)'} of context "${this.context}" is not reachable: ${firstLine(e)}`})
      report.ok = false
      return report
    }
    const wanted: Array<{key: string; group: string; resource: string}> = [
      {key: 'create namespaces', group: '', resource: 'namespaces'},
      {key: 'create deployments', group: 'apps', resource: 'deployments'},
      {key: 'create virtualservices', group: 'networking.istio.io', resource: 'virtualservices'},
    ]
    const authz = kc.makeApiClient(AuthorizationV1Api)
    for (const w of wanted) {
      let p: Permission = 'unknown'
      try {
        const r = await authz.createSelfSubjectAccessReview({body: {apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: {resourceAttributes: {verb: 'create', group: w.group, resource: w.resource}}}})
        p = r.status?.allowed ? 'allowed' : 'denied'
      } catch {
        // servers without the authorization API (or that refuse the review) leave it unknown
        p = 'unknown'
      }
      report.permissions[w.key] = p
    }
    const denied = Object.entries(report.permissions).filter(([, p]) => p === 'denied').map(([k]) => k)
    const unknown = Object.entries(report.permissions).filter(([, p]) => p === 'unknown').map(([k]) => k)
    if (denied.length > 0) checks.push({id: 'permissions', status: 'fail', message: `not allowed to ${denied.join(', ')}`})
    else if (unknown.length > 0) checks.push({id: 'permissions', status: 'unknown', message: `could not check permission to ${unknown.join(', ')} (SelfSubjectAccessReview not answered)`})
    else checks.push({id: 'permissions', status: 'ok', message: 'allowed to create namespaces, deployments and virtualservices'})
    report.istio = await this.detectIstio()
    const i = report.istio
    checks.push({
      id: 'istio',
      status: 'ok',
      message: i.present
        ? `Istio ${i.version ?? '(version unknown)'} is installed${i.installedByMesh ? ' (by mesh)' : ' (not by mesh: it will be used as is)'}`
        : 'Istio is not installed yet',
    })
    report.ok = checks.every((c) => c.status !== 'fail')
    return report
  }

  /** Whether Istio is on the cluster, its version, and whether mesh installed it (read-only). */
  istioPresence(): Promise<IstioPresence> {
    return this.detectIstio()
  }

  /** The ingress service's http port and LoadBalancer URL if it has one; opens nothing. */
  async ingressAddress(): Promise<{port: number; lbUrl?: string}> {
    const core = this.kubeConfig().makeApiClient(CoreV1Api)
    try {
      return ingressFromService(await core.readNamespacedService({name: INGRESS_SERVICE, namespace: ISTIO_NAMESPACE}))
    } catch (e) {
      if (statusOf(e) === 404) throw unavailable('MESH_INGRESS_NOT_FOUND', `no service ${ISTIO_NAMESPACE}/${INGRESS_SERVICE} on context "${this.context}"`, 'Install Istio with an ingress gateway (profile demo or default): `mesh lab up --context <ctx>`.')
      throw unavailable('MESH_CLUSTER_API', `reading ${ISTIO_NAMESPACE}/${INGRESS_SERVICE} failed: ${firstLine(e)}`, 'Check the cluster is reachable: `kubectl get svc -n istio-system`.', e)
    }
  }

  private async detectIstio(): Promise<IstioPresence> {
    const kc = this.kubeConfig()
    const evidence: string[] = []
    let crd = false
    let namespace = false
    let version: string | undefined
    let istiod = false
    try {
      await kc.makeApiClient(ApiextensionsV1Api).readCustomResourceDefinition({name: 'virtualservices.networking.istio.io'})
      crd = true
      evidence.push('CRD virtualservices.networking.istio.io')
    } catch (e) {
      if (statusOf(e) !== 404) evidence.push(`CRDs not readable (${firstLine(e)})`)
    }
    try {
      await kc.makeApiClient(CoreV1Api).readNamespace({name: ISTIO_NAMESPACE})
      namespace = true
      evidence.push(`namespace ${ISTIO_NAMESPACE}`)
    } catch {
      // absent or not readable
    }
    if (namespace) {
      try {
        const d = await kc.makeApiClient(AppsV1Api).readNamespacedDeployment({name: 'istiod', namespace: ISTIO_NAMESPACE})
        istiod = true
        const image = d.spec?.template?.spec?.containers?.[0]?.image ?? ''
        version = /:([^:@/]+)(@.*)?$/.exec(image)?.[1]
        evidence.push(`deployment ${ISTIO_NAMESPACE}/istiod${version ? ` (${version})` : ''}`)
      } catch {
        // no istiod
      }
    }
    let installedByMesh: InstallRecord | undefined
    if (namespace) {
      try {
        installedByMesh = await readInstallRecord(kc)
      } catch {
        installedByMesh = undefined
      }
    }
    return {present: crd || istiod, namespace, ...(version ? {version} : {}), ...(installedByMesh ? {installedByMesh} : {}), evidence}
  }

  private async istioctlPath(version = this.istioVersion): Promise<IstioctlLocation> {
    if (!this.istioctl) this.istioctl = await ensureIstioctl({version, home: this.home, env: this.env})
    return this.istioctl
  }

  /**
   * Install Istio unless it is there: an Istio mesh installed with the same version and
   * profile is left alone; someone else's Istio is used as is (warning). Needs --yes on
   * contexts that are not local lab clusters.
   */
  async ensureIstio(opts: EnsureIstioOptions): Promise<EnsureIstioResult> {
    const version = opts.version ?? this.istioVersion
    const profile = opts.profile ?? 'demo'
    requireConfirmation(this.context, 'install Istio', opts.yes)
    const istio = await this.detectIstio()
    if (istio.present) {
      const rec = istio.installedByMesh
      if (rec && rec.istioVersion === version && rec.profile === profile && (rec.revision ?? '') === (opts.revision ?? '')) {
        return {action: 'unchanged', changed: false, version, warnings: []}
      }
      if (!rec) {
        return {
          action: 'existing',
          changed: false,
          version: istio.version,
          warnings: [{code: 'MESH_ISTIO_EXISTING', message: `context "${this.context}" already runs Istio ${istio.version ?? '(version unknown)'} that mesh did not install; using it as is`}],
        }
      }
      // ours, but another version/profile: istioctl install upgrades in place
    }
    const istioctl = await ensureIstioctl({version, home: this.home, env: this.env, signal: opts.signal})
    const r = await installIstio({
      profile,
      version,
      context: this.context,
      kubeconfig: this.kubeconfigPath || undefined,
      revision: opts.revision,
      istioctl: istioctl.path,
      env: this.env,
      home: this.home,
      signal: opts.signal,
    })
    this.istioctl = istioctl
    await writeInstallRecord(this.kubeConfig(), {
      istioVersion: version,
      profile,
      installedAt: new Date().toISOString(),
      ...(opts.revision ? {revision: opts.revision} : {}),
      ...(r.clientVersion ? {istioctlVersion: r.clientVersion} : {}),
    })
    const warnings = [...r.warnings]
    if (profile === 'minimal') warnings.push({code: 'MESH_NO_INGRESS_GATEWAY', message: 'profile minimal installs no ingress gateway; the lab cannot be reached from outside the cluster'})
    return {action: 'installed', changed: true, version, istioctl, warnings}
  }

  /** `istioctl uninstall --purge` when mesh installed this Istio; needs --yes off local lab contexts. */
  async uninstallIstio(opts: {yes: boolean; signal?: AbortSignal}): Promise<UninstallIstioResult> {
    requireConfirmation(this.context, 'uninstall Istio', opts.yes)
    return uninstallIstio({
      context: this.context,
      kubeconfig: this.kubeconfigPath || undefined,
      kc: this.kubeConfig(),
      env: this.env,
      home: this.home,
      version: this.istioVersion,
      istioctl: this.istioctl?.path,
      signal: opts.signal,
    })
  }

  /**
   * The ingress gateway's base URL: its LoadBalancer address if one appears within lbWaitMs,
   * else a `kubectl port-forward` that lives until close() (or the target's close()).
   */
  async ingress(opts: IngressOptions = {}): Promise<IngressHandle> {
    const core = this.kubeConfig().makeApiClient(CoreV1Api)
    const readSvc = async () => {
      try {
        return await core.readNamespacedService({name: INGRESS_SERVICE, namespace: ISTIO_NAMESPACE})
      } catch (e) {
        if (statusOf(e) === 404) {
          throw unavailable('MESH_INGRESS_NOT_FOUND', `no service ${ISTIO_NAMESPACE}/${INGRESS_SERVICE} on context "${this.context}"`, 'Install Istio with an ingress gateway (profile demo or default): `mesh lab up --context <ctx>`.')
        }
        throw unavailable('MESH_CLUSTER_API', `reading ${ISTIO_NAMESPACE}/${INGRESS_SERVICE} failed: ${firstLine(e)}`, 'Check the cluster is reachable: `kubectl get svc -n istio-system`.', e)
      }
    }
    let svc = await readSvc()
    let {port, lbUrl} = ingressFromService(svc)
    if (!lbUrl && svc.spec?.type === 'LoadBalancer') {
      const deadline = Date.now() + (opts.lbWaitMs ?? 5_000)
      while (!lbUrl && Date.now() < deadline && !opts.signal?.aborted) {
        await sleep(500, opts.signal)
        svc = await readSvc()
        ;({port, lbUrl} = ingressFromService(svc))
      }
    }
    if (lbUrl) return {url: lbUrl, via: 'loadbalancer', close: async () => {}}
    try {
      return await this.portForward(ISTIO_NAMESPACE, `svc/${INGRESS_SERVICE}`, port, opts)
    } catch (e) {
      throw unavailable('MESH_INGRESS_UNAVAILABLE', (e as Error).message, 'Check the ingress gateway pod is Running: `kubectl get pods -n istio-system`.', e)
    }
  }

  /**
   * A proxy's Envoy admin (:15000, which listens on the pod's localhost) through `kubectl
   * port-forward`, as `istioctl dashboard envoy` reaches it; one forward per proxy, kept until
   * close(). For mesh verify's counter evidence (ADR 0121).
   */
  async proxyAdminUrl(proxy: ProxyRef): Promise<string | undefined> {
    const [namespace, resource] = proxy === 'gateway' ? [ISTIO_NAMESPACE, `deploy/${INGRESS_SERVICE}`] : [proxy.namespace, `pod/${proxy.pod}`]
    const key = `${namespace}/${resource}`
    let url = this.adminForwards.get(key)
    if (!url) {
      url = this.portForward(namespace, resource, PROXY_PORTS.admin, {}).then((h) => h.url)
      url.catch(() => this.adminForwards.delete(key))
      this.adminForwards.set(key, url)
    }
    return url
  }

  private async portForward(namespace: string, resource: string, remotePort: number, opts: IngressOptions): Promise<IngressHandle> {
    const kube = this.childKube
    const args = ['port-forward', '-n', namespace, resource, `:${remotePort}`, '--address', '127.0.0.1', '--context', this.context, ...kube.args]
    const child = execa(this.kubectl, args, {env: {...this.env, ...kube.env}, extendEnv: false, stdin: 'ignore', buffer: false, reject: false, cleanup: true})
    this.forwards.add(child)
    let out = ''
    let err = ''
    const timeoutMs = opts.portForwardTimeoutMs ?? 20_000
    let port: number | undefined
    try {
      port = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no "Forwarding from" line within ${timeoutMs} ms`)), timeoutMs)
        const done = () => clearTimeout(timer)
        child.stdout?.on('data', (d: Buffer) => {
          out += d.toString()
          const p = parsePortForwardPort(out)
          if (p !== undefined) (done(), resolve(p))
        })
        child.stderr?.on('data', (d: Buffer) => (err += d.toString()))
        child.then(
          (r) => (done(), reject(new Error(`kubectl exited (${r.exitCode ?? r.signal ?? (r as {code?: string}).code ?? 'failed to start'})`))),
          (e: unknown) => (done(), reject(e as Error)),
        )
        opts.signal?.addEventListener('abort', () => (done(), reject(new Error('cancelled'))), {once: true})
      })
    } catch (e) {
      await this.stop(child)
      const detail = err.trim().split('\n').slice(-3).join(' | ')
      throw new Error(`kubectl port-forward to ${namespace}/${resource} on context "${this.context}" failed: ${(e as Error).message}${detail ? `: ${detail}` : ''}`)
    }
    return {url: `http://127.0.0.1:${port}`, via: 'port-forward', close: () => this.stop(child)}
  }

  private async stop(child: ResultPromise): Promise<void> {
    if (!this.forwards.delete(child)) return
    if (child.exitCode === null) child.kill('SIGTERM')
    await child.catch(() => undefined)
  }

  async proxyStatus(): Promise<RealProxyStatus[]> {
    const istioctl = await this.istioctlPath()
    const r = await runIstioctl(['proxy-status'], {istioctl: istioctl.path, context: this.context, kubeconfig: this.kubeconfigPath || undefined, env: this.env, timeoutMs: 60_000})
    return parseProxyStatus(r.stdout).map(asProxySyncStatus)
  }

  /**
   * Poll `istioctl proxy-status` until every matching proxy has acknowledged what istiod sent
   * (no STALE), twice in a row. MESH_SYNC_TIMEOUT (69) names the proxies still behind.
   */
  async waitForSync(arg: number | WaitForSyncOptions = {}): Promise<RealSyncResult> {
    const opts: WaitForSyncOptions = typeof arg === 'number' ? {generation: arg} : arg
    const started = Date.now()
    const timeoutMs = opts.timeoutMs ?? 60_000
    const interval = opts.intervalMs ?? 500
    const minProxies = opts.minProxies ?? 1
    const deadline = Date.now() + timeoutMs
    let polls = 0
    let streak = 0
    let last: RealSyncResult | undefined
    for (;;) {
      polls++
      const rows = (await this.proxyStatus()).filter(opts.match ?? (() => true))
      const summary = summarizeSync(rows)
      last = {summary, rows, polls, synced: summary.allSynced && rows.length >= minProxies, generation: opts.generation ?? 0, proxies: rows, waitedMs: Date.now() - started}
      streak = summary.allSynced && rows.length >= minProxies ? streak + 1 : 0
      if (streak >= 2) return last
      if (Date.now() >= deadline || opts.signal?.aborted) break
      await sleep(interval, opts.signal)
    }
    const pending = last.summary.pending.map((p) => `${p.id} (${p.types.join(',')})`).join(', ')
    throw unavailable(
      'MESH_SYNC_TIMEOUT',
      last.rows.length < minProxies
        ? `after ${Math.round(timeoutMs / 1000)} s istioctl proxy-status lists ${last.rows.length} matching proxies, expected at least ${minProxies}`
        : `after ${Math.round(timeoutMs / 1000)} s these proxies have not acknowledged the new config: ${pending}`,
      'Check istiod and the proxies: `istioctl proxy-status`; raise the wait with --timeout.',
    )
  }

  /** Run a command in a workload's pod with the real kubectl (the in-cluster callers of verify/call). */
  async execInPod(namespace: string, workload: string, command: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const kube = this.kubeconfigPath ? childKubeconfig(this.kubeconfigPath) : {args: [], env: {}}
    const args = ['exec', '-n', namespace, workload, ...(opts.container ? ['-c', opts.container] : []), '--context', this.context, ...kube.args, '--', ...command]
    const r = await execa(this.kubectl, args, {env: {...this.env, ...kube.env}, extendEnv: false, reject: false, stdin: 'ignore', timeout: opts.timeoutMs ?? 30_000})
    if (r.failed && r.exitCode === undefined) {
      const why = r.timedOut ? `no answer within ${opts.timeoutMs ?? 30_000} ms` : (r.shortMessage ?? 'could not run kubectl')
      throw unavailable('MESH_KUBECTL_FAILED', `kubectl exec into ${namespace}/${workload} failed: ${why}`, `Check kubectl is installed and the pod is Running: kubectl get pods -n ${namespace}.`)
    }
    return {exitCode: r.exitCode ?? 1, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '')}
  }

  /** Stop every port-forward this target started. */
  async close(): Promise<void> {
    this.ingressHandle = undefined
    this.adminForwards.clear()
    await Promise.all([...this.forwards].map((c) => this.stop(c)))
  }
}
