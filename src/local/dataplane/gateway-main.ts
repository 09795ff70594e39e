// Entry of the ingress gateway process (istio-system/istio-ingressgateway), spawned by meshd:
//   node dist/local/dataplane/gateway-main.js --api-url https://127.0.0.1:6443 --token-file T --ca-file C \
//        [--host 127.0.0.1] [--port 0] [--server-port 80] [--admin-port 0] [--access-log -|PATH]
// or --kubeconfig FILE instead of api-url/token/ca. Every flag also reads an env var (see FLAGS).
// Prints one JSON line on stdout once listening: {"event":"listening","gateway":{host,port},"admin":{host,port},"pid"}.
import {createWriteStream, readFileSync} from 'node:fs'
import {parseArgs} from 'node:util'
import {load} from 'js-yaml'
import {createAdminServer} from './admin.js'
import {createProxy} from './proxy.js'
import {loadSecurityProvider, type SecurityState} from './security-loader.js'
import {ACCESS_LOG_FLUSH_MS} from './telemetry.js'
import type {ProxyIdentity} from './snapshot.js'
import {subscribeProxy} from './xds-client.js'

const FLAGS = {
  'api-url': {type: 'string', env: 'MESH_API_URL'},
  token: {type: 'string', env: 'MESH_TOKEN'},
  'token-file': {type: 'string', env: 'MESH_TOKEN_FILE'},
  'ca-file': {type: 'string', env: 'MESH_CA_FILE'},
  kubeconfig: {type: 'string', env: 'MESH_KUBECONFIG'},
  host: {type: 'string', env: 'MESH_GATEWAY_HOST', default: '127.0.0.1'},
  port: {type: 'string', env: 'MESH_GATEWAY_PORT', default: '0'},
  'server-port': {type: 'string', env: 'MESH_GATEWAY_SERVER_PORT', default: '80'},
  'admin-host': {type: 'string', env: 'MESH_GATEWAY_ADMIN_HOST'},
  'admin-port': {type: 'string', env: 'MESH_GATEWAY_ADMIN_PORT', default: '0'},
  'pod-name': {type: 'string', env: 'MESH_POD_NAME', default: 'istio-ingressgateway'},
  'access-log': {type: 'string', env: 'MESH_ACCESS_LOG', default: ''},
  'access-log-format': {type: 'string', env: 'MESH_ACCESS_LOG_FORMAT', default: 'text'},
} as const

type Flag = keyof typeof FLAGS

export interface GatewayConfig {
  apiUrl: string
  token: string
  ca?: string
  host: string
  port: number
  serverPort: number
  adminHost: string
  adminPort: number
  podName: string
  accessLog: string
  accessLogFormat: 'text' | 'json'
}

/** Reads server, token and CA of the current context of a kubeconfig. */
export function credentialsFromKubeconfig(path: string): {apiUrl: string; token: string; ca?: string} {
  const kc = load(readFileSync(path, 'utf8')) as any
  const ctxName = kc?.['current-context']
  const ctx = (kc?.contexts ?? []).find((c: any) => c.name === ctxName)?.context ?? kc?.contexts?.[0]?.context
  const cluster = (kc?.clusters ?? []).find((c: any) => c.name === ctx?.cluster)?.cluster
  const user = (kc?.users ?? []).find((u: any) => u.name === ctx?.user)?.user
  if (!cluster?.server || !user?.token) throw new Error(`kubeconfig ${path}: current context has no server or token`)
  const ca = cluster['certificate-authority-data'] ? Buffer.from(cluster['certificate-authority-data'], 'base64').toString('utf8') : cluster['certificate-authority'] ? readFileSync(cluster['certificate-authority'], 'utf8') : undefined
  return {apiUrl: cluster.server, token: user.token, ca}
}

