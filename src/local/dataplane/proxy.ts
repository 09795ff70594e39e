// The proxy engine: listeners (gateway, sidecar outbound, sidecar inbound) in front of one
// shared engine — route table, clusters, telemetry, security hooks. Routing decisions come
// from routing.ts, upstream behaviour from cluster.ts/pool.ts/outlier.ts; this file moves bytes
// and applies retries, timeouts, faults, mirroring and local replies with Envoy's codes,
// flags and bodies (VS-4..VS-10, DR-5, DR-9, TM-3).
import {randomUUID} from 'node:crypto'
import http from 'node:http'
import net from 'node:net'
import tls from 'node:tls'
import {Cluster, ClusterManager, outboundClusterSpecs, PLAIN_POLICY, type ClusterSpec, type HostStatus, type UpstreamHost} from './cluster.js'
import {hash32, hashKeyOf} from './lb.js'
import {realClock, type Clock} from './outlier.js'
import type {HostPool, PoolFailure, PoolWaiter} from './pool.js'
import {
  compileRouteTable,
  pickDestination,
  RETRY_ON,
  rewritePath,
  selectRoute,
  serviceFqdn,
  shadowAuthority,
  type CompiledRoute,
  type HeaderOperations,
  type HeaderOps,
  type RetryPolicy,
  type RouteAction,
  type RouteRequest,
  type RouteTable,
} from './routing.js'
import {peerFromCertificate, PlaintextAllowAll, type MtlsMode, type Peer, type SecurityProvider} from './security-provider.js'
import {APP_PORT_OFFSET, PROXY_PORTS, type Endpoint, type MeshSnapshot, type ProxyIdentity, type ServiceEntry} from './snapshot.js'
import {AccessLogger, ProxyTelemetry, UNKNOWN_SERVICE, UNKNOWN_WORKLOAD, type AccessLogOptions, type ServiceTags, type WorkloadTags} from './telemetry.js'
import type {UpstreamConnection, UpstreamHandler} from './upstream.js'
import type {RequestHead} from './http1.js'
import {FLAG, labelsMatch, spiffeId, workloadName, type Random} from './util.js'

// ---------------------------------------------------------------------------------------------
// Public API

export type ListenerSpec =
  /** north-south: routes by Gateway + VirtualService; serverPort = the Gateway `servers[].port.number` it serves (default 80) */
  | {role: 'gateway'; host: string; port: number; serverPort?: number}
  /** a sidecar's captured outbound: plain HTTP/1.1 addressed by Host (or absolute-form URI) to a service; port default 15001 */
  | {role: 'outbound'; host: string; port?: number}
  /** a sidecar's inbound: owns host:port, forwards to the app at appHost:appPort (default host:port+APP_PORT_OFFSET) */
  | {role: 'inbound'; host: string; port: number; appHost?: string; appPort?: number}

export interface ProxyOptions {
  identity: ProxyIdentity
  listeners: ListenerSpec[]
  /** mTLS / authorization hooks; default: plaintext, allow everything */
  security?: SecurityProvider
  /** config to start with (else requests wait for applySnapshot: gateway/outbound answer 503 NC until then) */
  snapshot?: MeshSnapshot
  /** Istio-format access log; off when absent */
  accessLog?: AccessLogOptions
  /**
   * local address for upstream sockets so servers see the caller's pod IP; default: identity.address
   * when it is a 127.x address other than 127.0.0.1; null = let the OS choose
   */
  sourceAddress?: string | null
  clock?: Clock
  random?: Random
}

export interface ListenerAddress {
  role: ListenerSpec['role']
  host: string
  port: number
}

export interface ApplyResult {
  generation: number
  warnings: string[]
  clusters: {added: string[]; replaced: string[]; removed: string[]}
}

export interface ClusterStatus {
  name: string
  /** outlier detection settings in effect (null when the DR has none) */
  outlierDetection: Record<string, number | boolean> | null
  circuitBreakers: {maxConnections: number; maxPendingRequests: number; maxRequests: number; maxRequestsPerConnection: number; maxRetries: number}
  panic: boolean
  counters: Record<string, number>
  hosts: HostStatus[]
}

export interface ConfigDump {
  proxy: string
  kind: ProxyIdentity['kind']
  /** generation of the applied snapshot (0 = none yet) */
  generation: number
  appliedAt: string | null
  listeners: ListenerAddress[]
  routeConfigs: {name: string; virtualHosts: {name: string; domains: string[]; routes: {name: string; virtualService?: string}[]}[]}[]
  clusters: string[]
  warnings: string[]
}

export interface Proxy {
  readonly identity: ProxyIdentity
  readonly telemetry: ProxyTelemetry
  readonly addresses: ListenerAddress[]
  /** generation of the applied snapshot, 0 before the first */
  readonly generation: number
  readonly ready: boolean
  /** Swaps routes and clusters atomically; in-flight requests finish on what they started with. */
  applySnapshot(snapshot: MeshSnapshot): ApplyResult
  clusterStatus(): ClusterStatus[]
  configDump(): ConfigDump
  metrics(): Promise<string>
  close(): Promise<void>
}

export async function createProxy(opts: ProxyOptions): Promise<Proxy> {
  const engine = new Engine(opts)
  await engine.listen()
  if (opts.snapshot) engine.applySnapshot(opts.snapshot)
  return engine
}

// ---------------------------------------------------------------------------------------------
// Engine

const MAX_BODY = 16 * 1024 * 1024
const RESP_HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'server'])
const CONNECT_RETRY = RETRY_ON.CONNECT_FAILURE | RETRY_ON['5XX'] | RETRY_ON.GATEWAY_ERROR | RETRY_ON.RESET
const RESET_RETRY = RETRY_ON['5XX'] | RETRY_ON.GATEWAY_ERROR | RETRY_ON.RESET
const kPeer = Symbol('mesh.peer')
/** ALPN the inbound side offers, as Istio's sidecars do */
const MESH_SERVER_ALPN = ['istio-peer-exchange', 'istio', 'istio-http/1.0', 'istio-http/1.1', 'http/1.1']
const kExchange = Symbol('mesh.exchange')

interface Listener {
  spec: ListenerSpec
  role: ListenerSpec['role']
  http: http.Server
  net?: net.Server
  port: number
  host: string
  /** gateway: the Gateway server port; inbound: the container port */
  routePort: number
  inboundCluster?: Cluster
  localAddress: string
  /** inbound: open downstream connections (plain sockets or TLS sockets) and their transport */
  conns?: Map<net.Socket, {mtls: boolean}>
}

interface State {
  snapshot: MeshSnapshot | undefined
  generation: number
  sidecarTable: RouteTable | undefined
  gatewayTables: Map<number, RouteTable>
  endpointsByIp: Map<string, Endpoint>
  services: Map<string, ServiceEntry>
  /** inbound: the service a container port belongs to */
  inboundService: Map<number, ServiceTags>
  warnings: string[]
  appliedAt: string | null
}

