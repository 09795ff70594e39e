// A real cluster behind the Target interface (the adapter over RealTarget, ADR 0100).
import {execa} from 'execa'
import {KubeClient} from '../cluster/client.js'
import {childKubeconfig} from '../cluster/kubeconfig.js'
import {RealTarget, type IngressHandle} from '../cluster/real-target.js'
import type {TargetDescriptor} from '../cluster/select.js'
import type {
  InstallOptions,
  InstallResult,
  ProxySyncStatus,
  SyncResult,
  Target,
  UninstallOptions,
  UninstallResult,
  WaitForSyncOptions,
} from '../cluster/target.js'
import type {ProxyStatusRow} from '../install/proxy-status.js'
import {unavailable} from '../lib/errors.js'
import type {ExecOptions, ExecResult, PodExec} from './open-target.js'

const stateOf = (row: ProxyStatusRow): ProxySyncStatus['state'] => {
  const states = Object.values(row.xds).map((x) => x?.state)
  if (states.some((s) => s === 'STALE' || s === 'UNKNOWN')) return 'STALE'
  if (states.length > 0 && states.every((s) => s === 'NOT SENT' || s === 'IGNORED')) return 'NOT_SENT'
  return 'SYNCED'
}

/** proxy-status rows in the embedded cluster's shape (no generations on a real cluster: 0). */
export function proxyRowsToStatus(rows: ProxyStatusRow[]): ProxySyncStatus[] {
  return rows.map((r) => ({
    proxy: r.id,
    kind: /ingressgateway|egressgateway/.test(r.pod) ? 'gateway' : 'sidecar',
    sent: 0,
    acked: 0,
    state: stateOf(r),
  }))
}

/**
 * A real cluster behind the Target interface: the Kubernetes API through the same KubeClient,
 * the ingress through RealTarget (LoadBalancer or port-forward, kept open until close()),
 * propagation through `istioctl proxy-status`, and `kubectl exec` for in-cluster callers.
 */
export class RealClusterTarget implements Target, PodExec {
  readonly kind = 'real' as const
  readonly context: string
  readonly kubeconfigPath: string
  readonly real: RealTarget
  private readonly env: NodeJS.ProcessEnv
  private readonly kubectl: string
  private cachedClient?: KubeClient
  private ingress?: Promise<IngressHandle>

  constructor(d: Pick<TargetDescriptor, 'kind' | 'context' | 'kubeconfigPath'>, opts: {env?: NodeJS.ProcessEnv; home?: string; real?: RealTarget} = {}) {
    this.context = d.context
    this.kubeconfigPath = d.kubeconfigPath
    this.env = opts.env ?? process.env
    this.kubectl = this.env.MESH_KUBECTL || 'kubectl'
    this.real = opts.real ?? new RealTarget({context: d.context, kubeconfigPath: d.kubeconfigPath, env: this.env, home: opts.home})
  }

  get client(): KubeClient {
    this.cachedClient ??= new KubeClient(this.real.kubeConfig())
    return this.cachedClient
  }

  async ingressUrl(): Promise<string> {
    this.ingress ??= this.real.ingress()
    try {
      return (await this.ingress).url
    } catch (e) {
      this.ingress = undefined
      throw e
    }
  }

  async waitForSync(opts?: number | WaitForSyncOptions): Promise<SyncResult> {
    const o: WaitForSyncOptions = typeof opts === 'number' ? {generation: opts} : (opts ?? {})
    const started = Date.now()
    // a generation is an embedded-cluster notion; istiod's acks say "latest pushed" instead (ADR 0084)
    const r = await this.real.waitForSync({timeoutMs: o.timeoutMs, ...(o.minProxies !== undefined ? {minProxies: o.minProxies} : {})})
    return {synced: true, generation: o.generation ?? 0, proxies: proxyRowsToStatus(r.rows), waitedMs: Date.now() - started}
  }

  async proxyStatus(): Promise<ProxySyncStatus[]> {
    return proxyRowsToStatus(await this.real.proxyStatus())
  }

  async install(_opts: InstallOptions = {}): Promise<InstallResult> {
    const r = await this.real.ensureIstio({yes: false})
    return {alreadyInstalled: !r.changed, details: {...r}}
  }

  async uninstall(_opts: UninstallOptions = {}): Promise<UninstallResult> {
    const r = await this.real.uninstallIstio({yes: false})
    return {wasInstalled: true, details: {...r}}
  }

  async execInPod(namespace: string, workload: string, command: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const kube = this.kubeconfigPath ? childKubeconfig(this.kubeconfigPath) : {args: [], env: {}}
    const args = ['exec', '-n', namespace, workload, ...(opts.container ? ['-c', opts.container] : []), '--context', this.context, ...kube.args, '--', ...command]
    const r = await execa(this.kubectl, args, {
      env: {...this.env, ...kube.env},
      extendEnv: false,
      reject: false,
      stdin: 'ignore',
      timeout: opts.timeoutMs ?? 30_000,
    })
    if (r.failed && r.exitCode === undefined) {
      const why = r.timedOut ? `no answer within ${opts.timeoutMs ?? 30_000} ms` : (r.shortMessage ?? 'could not run kubectl')
      throw unavailable('MESH_KUBECTL_FAILED', `kubectl exec into ${namespace}/${workload} failed: ${why}`, 'Check kubectl is installed and the pod is Running: kubectl get pods -n ' + namespace + '.')
    }
    return {exitCode: r.exitCode ?? 1, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '')}
  }

  async close(): Promise<void> {
    const h = this.ingress
    this.ingress = undefined
    if (h) await h.then((x) => x.close(), () => undefined)
    await this.real.close()
  }
}