export function parseGatewayArgs(argv: string[], env: NodeJS.ProcessEnv): GatewayConfig {
  const options = Object.fromEntries(Object.entries(FLAGS).map(([k, v]) => [k, {type: 'string' as const}])) as Record<Flag, {type: 'string'}>
  const {values} = parseArgs({args: argv, options, strict: true, allowPositionals: false})
  const get = (f: Flag): string | undefined => (values[f] as string | undefined) ?? env[FLAGS[f].env] ?? ('default' in FLAGS[f] ? (FLAGS[f] as {default: string}).default : undefined)
  let apiUrl = get('api-url')
  let token = get('token') ?? (get('token-file') ? readFileSync(get('token-file')!, 'utf8').trim() : undefined)
  let ca = get('ca-file') ? readFileSync(get('ca-file')!, 'utf8') : undefined
  const kubeconfig = get('kubeconfig')
  if (kubeconfig && (!apiUrl || !token)) {
    const c = credentialsFromKubeconfig(kubeconfig)
    apiUrl ??= c.apiUrl
    token ??= c.token
    ca ??= c.ca
  }
  if (!apiUrl || !token) throw new Error('gateway-main needs --api-url and --token/--token-file (or --kubeconfig)')
  const int = (f: Flag): number => {
    const n = Number(get(f))
    if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`--${f}: not a port: ${get(f)}`)
    return n
  }
  const fmt = get('access-log-format')
  if (fmt !== 'text' && fmt !== 'json') throw new Error(`--access-log-format: expected text or json, got ${fmt}`)
  const host = get('host')!
  return {
    apiUrl,
    token,
    ca,
    host,
    port: int('port'),
    serverPort: int('server-port'),
    adminHost: get('admin-host') ?? host,
    adminPort: int('admin-port'),
    podName: get('pod-name')!,
    accessLog: get('access-log') ?? '',
    accessLogFormat: fmt,
  }
}

export function gatewayIdentity(podName: string, address: string): ProxyIdentity {
  return {
    id: `${podName}.istio-system`,
    kind: 'gateway',
    podName,
    namespace: 'istio-system',
    labels: {istio: 'ingressgateway', app: 'istio-ingressgateway'},
    serviceAccount: 'istio-ingressgateway-service-account',
    address,
  }
}

export async function runGateway(cfg: GatewayConfig): Promise<{stop(): Promise<void>}> {
  const identity = gatewayIdentity(cfg.podName, cfg.host)
  const state: SecurityState = {snapshot: undefined, secret: undefined}
  const security = await loadSecurityProvider(identity, state)
  const accessLog = cfg.accessLog === '' || cfg.accessLog === 'off' ? undefined : {stream: cfg.accessLog === '-' ? process.stdout : createWriteStream(cfg.accessLog, {flags: 'a'}), format: cfg.accessLogFormat, flushIntervalMs: ACCESS_LOG_FLUSH_MS}
  const proxy = await createProxy({identity, listeners: [{role: 'gateway', host: cfg.host, port: cfg.port, serverPort: cfg.serverPort}], security, accessLog})
  const admin = await createAdminServer(proxy, {host: cfg.adminHost, port: cfg.adminPort})
  const xds = subscribeProxy(proxy, {
    apiUrl: cfg.apiUrl,
    token: cfg.token,
    ca: cfg.ca,
    onSnapshot: (s) => (state.snapshot = s),
    onApplied: (r) => {
      for (const w of r.warnings) process.stderr.write(`gateway: config ${r.generation}: ${w}\n`)
    },
    onSecret: (secret) => {
      state.secret = secret
      security.onSecret?.(secret)
    },
    onState: (state, err) => process.stderr.write(`gateway: xds ${state}${err ? `: ${err.message}` : ''}\n`),
  })
  const gw = proxy.addresses[0]
  process.stdout.write(JSON.stringify({event: 'listening', gateway: {host: gw.host, port: gw.port}, admin: {host: admin.host, port: admin.port}, pid: process.pid}) + '\n')
  return {
    async stop() {
      await xds.stop()
      await proxy.close() // flushes the access log
      await admin.close()
      const file = accessLog?.stream
      if (file && file !== process.stdout) await new Promise<void>((resolve) => file.end(resolve))
    },
  }
}

async function main(): Promise<void> {
  let cfg: GatewayConfig
  try {
    cfg = parseGatewayArgs(process.argv.slice(2), process.env)
  } catch (error) {
    process.stderr.write(`gateway: ${(error as Error).message}\n`)
    process.exit(64)
  }
  const gw = await runGateway(cfg)
  const shutdown = () => {
    gw.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  }
  process.once('SIGTERM', shutdown)
  process.once('SIGINT', shutdown)
}

if (import.meta.url === new URL(process.argv[1] ?? '', 'file://').href || process.argv[1]?.endsWith('gateway-main.js')) {
  main().catch((error: Error) => {
    process.stderr.write(`gateway: ${error.stack ?? error.message}\n`)
    process.exit(70)
  })
}