class Engine implements Proxy {
  readonly identity: ProxyIdentity
  readonly telemetry: ProxyTelemetry
  readonly security: SecurityProvider
  readonly clock: Clock
  readonly random: Random
  readonly clusters: ClusterManager
  readonly accessLog: AccessLogger | undefined
  readonly listeners: Listener[] = []
  state: State
  private passthrough = new Map<string, Cluster>()
  private sockets = new Set<net.Socket>()
  private closing = false
  /** tags for this proxy's own workload (plaintext / mTLS variants) */
  selfTags: WorkloadTags
  selfTagsMtls: WorkloadTags
  private hostTags = new WeakMap<Endpoint, {plain: WorkloadTags; mtls: WorkloadTags}>()
  private peerTags = new Map<string, WorkloadTags>()
  private serviceTags = new Map<string, ServiceTags>()
  private tlsServers = new Map<Listener, {server: tls.Server; opts: tls.SecureContextOptions}>()

  constructor(private opts: ProxyOptions) {
    this.identity = opts.identity
    this.security = opts.security ?? new PlaintextAllowAll()
    this.clock = opts.clock ?? realClock
    this.random = opts.random ?? Math.random
    const src = opts.sourceAddress === undefined ? defaultSourceAddress(opts.identity.address) : (opts.sourceAddress ?? undefined)
    this.clusters = new ClusterManager({
      clock: this.clock,
      random: this.random,
      localAddress: src,
      upstreamTls: (ep, info) => this.security.upstreamTls(ep, info),
    })
    this.telemetry = new ProxyTelemetry(() => this.clusterStatsSources())
    this.accessLog = opts.accessLog ? new AccessLogger(opts.accessLog) : undefined
    this.state = {snapshot: undefined, generation: 0, sidecarTable: undefined, gatewayTables: new Map(), endpointsByIp: new Map(), services: new Map(), inboundService: new Map(), warnings: [], appliedAt: null}
    const id = opts.identity
    const app = id.labels.app ?? id.labels['app.kubernetes.io/name'] ?? 'unknown'
    const version = id.labels.version ?? id.labels['app.kubernetes.io/version'] ?? 'unknown'
    const workload = workloadName(id.podName)
    this.selfTags = {workload, namespace: id.namespace, principal: 'unknown', app, version}
    this.selfTagsMtls = {...this.selfTags, principal: spiffeId('cluster.local', id.namespace, id.serviceAccount)}
  }

  get generation(): number {
    return this.state.generation
  }

  get ready(): boolean {
    return this.state.snapshot !== undefined
  }

  get addresses(): ListenerAddress[] {
    return this.listeners.map((l) => ({role: l.role, host: l.host, port: l.port}))
  }

  // --- listeners -----------------------------------------------------------------------------

