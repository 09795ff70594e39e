// A pod's sidecar, started by the pod process through src/local/runtime/sidecar-seam.ts:
// the outbound listener on <podIP>:15001, one inbound listener per container port
// (<podIP>:containerPort → app on <podIP>:appPort), the admin endpoint on <podIP>:15000 and
// Prometheus on <podIP>:15090, mesh security, and the subscription to meshd.
import {createWriteStream} from 'node:fs'
import {createAdminServer, type AdminServer} from './admin.js'
import {createProxy, type Proxy} from './proxy.js'
import {loadSecurityProvider, type SecurityState} from './security-loader.js'
import {PROXY_PORTS, type ProxyIdentity} from './snapshot.js'
import {ACCESS_LOG_FLUSH_MS} from './telemetry.js'
import {subscribeProxy, type XdsClient, type XdsState} from './xds-client.js'
import type {PodLaunch} from '../controllers/pod-runtime.js'

/** Same shape as the runtime seam's SidecarOptions. */
export interface SidecarOptions {
  pod: PodLaunch
  /** inbound: the sidecar listens on <podIP>:containerPort and delivers to <podIP>:appPort */
  appPorts: Array<{containerPort: number; appPort: number}>
  /** meshd's API (config and certificates); an empty url runs without a control plane */
  meshd: {url: string; token: string; caPem: string}
  stateDir: string
  /** Istio-format access log file; off when absent */
  accessLogFile?: string
  /** ports for tests; default 15001 / 15000 / 15090 (0 = pick) */
  ports?: {outbound?: number; admin?: number; prometheus?: number}
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void
}

export interface SidecarHandle {
  proxy: Proxy
  /** the listener that captures the pod's own outbound traffic */
  outbound: {address: string; port: number}
  admin: {address: string; port: number}
  xds: XdsClient | undefined
  /**
   * Settles when the first configuration from meshd is applied (at once without meshd). Istio's
   * istio-proxy container is not ready until then, and a pod is Ready only when all its
   * containers are: the pod process reports itself started after this.
   */
  ready: Promise<void>
  stop(): Promise<void>
}

export function sidecarIdentity(pod: PodLaunch): ProxyIdentity {
  return {id: `${pod.name}.${pod.namespace}`, kind: 'sidecar', podName: pod.name, namespace: pod.namespace, labels: pod.labels, serviceAccount: pod.serviceAccount, address: pod.podIP}
}

export async function startSidecar(opts: SidecarOptions): Promise<SidecarHandle> {
  const {pod} = opts
  const identity = sidecarIdentity(pod)
  const state: SecurityState = {snapshot: undefined, secret: undefined}
  const security = await loadSecurityProvider(identity, state)
  const accessLog = opts.accessLogFile ? {stream: createWriteStream(opts.accessLogFile, {flags: 'a'}), flushIntervalMs: ACCESS_LOG_FLUSH_MS} : undefined
  const proxy = await createProxy({
    identity,
    security,
    accessLog,
    listeners: [
      {role: 'outbound', host: pod.podIP, port: opts.ports?.outbound ?? PROXY_PORTS.outbound},
      ...opts.appPorts.map(({containerPort, appPort}) => ({role: 'inbound' as const, host: pod.podIP, port: containerPort, appPort})),
    ],
  })
  const admins: AdminServer[] = []
  try {
    admins.push(await createAdminServer(proxy, {host: pod.podIP, port: opts.ports?.admin ?? PROXY_PORTS.admin}))
    admins.push(await createAdminServer(proxy, {host: pod.podIP, port: opts.ports?.prometheus ?? PROXY_PORTS.prometheus}))
  } catch (error) {
    for (const a of admins) await a.close()
    await proxy.close()
    throw error
  }
  const log = opts.log ?? (() => {})
  let configured!: () => void
  const ready = new Promise<void>((resolve) => (configured = resolve))
  if (!opts.meshd.url) configured()
  const xds = opts.meshd.url
    ? subscribeProxy(proxy, {
        apiUrl: opts.meshd.url,
        token: opts.meshd.token,
        ca: opts.meshd.caPem || undefined,
        onSnapshot: (s) => (state.snapshot = s),
        onApplied: (r) => {
          configured()
          for (const w of r.warnings) log('warn', `config ${r.generation}: ${w}`)
        },
        onSecret: (secret) => {
          state.secret = secret
          security.onSecret?.(secret)
        },
        onState: (s: XdsState, err?: Error) => log(s === 'disconnected' ? 'warn' : 'info', `xds ${s}`, err ? {error: err.message} : undefined),
      })
    : undefined
  const out = proxy.addresses.find((a) => a.role === 'outbound')!
  return {
    proxy,
    outbound: {address: out.host, port: out.port},
    admin: {address: admins[0].host, port: admins[0].port},
    xds,
    ready,
    async stop() {
      await xds?.stop()
      await proxy.close()
      for (const a of admins) await a.close()
      accessLog?.stream.end()
    },
  }
}