  async listen(): Promise<void> {
    for (const spec of this.opts.listeners) {
      const l = this.makeListener(spec)
      this.listeners.push(l)
      const server = l.net ?? l.http
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(spec.port ?? PROXY_PORTS.outbound, spec.host, () => {
          server.off('error', reject)
          resolve()
        })
      })
      const a = server.address() as net.AddressInfo
      l.port = a.port
      l.localAddress = `${a.address}:${a.port}`
      if (spec.role === 'inbound') l.routePort = spec.port === 0 ? a.port : spec.port
    }
    for (const l of this.listeners) if (l.role === 'inbound') l.inboundCluster = this.inboundCluster(l)
  }

  private makeListener(spec: ListenerSpec): Listener {
    const server = http.createServer({keepAliveTimeout: 65_000, headersTimeout: 70_000, requestTimeout: 0, noDelay: true})
    const l: Listener = {
      spec,
      role: spec.role,
      http: server,
      port: spec.port ?? PROXY_PORTS.outbound,
      host: spec.host,
      routePort: spec.role === 'gateway' ? (spec.serverPort ?? 80) : spec.role === 'inbound' ? spec.port : 0,
      localAddress: '',
    }
    server.on('request', (req, res) => this.onRequest(l, req, res))
    server.on('clientError', (_err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')
      else socket.destroy()
    })
    const track = (s: net.Socket) => {
      this.sockets.add(s)
      s.once('close', () => this.sockets.delete(s))
    }
    if (spec.role === 'inbound') {
      // The inbound port decides per connection between plaintext and mTLS (PA-3, PA-4).
      l.net = net.createServer({noDelay: true}, (socket) => {
        track(socket)
        this.onInboundConnection(l, socket)
      })
    } else {
      server.on('connection', track)
    }
    return l
  }

  private onInboundConnection(l: Listener, socket: net.Socket): void {
    const mode: MtlsMode = this.security.tlsPolicy(l.routePort)
    socket.on('error', () => socket.destroy())
    if (mode === 'DISABLE') {
      this.plaintextPeer(socket, l)
      l.http.emit('connection', socket)
      return
    }
    socket.once('data', (first: Buffer) => {
      socket.pause()
      socket.unshift(first)
      if (first[0] === 0x16) {
        // A tls.Server (never listening) does the handshake: unlike a hand-built server
        // TLSSocket it really rejects a client certificate that does not chain to the CA.
        const tlsServer = this.tlsServerFor(l)
        if (!tlsServer) {
          socket.resetAndDestroy()
          return
        }
        tlsServer.emit('connection', socket)
      } else if (mode === 'STRICT') {
        // STRICT: plaintext is refused with a reset and no HTTP response (PA-4: curl exits 56)
        if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy()
        else socket.destroy()
      } else {
        this.plaintextPeer(socket, l)
        l.http.emit('connection', socket)
        socket.resume()
      }
    })
  }

  private plaintextPeer(socket: net.Socket, l: Listener): void {
    ;(socket as any)[kPeer] = {ip: stripV6(socket.remoteAddress), mtls: false} satisfies Peer
    this.trackInbound(l, socket, false)
  }

  private trackInbound(l: Listener, stream: net.Socket, mtls: boolean): void {
    const conns = (l.conns ??= new Map())
    conns.set(stream, {mtls})
    stream.once('close', () => conns.delete(stream))
  }

  /**
   * After a PeerAuthentication change, connections whose transport the port no longer accepts
   * (plaintext under STRICT, mTLS under DISABLE) are drained as Envoy drains the connections of
   * a removed filter chain: idle ones close now, busy ones after their response (Connection: close).
   */
  private drainInbound(): void {
    for (const l of this.listeners) {
      if (l.role !== 'inbound' || !l.conns || l.conns.size === 0) continue
      const mode = this.security.tlsPolicy(l.routePort)
      for (const [stream, c] of l.conns) {
        if (c.mtls ? mode !== 'DISABLE' : mode !== 'STRICT') continue
        l.conns.delete(stream)
        const res = (stream as any)._httpMessage as http.ServerResponse | null | undefined
        if (!res) {
          stream.destroy()
          continue
        }
        if (!res.headersSent) res.shouldKeepAlive = false
        res.once('finish', () => stream.end())
        res.once('close', () => stream.destroy())
      }
    }
  }

  /** The listener's TLS server with the provider's current certificate; undefined while it has none. */
  private tlsServerFor(l: Listener): tls.Server | undefined {
    const o = this.security.serverTls?.(l.routePort)
    if (!o) return undefined
    let t = this.tlsServers.get(l)
    if (!t) {
      const server = new tls.Server({...o, requestCert: true, rejectUnauthorized: true, ALPNProtocols: MESH_SERVER_ALPN})
      server.on('secureConnection', (ts: tls.TLSSocket) => {
        ts.on('error', () => ts.destroy())
        if (!ts.authorized) {
          ts.destroy()
          return
        }
        const id = this.security.peerFromTls ? this.security.peerFromTls(ts) : peerFromCertificate(ts)
        ;(ts as any)[kPeer] = {ip: stripV6(ts.remoteAddress), mtls: true, principal: id.principal, namespace: id.namespace} satisfies Peer
        this.trackInbound(l, ts, true)
        l.http.emit('connection', ts)
      })
      server.on('tlsClientError', () => {})
      t = {server, opts: o}
      this.tlsServers.set(l, t)
    } else if (t.opts !== o) {
      t.server.setSecureContext(o) // rotation: new handshakes use the new certificate, open connections stay
      t.opts = o
    }
    return t.server
  }

  private inboundCluster(l: Listener): Cluster {
    const spec = l.spec as Extract<ListenerSpec, {role: 'inbound'}>
    const appHost = spec.appHost ?? spec.host
    const appPort = spec.appPort ?? l.routePort + APP_PORT_OFFSET
    const self: Endpoint = {
      address: appHost,
      podName: this.identity.podName,
      namespace: this.identity.namespace,
      labels: this.identity.labels,
      serviceAccount: this.identity.serviceAccount,
      sidecar: true,
      ready: true,
      ports: [l.routePort],
    }
    const cs: ClusterSpec = {name: `inbound|${l.routePort}||`, kind: 'inbound', host: '', port: l.routePort, policy: PLAIN_POLICY, endpoints: [{endpoint: self, address: appHost, port: appPort}]}
    // the app is reached from the pod's own address, in plaintext
    const c = new Cluster(cs, {...this.clusters.env, localAddress: undefined, upstreamTls: undefined})
    this.clusters.clusters.set(cs.name, c)
    return c
  }

  // --- config --------------------------------------------------------------------------------

  applySnapshot(snapshot: MeshSnapshot): ApplyResult {
    this.security.onSnapshot?.(snapshot, this.identity)
    const warnings: string[] = []
    const specs = outboundClusterSpecs(snapshot, this.identity.namespace)
    const clusters = this.clusters.update(specs, (name) => name.startsWith('inbound|'))
    let sidecarTable: RouteTable | undefined
    const gatewayTables = new Map<number, RouteTable>()
    for (const l of this.listeners) {
      if (l.role === 'gateway' && !gatewayTables.has(l.routePort)) {
        const t = compileRouteTable(snapshot, {kind: 'gateway', identity: this.identity, serverPort: l.routePort})
        gatewayTables.set(l.routePort, t)
        warnings.push(...t.warnings)
      } else if (l.role === 'outbound' && !sidecarTable) {
        sidecarTable = compileRouteTable(snapshot, {kind: 'sidecar', identity: this.identity})
        warnings.push(...sidecarTable.warnings)
      }
    }
    const endpointsByIp = new Map<string, Endpoint>()
    for (const e of snapshot.endpoints) endpointsByIp.set(e.address, e)
    const services = new Map<string, ServiceEntry>()
    for (const s of snapshot.services) services.set(serviceFqdn(s), s)
    const inboundService = new Map<number, ServiceTags>()
    for (const l of this.listeners) {
      if (l.role !== 'inbound') continue
      const svc = snapshot.services.find((s) => s.namespace === this.identity.namespace && Object.keys(s.selector ?? {}).length > 0 && labelsMatch(s.selector, this.identity.labels) && s.ports.some((p) => p.targetPort === l.routePort))
      if (svc) inboundService.set(l.routePort, this.serviceTagsFor(serviceFqdn(svc), svc))
    }
    this.peerTags.clear()
    this.selfTagsMtls = {...this.selfTags, principal: this.security.ownPrincipal?.() ?? spiffeId(snapshot.trustDomain || 'cluster.local', this.identity.namespace, this.identity.serviceAccount)}
    this.state = {snapshot, generation: snapshot.generation, sidecarTable, gatewayTables, endpointsByIp, services, inboundService, warnings, appliedAt: new Date().toISOString()}
    this.drainInbound()
    return {generation: snapshot.generation, warnings, clusters}
  }

  // --- tags ----------------------------------------------------------------------------------

  serviceTagsFor(fqdn: string, svc?: ServiceEntry): ServiceTags {
    let t = this.serviceTags.get(fqdn)
    if (!t) {
      const parts = fqdn.split('.')
      t = svc ? {host: fqdn, name: svc.name, namespace: svc.namespace} : {host: fqdn, name: parts[0] ?? fqdn, namespace: parts.length > 2 ? parts[1] : 'unknown'}
      this.serviceTags.set(fqdn, t)
    }
    return t
  }

  tagsOfEndpoint(e: Endpoint, mtls: boolean): WorkloadTags {
    let t = this.hostTags.get(e)
    if (!t) {
      const plain: WorkloadTags = {
        workload: workloadName(e.podName),
        namespace: e.namespace,
        principal: 'unknown',
        app: e.labels.app ?? e.labels['app.kubernetes.io/name'] ?? 'unknown',
        version: e.labels.version ?? e.labels['app.kubernetes.io/version'] ?? 'unknown',
      }
      t = {plain, mtls: {...plain, principal: spiffeId(this.state.snapshot?.trustDomain ?? 'cluster.local', e.namespace, e.serviceAccount)}}
      this.hostTags.set(e, t)
    }
    return mtls ? t.mtls : t.plain
  }

  tagsOfPeer(peer: Peer): WorkloadTags {
    const key = `${peer.ip}|${peer.principal ?? ''}`
    let t = this.peerTags.get(key)
    if (!t) {
      const e = this.state.endpointsByIp.get(peer.ip)
      if (e) t = {...this.tagsOfEndpoint(e, false), principal: peer.principal ?? 'unknown'}
      else t = {...UNKNOWN_WORKLOAD, namespace: peer.namespace ?? 'unknown', principal: peer.principal ?? 'unknown'}
      if (this.peerTags.size < 10_000) this.peerTags.set(key, t)
    }
    return t
  }

  // --- requests ------------------------------------------------------------------------------

  private onRequest(l: Listener, req: http.IncomingMessage, res: http.ServerResponse): void {
    const ex = new Exchange(this, l, req, res)
    try {
      ex.begin()
    } catch (error) {
      ex.fail(error as Error)
    }
  }

  passthroughCluster(address: string, port: number): Cluster {
    const key = `${address}:${port}`
    let c = this.passthrough.get(key)
    if (!c) {
      const ep: Endpoint = this.state.endpointsByIp.get(address) ?? {address, podName: 'unknown', namespace: 'unknown', labels: {}, serviceAccount: 'default', sidecar: false, ready: true, ports: [port]}
      c = new Cluster({name: 'PassthroughCluster', kind: 'passthrough', host: '', port, policy: PLAIN_POLICY, endpoints: [{endpoint: ep, address, port}]}, this.clusters.env)
      if (this.passthrough.size > 256) this.passthrough.clear()
      this.passthrough.set(key, c)
    }
    return c
  }

  // --- admin views ---------------------------------------------------------------------------

  private clusterStatsSources() {
    const out: {name: string; stats: ReturnType<ClusterManager['statsFor']>; membershipTotal: number; membershipHealthy: number}[] = []
    for (const [name, stats] of this.clusters.allStats()) {
      const c = this.clusters.get(name)
      out.push({name, stats, membershipTotal: c?.hosts.length ?? 0, membershipHealthy: c ? c.hosts.filter((h) => !h.monitor?.ejected).length : 0})
    }
    return out
  }

  clusterStatus(): ClusterStatus[] {
    const out: ClusterStatus[] = []
    for (const c of this.clusters.clusters.values()) {
      const p = c.policy.pool
      const od = c.outlier?.config
      out.push({
        name: c.name,
        outlierDetection: od ? {...od} : null,
        circuitBreakers: {maxConnections: p.maxConnections, maxPendingRequests: p.maxPendingRequests, maxRequests: p.maxRequests, maxRequestsPerConnection: p.maxRequestsPerConnection, maxRetries: p.maxRetries},
        panic: c.panic,
        counters: {...c.stats},
        hosts: c.hostStatuses(),
      })
    }
    return out
  }

  configDump(): ConfigDump {
    const s = this.state
    const tables = [...s.gatewayTables.values(), ...(s.sidecarTable ? [s.sidecarTable] : [])]
    return {
      proxy: this.identity.id,
      kind: this.identity.kind,
      generation: s.generation,
      appliedAt: s.appliedAt,
      listeners: this.addresses,
      routeConfigs: tables.flatMap((t) =>
        t.routeConfigs.map((rc) => ({
          name: rc.name,
          virtualHosts: rc.virtualHosts.map((v) => ({name: v.name, domains: v.domains, routes: v.routes.map((r) => ({name: r.name, virtualService: r.virtualService}))})),
        })),
      ),
      clusters: [...this.clusters.clusters.keys()].sort(),
      warnings: s.warnings,
    }
  }

  metrics(): Promise<string> {
    return this.telemetry.metrics()
  }

  async close(): Promise<void> {
    if (this.closing) return
    this.closing = true
    const servers = this.listeners.map((l) => l.net ?? l.http)
    const closed = Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))))
    for (const l of this.listeners) l.http.closeIdleConnections()
    // give in-flight requests a moment, then cut what is left
    const t = setTimeout(() => {
      for (const s of this.sockets) s.destroy()
    }, 1000)
    t.unref()
    for (const s of this.sockets) if ((s as any)._httpMessage === undefined || (s as any)._httpMessage === null) s.destroy()
    await closed
    clearTimeout(t)
    this.clusters.destroy()
    for (const c of this.passthrough.values()) c.destroy()
    this.accessLog?.flush()
  }
}

function defaultSourceAddress(addr: string | undefined): string | undefined {
  if (!addr || addr === '127.0.0.1' || !/^127\.\d+\.\d+\.\d+$/.test(addr)) return undefined
  return addr
}

function stripV6(a: string | undefined): string {
  if (!a) return 'unknown'
  return a.startsWith('::ffff:') ? a.slice(7) : a
}

// ---------------------------------------------------------------------------------------------
// One downstream request

type LocalReason = {code: number; body: string; flags: number; details: string; headers?: string[]}

const LOCAL = {
  NR: {code: 404, body: '', flags: FLAG.NR, details: 'route_not_found'},
  NC: {code: 503, body: '', flags: FLAG.NC, details: 'cluster_not_found'},
  UH: {code: 503, body: 'no healthy upstream', flags: FLAG.UH, details: 'no_healthy_upstream'},
  UO: {code: 503, body: 'upstream connect error or disconnect/reset before headers. reset reason: overflow', flags: FLAG.UO, details: 'upstream_reset_before_response_started{overflow}', headers: ['x-envoy-overloaded', 'true']},
  UT: {code: 504, body: 'upstream request timeout', flags: FLAG.UT, details: 'response_timeout'},
  FI: {code: 0, body: 'fault filter abort', flags: FLAG.FI, details: 'fault_filter_abort'},
  RBAC: {code: 403, body: 'RBAC: access denied', flags: 0, details: 'rbac_access_denied_matched_policy[none]'},
  NO_CONFIG: {code: 503, body: '', flags: FLAG.NC, details: 'no_config'},
} satisfies Record<string, LocalReason>

class Exchange {
  readonly startTime = performance.now()
  readonly startEpoch = Date.now()
  flags = 0
  code = 0
  details = ''
  failureReason: string | undefined
  method: string
  authority: string
  /** path + query as received */
  fullPath: string
  path: string
  query: string | undefined
  requestId: string | undefined
  route: CompiledRoute | undefined
  cluster: Cluster | undefined
  service: ServiceTags = UNKNOWN_SERVICE
  retry: RetryPolicy | null = null
  timeoutMs = 0
  destHeaders: HeaderOperations | undefined
  routeHeaders: HeaderOperations | undefined
  upstreamHeaders: string[] = []
  upstreamPath = ''
  body: Buffer | null = null
  bytesReceived = 0
  bytesSent = 0
  attempt: Attempt | undefined
  tries = 0
  tried: Set<UpstreamHost> | undefined
  lastHost: UpstreamHost | undefined
  lastConn: UpstreamConnection | undefined
  lastMtls = false
  upstreamServiceTime: number | undefined
  responseStarted = false
  /** first body piece, held back so head + body can leave in one write */
  held: Buffer | undefined
  wroteBody = false
  done = false
  routeTimer: NodeJS.Timeout | undefined
  backoffTimer: NodeJS.Timeout | undefined
  hash: number | undefined
  setCookie: string | undefined
  peer: Peer | undefined
  mirrorsPending: Extract<RouteAction, {kind: 'forward'}>['mirrors'] | undefined

  constructor(
    readonly engine: Engine,
    readonly listener: Listener,
    readonly req: http.IncomingMessage,
    readonly res: http.ServerResponse,
  ) {
    this.method = req.method ?? 'GET'
    let url = req.url ?? '/'
    this.scan(req.rawHeaders)
    let authority = this.hHost ?? ''
    if (url.charCodeAt(0) !== 47 /* / */ && (url.startsWith('http://') || url.startsWith('https://'))) {
      // absolute-form request target (a client using the outbound listener as an HTTP proxy)
      const u = new URL(url)
      authority = u.host
      url = u.pathname + u.search
    }
    this.authority = authority
    this.fullPath = url
    const q = url.indexOf('?')
    this.path = q < 0 ? url : url.slice(0, q)
    this.query = q < 0 ? undefined : url.slice(q + 1)
    // one close listener per connection (not per request) notices a client that goes away
    const sock = req.socket as net.Socket & {[kExchange]?: Exchange}
    if (!(kExchange in sock)) sock.once('close', () => sock[kExchange]?.onDownstreamClose())
    sock[kExchange] = this
  }

  begin(): void {
    const l = this.listener
    // Envoy generates x-request-id when a request arrives without one (edge and sidecars alike)
    this.requestId = this.hRequestId ?? randomUUID()
    if (l.role === 'inbound') return this.beginInbound()
    const st = this.engine.state
    const table = l.role === 'gateway' ? st.gatewayTables.get(l.routePort) : st.sidecarTable
    if (!table) return this.localReply(LOCAL.NO_CONFIG)
    let vh = table.virtualHost(this.authority)
    let port = vh?.port ?? 0
    if (!vh && l.role === 'outbound') {
      // an IP:port no service owns: Envoy's PassthroughCluster (ALLOW_ANY)
      const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d+)$/.exec(this.authority)
      if (m) return this.forwardPassthrough(m[1], Number(m[2]))
    }
    if (!vh) return this.localReply(LOCAL.NR)
    const rr: RouteRequest = new LazyRouteRequest(this.req, this.method, this.path, this.query, this.authority, port)
    const route = selectRoute(vh.vhost, rr)
    if (!route) {
      if (vh.vhost.service) this.service = this.engine.serviceTagsFor(`${vh.vhost.service.name}.${vh.vhost.service.namespace}.svc.cluster.local`, vh.vhost.service)
      return this.localReply(LOCAL.NR)
    }
    this.route = route
    const a = route.action
    if (a.kind === 'direct') {
      return this.localReply({code: a.status, body: a.body, flags: 0, details: 'direct_response', headers: responseOpsHeaders(a.headers?.response)})
    }
    if (a.kind === 'redirect') {
      const scheme = a.scheme ?? 'http'
      const host = a.authority ?? this.authority
      const loc = `${scheme}://${a.port ? `${host.split(':')[0]}:${a.port}` : host}${a.uri ?? this.fullPath}`
      return this.localReply({code: a.status, body: '', flags: 0, details: 'redirect', headers: ['location', loc]})
    }
    this.readBody(() => this.afterBody(a, port))
  }

  private afterBody(a: Extract<RouteAction, {kind: 'forward'}>, _port: number): void {
    const f = a.fault
    if (f) {
      const rnd = this.engine.random
      if (f.delayPercent > 0 && f.delayMs > 0 && rnd() * 100 < f.delayPercent) {
        this.flags |= FLAG.DI
        this.backoffTimer = setTimeout(() => {
          this.backoffTimer = undefined
          if (!this.done) this.afterDelay(a)
        }, f.delayMs)
        return
      }
    }
    this.afterDelay(a)
  }

  private afterDelay(a: Extract<RouteAction, {kind: 'forward'}>): void {
    const f = a.fault
    if (f && f.abortPercent > 0 && this.engine.random() * 100 < f.abortPercent) {
      return this.localReply({...LOCAL.FI, code: f.abortStatus})
    }
    const dest = pickDestination(a, this.engine.random)
    if (!dest) return this.localReply(LOCAL.NC)
    const svc = this.engine.state.services.get(dest.host)
    this.service = this.engine.serviceTagsFor(dest.host, svc)
    const cluster = this.engine.clusters.get(dest.cluster)
    if (!cluster) return this.localReply(LOCAL.NC)
    this.cluster = cluster
    this.retry = a.retry
    this.timeoutMs = a.timeoutMs
    this.routeHeaders = a.headers
    this.destHeaders = dest.headers
    let authority = this.authority
    let path = this.fullPath
    if (a.rewrite) {
      if (a.rewrite.uri !== undefined || a.rewrite.regex) path = rewritePath(a.rewrite, this.path, this.query)
      if (a.rewrite.authority) authority = a.rewrite.authority
    }
    this.upstreamPath = path
    this.buildUpstreamHeaders(authority)
    if (a.mirrors.length > 0) this.mirror(a.mirrors)
    this.computeHash()
    this.startForwarding()
  }

  private beginInbound(): void {
    const l = this.listener
    const sock = this.req.socket as any
    this.peer = (sock[kPeer] as Peer | undefined) ?? {ip: stripV6(this.req.socket.remoteAddress), mtls: false}
    const svc = this.engine.state.inboundService.get(l.routePort)
    if (svc) this.service = svc
    const d = this.engine.security.authorize(
      {method: this.method, path: this.fullPath, host: this.authority, headers: this.req.headers, port: l.routePort, destination: this.engine.identity},
      this.peer,
    )
    if (!d.allowed) {
      return this.localReply({...LOCAL.RBAC, details: `rbac_access_denied_matched_policy[${d.policy ?? 'none'}]`})
    }
    this.cluster = l.inboundCluster
    this.retry = null
    this.timeoutMs = 0
    this.upstreamPath = this.fullPath
    this.readBody(() => {
      this.buildUpstreamHeaders(this.authority)
      this.startForwarding()
    })
  }

  private forwardPassthrough(address: string, port: number): void {
    this.cluster = this.engine.passthroughCluster(address, port)
    this.retry = null
    this.upstreamPath = this.fullPath
    this.readBody(() => {
      this.buildUpstreamHeaders(this.authority)
      this.startForwarding()
    })
  }

  private readBody(next: () => void): void {
    const cl = this.hContentLength
    if ((cl === undefined || cl === '0') && this.hTransferEncoding === undefined) {
      next()
      return
    }
    const chunks: Buffer[] = []
    let size = 0
    this.req.on('data', (c: Buffer) => {
      size += c.length
      if (size > MAX_BODY) {
        this.req.destroy()
        if (!this.done) this.localReply({code: 413, body: 'Payload Too Large', flags: 0, details: 'request_payload_too_large'})
        return
      }
      chunks.push(c)
    })
    this.req.once('end', () => {
      if (this.done) return
      this.body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)
      this.bytesReceived = this.body.length
      next()
    })
  }

  /**
   * One pass over the raw request headers: picks out what the proxy needs and keeps the rest
   * (in wire case and order, duplicates intact) for the upstream request. Names are lower-cased
   * only when their length matches a header we care about.
   */
  private scan(raw: string[]): void {
    const fwd: string[] = []
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]
      const v = raw[i + 1]
      switch (name.length) {
        case 2:
          if (eqi(name, 'te')) continue
          break
        case 4:
          if (eqi(name, 'host')) {
            this.hHost ??= v
            continue
          }
          break
        case 6:
          if (eqi(name, 'expect')) continue
          break
        case 7:
          if (eqi(name, 'upgrade') || eqi(name, 'trailer')) continue
          break
        case 10:
          if (eqi(name, 'connection') || eqi(name, 'keep-alive')) continue
          break
        case 12:
          if (eqi(name, 'x-request-id')) this.hRequestId ??= v
          break
        case 14:
          if (eqi(name, 'content-length')) {
            this.hContentLength = v
            continue
          }
          if (eqi(name, 'http2-settings')) continue
          break
        case 15:
          if (eqi(name, 'x-forwarded-for')) this.hXff = i + 1
          break
        case 16:
          if (eqi(name, 'proxy-connection')) continue
          break
        case 17:
          if (eqi(name, 'transfer-encoding')) {
            this.hTransferEncoding = v
            continue
          }
          if (eqi(name, 'x-forwarded-proto')) this.hXfp = true
          break
        case 23:
          if (eqi(name, 'x-forwarded-client-cert')) {
            this.hXfcc = this.hXfcc === undefined ? v : `${this.hXfcc},${v}`
            continue // rebuilt per hop (APPEND_FORWARD at inbound, passed on elsewhere)
          }
          break
      }
      fwd.push(name, v)
    }
    this.fwd = fwd
  }

  hHost: string | undefined
  hRequestId: string | undefined
  hContentLength: string | undefined
  hTransferEncoding: string | undefined
  /** index of the x-forwarded-for value in rawHeaders */
  hXff: number | undefined
  hXfp = false
  hXfcc: string | undefined
  fwd: string[] = []

  private buildUpstreamHeaders(authority: string): void {
    const role = this.listener.role
    const out = this.fwd
    out.push('host', authority)
    if (!this.hXfp) out.push('x-forwarded-proto', 'http')
    if (this.hRequestId === undefined && this.requestId) out.push('x-request-id', this.requestId)
    if (role === 'gateway') {
      // the edge appends the downstream address
      const ip = stripV6(this.req.socket.remoteAddress)
      if (this.hXff === undefined) out.push('x-forwarded-for', ip)
      else for (let i = 0; i < out.length; i += 2) if (out[i].length === 15 && eqi(out[i], 'x-forwarded-for')) out[i + 1] = `${out[i + 1]}, ${ip}`
    }
    if (role === 'inbound') {
      if (this.peer?.mtls) {
        // Istio sidecars APPEND_FORWARD: keep what the caller sent over mTLS and add our element; plaintext gets none
        const mine = this.engine.security.forwardClientCert?.(this.peer, this.req.socket as tls.TLSSocket)
        const prior = this.hXfcc
        const xfcc = prior && mine ? `${prior},${mine}` : (mine ?? prior)
        if (xfcc) out.push('x-forwarded-client-cert', xfcc)
      }
    }
    // gateway and outbound sanitize XFCC (there is no client certificate to vouch for)
    // VS-9: route-level operations first, then destination-level (which win on `set`)
    if (this.routeHeaders?.request) applyOps(out, this.routeHeaders.request, true)
    if (this.destHeaders?.request) applyOps(out, this.destHeaders.request, true)
    this.upstreamHeaders = out
  }

  private computeHash(): void {
    const c = this.cluster
    if (!c || c.policy.lb.kind !== 'RING_HASH') return
    const key = c.policy.lb.key
    let v = hashKeyOf(key, {headers: this.req.headers, sourceIp: stripV6(this.req.socket.remoteAddress), query: this.query})
    if (v === undefined && key.kind === 'cookie' && key.ttlMs !== undefined) {
      // Envoy generates the affinity cookie when the request has none
      v = randomUUID().replace(/-/g, '').slice(0, 16)
      const maxAge = Math.round(key.ttlMs / 1000)
      this.setCookie = `${key.name}=${v}${key.path ? `; Path=${key.path}` : ''}${maxAge > 0 ? `; Max-Age=${maxAge}` : ''}; HttpOnly`
    }
    this.hash = v === undefined ? undefined : hash32(v)
  }

  // --- upstream attempts ---------------------------------------------------------------------

  private startForwarding(): void {
    if (this.done) return
    if (this.timeoutMs > 0) {
      this.routeTimer = setTimeout(() => this.onRouteTimeout(), this.timeoutMs)
    }
    this.startAttempt()
  }

  private startAttempt(): void {
    if (this.done) return
    const c = this.cluster!
    const avoid = this.tried && this.retry?.avoidPreviousHosts && c.policy.lb.kind !== 'RING_HASH' ? this.tried : undefined
    const host = c.pick(this.hash, avoid)
    if (!host) {
      c.stats.upstream_cx_none_healthy++
      return this.localReply(LOCAL.UH)
    }
    this.tries++
    if (this.retry && this.retry.attempts > 0) (this.tried ??= new Set()).add(host)
    this.lastHost = host
    const att = new Attempt(this, host, c.poolFor(host), this.tries > 1)
    this.attempt = att
    host.active++
    host.rqTotal++
    att.pool.newStream(att)
  }

  /** The pool handed us a connection: send the request. */
  dispatch(att: Attempt, conn: UpstreamConnection): void {
    this.lastConn = conn
    this.lastMtls = conn.socket instanceof tls.TLSSocket
    att.sentAt = performance.now()
    const ptt = this.retry?.perTryTimeoutMs ?? 0
    if (ptt > 0) att.timer = setTimeout(() => this.onPerTryTimeout(att), ptt)
    const max = this.cluster!.policy.pool.maxRequestsPerConnection
    conn.dispatch({method: this.method, path: this.upstreamPath, headers: this.upstreamHeaders, body: this.body, close: max > 0 && conn.served >= max}, att)
  }

  /** No connection: overflow (UO, never retried) or a connect failure (UF, maybe retried). */
  onPoolFailure(att: Attempt, reason: PoolFailure, err?: Error): void {
    if (att !== this.attempt || this.done) return
    if (reason === 'overflow') return this.localReply(LOCAL.UO)
    // DR-7: a connect failure counts as 503 for outlier detection (a connect timeout as 504)
    this.cluster!.outlier?.putResult(att.host.key, reason === 'connect_timeout' ? 504 : 503)
    this.failureReason = err?.message
    if (this.mayRetry(CONNECT_RETRY)) return this.scheduleRetry()
    this.localReply({
      code: 503,
      body: `upstream connect error or disconnect/reset before headers. ${this.tries > 1 ? 'retried and the latest reset reason' : 'reset reason'}: connection failure${err ? `, transport failure reason: ${err.message}` : ''}`,
      flags: FLAG.UF,
      details: 'upstream_reset_before_response_started{connection_failure}',
    })
  }

  onHeaders(att: Attempt, status: number, raw: string[], resume: () => void): boolean {
    if (att !== this.attempt || this.done) return false
    att.resume = resume
    if (att.timer) clearTimeout(att.timer)
    const c = this.cluster!
    c.outlier?.putResult(att.host.key, status)
    countStatus(c, status)
    this.upstreamServiceTime = performance.now() - att.sentAt
    if (status >= 400 && this.retry && this.retriableStatus(status) && this.mayRetry(-1)) {
      att.discard = true
      return true
    }
    this.code = status
    this.details = 'via_upstream'
    const out: string[] = []
    const ops = this.routeHeaders?.response || this.destHeaders?.response
    for (let i = 0; i < raw.length; i += 2) {
      const k = raw[i]
      const n = k.length
      if ((n === 2 || n === 6 || n === 7 || n === 10 || n === 16 || n === 17) && RESP_HOP_BY_HOP.has(k.toLowerCase())) continue
      out.push(k, raw[i + 1])
    }
    out.push('server', 'istio-envoy', 'x-envoy-upstream-service-time', String(Math.round(this.upstreamServiceTime)))
    if (this.setCookie) out.push('set-cookie', this.setCookie)
    if (ops) {
      if (this.routeHeaders?.response) applyOps(out, this.routeHeaders.response, true)
      if (this.destHeaders?.response) applyOps(out, this.destHeaders.response, true)
    }
    this.responseStarted = true
    try {
      this.res.writeHead(status, out)
    } catch {
      this.res.writeHead(status)
    }
    return true
  }

  onData(att: Attempt, chunk: Buffer, final: boolean): boolean {
    if (att !== this.attempt || att.discard || this.done) return true
    this.bytesSent += chunk.length
    // a body that is complete with its first piece leaves together with the head, in one write
    if (final && !this.wroteBody) {
      this.held = chunk
      return true
    }
    this.wroteBody = true
    if (!this.res.write(chunk)) {
      this.res.once('drain', att.resume!)
      return false
    }
    return true
  }

  onComplete(att: Attempt): void {
    if (att !== this.attempt || this.done) return
    if (att.discard) {
      this.failureReason = undefined
      return this.scheduleRetry()
    }
    if (att.isRetry) this.cluster!.stats.upstream_rq_retry_success++
    this.cluster!.stats.upstream_rq_completed++
    const held = this.held
    this.held = undefined
    this.res.end(held)
    this.finish()
  }

  onError(att: Attempt, err: Error): void {
    if (att !== this.attempt || this.done || att.aborted) return
    if (this.responseStarted) {
      // reset mid-response: the downstream stream is reset too
      this.flags |= FLAG.UC
      this.res.destroy()
      this.finish()
      return
    }
    if (!att.discard) this.cluster!.outlier?.putResult(att.host.key, 503) // a reset counts as 503 (DR-7)
    this.failureReason = (err as any).code ?? err.message
    if (att.discard || this.mayRetry(RESET_RETRY)) return this.scheduleRetry()
    this.localReply({
      code: 503,
      body: `upstream connect error or disconnect/reset before headers. ${this.tries > 1 ? 'retried and the latest reset reason' : 'reset reason'}: connection termination`,
      flags: FLAG.UC,
      details: 'upstream_reset_before_response_started{connection_termination}',
    })
  }

  private retriableStatus(status: number): boolean {
    const r = this.retry!
    const on = r.retryOn
    if (on & RETRY_ON['5XX'] && status >= 500) return true
    if (on & RETRY_ON.GATEWAY_ERROR && status >= 502 && status <= 504) return true
    if (on & RETRY_ON.RETRIABLE_4XX && status === 409) return true
    if (on & RETRY_ON.RETRIABLE_STATUS_CODES && r.statusCodes.includes(status)) return true
    return false
  }

  /** `conditions` −1 = the caller already checked the condition. Sets URX when out of attempts. */
  private mayRetry(conditions: number): boolean {
    const r = this.retry
    if (!r) return false
    if (conditions !== -1 && (r.retryOn & conditions) === 0) return false
    const c = this.cluster!
    if (this.tries > r.attempts) {
      this.flags |= FLAG.URX
      c.stats.upstream_rq_retry_limit_exceeded++
      return false
    }
    if (c.rm.retries >= c.policy.pool.maxRetries) {
      c.stats.upstream_rq_retry_overflow++
      return false
    }
    return true
  }

  private scheduleRetry(): void {
    const c = this.cluster!
    c.stats.upstream_rq_retry++
    c.rm.retries++
    this.retriesHeld++
    const r = this.retry!
    // Envoy's jittered exponential backoff: uniform in [0, (2^n − 1) × base), capped
    const mult = 2 ** this.tries - 1
    const delay = Math.min(this.engine.random() * mult * r.backoffBaseMs, r.backoffMaxMs)
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = undefined
      this.startAttempt()
    }, delay)
  }

  retriesHeld = 0

  private onPerTryTimeout(att: Attempt): void {
    if (att !== this.attempt || this.done) return
    const c = this.cluster!
    c.stats.upstream_rq_per_try_timeout++
    c.outlier?.putResult(att.host.key, 504)
    att.abort()
    this.failureReason = 'per_try_timeout'
    if (this.mayRetry(RESET_RETRY)) return this.scheduleRetry()
    this.localReply(LOCAL.UT)
  }

  private onRouteTimeout(): void {
    this.routeTimer = undefined
    if (this.done) return
    const c = this.cluster!
    c.stats.upstream_rq_timeout++
    const att = this.attempt
    if (att) {
      if (att.conn) c.outlier?.putResult(att.host.key, 504)
      att.abort()
    }
    if (this.responseStarted) {
      this.flags |= FLAG.UT
      this.res.destroy()
      this.finish()
      return
    }
    this.localReply(LOCAL.UT)
  }

  onDownstreamClose(): void {
    if (this.done) return
    if (this.res.writableFinished) return
    this.flags |= FLAG.DC
    this.attempt?.abort()
    if (!this.responseStarted) this.code = 0
    this.finish()
  }

  private mirror(mirrors: Extract<RouteAction, {kind: 'forward'}>['mirrors']): void {
    const rnd = this.engine.random
    for (const m of mirrors) {
      if (m.percent < 100 && rnd() * 100 >= m.percent) continue
      const c = this.engine.clusters.get(m.cluster)
      if (!c) continue
      const host = c.pick(undefined)
      if (!host) continue
      const headers = this.upstreamHeaders.slice()
      for (let i = 0; i < headers.length; i += 2) if (headers[i] === 'host') headers[i + 1] = shadowAuthority(headers[i + 1])
      const mr = new MirrorRequest(host, c.poolFor(host), {path: this.upstreamPath, method: this.method, headers, body: this.body}, c)
      host.active++
      host.rqTotal++
      mr.pool.newStream(mr)
    }
  }

  // --- replies & bookkeeping -----------------------------------------------------------------

  localReply(r: LocalReason): void {
    if (this.done) return
    this.flags |= r.flags
    this.code = r.code
    this.details = r.details
    if (this.responseStarted) {
      this.res.destroy()
      this.finish()
      return
    }
    this.responseStarted = true
    const body = r.body
    const headers = ['content-length', String(Buffer.byteLength(body)), 'content-type', 'text/plain', 'server', 'istio-envoy']
    if (r.headers) headers.push(...r.headers)
    try {
      this.res.writeHead(r.code, headers)
      this.res.end(this.method === 'HEAD' ? undefined : body)
      this.bytesSent = this.method === 'HEAD' ? 0 : Buffer.byteLength(body)
    } catch {
      this.res.destroy()
    }
    this.finish()
  }

  fail(err: Error): void {
    if (this.done) return
    this.failureReason = err.message
    this.localReply({code: 500, body: '', flags: FLAG.LR, details: 'internal_error'})
  }

  private finish(): void {
    if (this.done) return
    this.done = true
    if (this.routeTimer) clearTimeout(this.routeTimer)
    if (this.backoffTimer) clearTimeout(this.backoffTimer)
    const att = this.attempt
    if (att) {
      if (att.timer) clearTimeout(att.timer)
      if (!att.released) att.abort()
    }
    if (this.retriesHeld > 0 && this.cluster) this.cluster.rm.retries -= this.retriesHeld
    const e = this.engine
    const l = this.listener
    const durationMs = performance.now() - this.startTime
    const inbound = l.role === 'inbound'
    const host = this.lastHost
    const dest = inbound ? (this.peer?.mtls ? e.selfTagsMtls : e.selfTags) : host && this.cluster?.spec.kind === 'outbound' ? e.tagsOfEndpoint(host.endpoint, this.lastMtls) : UNKNOWN_WORKLOAD
    const src = inbound ? e.tagsOfPeer(this.peer!) : this.lastMtls ? e.selfTagsMtls : e.selfTags
    e.telemetry.record({
      reporter: inbound ? 'destination' : 'source',
      source: src,
      destination: dest,
      service: this.service,
      code: this.code,
      flags: this.flags,
      security: inbound ? (this.peer?.mtls ? 'mutual_tls' : 'none') : 'unknown',
      durationMs,
      requestBytes: this.bytesReceived,
      responseBytes: this.bytesSent,
    })
    if (e.accessLog) {
      const h = this.req.headers
      e.accessLog.log({
        startTime: this.startEpoch,
        method: this.method,
        path: this.fullPath,
        protocol: `HTTP/${this.req.httpVersion}`,
        code: this.code,
        flags: this.flags,
        details: this.details,
        upstreamTransportFailureReason: this.failureReason,
        bytesReceived: this.bytesReceived,
        bytesSent: this.bytesSent,
        durationMs,
        upstreamServiceTimeMs: this.upstreamServiceTime,
        forwardedFor: first(h['x-forwarded-for']),
        userAgent: first(h['user-agent']),
        requestId: this.requestId,
        authority: this.authority,
        upstreamHost: host?.key,
        upstreamCluster: this.cluster?.name,
        upstreamLocalAddress: this.lastConn?.localAddress,
        downstreamLocalAddress: this.listener.localAddress,
        downstreamRemoteAddress: `${stripV6(this.req.socket.remoteAddress)}:${this.req.socket.remotePort ?? 0}`,
        routeName: inbound ? 'default' : this.route?.name,
      })
    }
  }
}

/** One try of a request on one host: the pool's waiter and the upstream connection's handler. */
class Attempt implements PoolWaiter<UpstreamConnection>, UpstreamHandler {
  conn: UpstreamConnection | undefined
  abortFn: ((err?: Error) => void) | undefined
  resume: (() => void) | undefined
  timer: NodeJS.Timeout | undefined
  sentAt = 0
  discard = false
  aborted = false
  released = false

  constructor(
    readonly ex: Exchange,
    readonly host: UpstreamHost,
    readonly pool: HostPool<UpstreamConnection>,
    readonly isRetry: boolean,
  ) {}

  onPoolReady(conn: UpstreamConnection): void {
    this.conn = conn
    if (this.aborted) {
      this.release(true)
      return
    }
    this.ex.dispatch(this, conn)
  }

  onPoolFailure(reason: PoolFailure, error?: Error): void {
    this.released = true
    this.host.active--
    this.ex.onPoolFailure(this, reason, error)
  }

  // UpstreamHandler (callbacks from the HTTP/1.1 codec, ADR 0041)
  onConnect(abort: (err?: Error) => void): void {
    this.abortFn = abort
  }

  onHeaders(status: number, raw: string[], resume: () => void): boolean {
    return this.ex.onHeaders(this, status, raw, resume)
  }

  onData(chunk: Buffer, final: boolean): boolean {
    return this.ex.onData(this, chunk, final)
  }

  onComplete(): void {
    if (this.timer) clearTimeout(this.timer)
    this.release(true)
    this.ex.onComplete(this)
  }

  onError(err: Error): void {
    if (this.timer) clearTimeout(this.timer)
    this.release(false)
    this.ex.onError(this, err)
  }

  /** Stop this try: leave the pool queue, or reset the upstream request. */
  abort(): void {
    if (this.aborted) return
    this.aborted = true
    if (this.timer) clearTimeout(this.timer)
    if (this.released) return
    if (!this.conn) {
      this.pool.cancel(this)
      this.released = true
      this.host.active--
      return
    }
    if (this.abortFn) this.abortFn(new Error('aborted by proxy'))
    else this.release(false)
  }

  release(reusable: boolean): void {
    if (this.released) return
    this.released = true
    this.host.active--
    if (this.conn) this.pool.onStreamDone(this.conn, reusable && !this.conn.closed)
  }
}

/** A shadow copy (VS-10): its response is read and dropped. */
class MirrorRequest implements PoolWaiter<UpstreamConnection>, UpstreamHandler {
  conn: UpstreamConnection | undefined
  released = false
  constructor(
    readonly host: UpstreamHost,
    readonly pool: HostPool<UpstreamConnection>,
    readonly opts: RequestHead,
    readonly cluster: Cluster,
  ) {}

  onPoolReady(conn: UpstreamConnection): void {
    this.conn = conn
    const max = this.cluster.policy.pool.maxRequestsPerConnection
    conn.dispatch({...this.opts, close: max > 0 && conn.served >= max}, this)
  }

  onPoolFailure(): void {
    this.released = true
    this.host.active--
  }

  onHeaders(): boolean {
    return true
  }

  onData(): boolean {
    return true
  }

  onComplete(): void {
    this.release(true)
  }

  onError(): void {
    this.release(false)
  }

  private release(ok: boolean): void {
    if (this.released) return
    this.released = true
    this.host.active--
    if (this.conn) this.pool.onStreamDone(this.conn, ok && !this.conn.closed)
  }
}

/** ASCII case-insensitive equality against a lower-case constant of the same length. */
function eqi(name: string, lower: string): boolean {
  return name === lower || name.toLowerCase() === lower
}

/** Routing's view of a request; Node builds req.headers only if a header match asks for it. */
class LazyRouteRequest implements RouteRequest {
  params?: URLSearchParams
  constructor(
    private req: http.IncomingMessage,
    readonly method: string,
    readonly path: string,
    readonly query: string | undefined,
    readonly authority: string,
    readonly port: number,
  ) {}

  get headers(): http.IncomingHttpHeaders {
    return this.req.headers
  }
}

function countStatus(c: Cluster, status: number): void {
  const s = c.stats
  if (status < 300) s.upstream_rq_2xx++
  else if (status < 400) s.upstream_rq_3xx++
  else if (status < 500) s.upstream_rq_4xx++
  else s.upstream_rq_5xx++
}

/** Applies set/add/remove to a flat [name, value, …] header list (names compared lower-case). */
function applyOps(list: string[], ops: HeaderOps, caseInsensitive = false): void {
  const drop = new Set<string>(ops.remove)
  for (const [k] of ops.set) drop.add(k)
  if (drop.size > 0) {
    let w = 0
    for (let i = 0; i < list.length; i += 2) {
      const k = caseInsensitive ? list[i].toLowerCase() : list[i]
      if (drop.has(k)) continue
      list[w++] = list[i]
      list[w++] = list[i + 1]
    }
    list.length = w
  }
  for (const [k, v] of ops.set) list.push(k, v)
  for (const [k, v] of ops.add) list.push(k, v)
}

function responseOpsHeaders(ops: HeaderOps | undefined): string[] | undefined {
  if (!ops) return undefined
  const out: string[] = []
  for (const [k, v] of ops.set) out.push(k, v)
  for (const [k, v] of ops.add) out.push(k, v)
  return out
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v
}
