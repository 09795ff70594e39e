// Config distribution, meshd's stand-in for istiod's xDS server (ADR 0032). Proxies subscribe
// to a chunked NDJSON stream of PushMessages, acknowledge each config generation they
// applied, and the CLI reads (or long-polls) who has acknowledged what.
//
// A generation is the store resourceVersion the snapshot was built at, so a client that
// wrote an object at resourceVersion R knows its change is in every generation ≥ R.
import type {IncomingMessage, ServerResponse} from 'node:http'
import type {KubeObject, ResourceType, Store} from './api/types.js'
import {canonical} from './api/util.js'
import {hasSidecar} from './controllers/kubelet.js'
import {resolveTargetPort} from './controllers/endpoints.js'
import {isDeleting, isPodReady, isPodTerminal, mapSelects} from './controllers/util.js'
import {CertRotator} from './pki/rotator.js'
import type {
  Endpoint,
  MeshSnapshot,
  ProxyIdentity,
  ProxySyncStatus,
  PushMessage,
  ServiceEntry,
  WorkloadSecret,
} from './dataplane/snapshot.js'

export const DISTRIBUTION_PATHS = {
  xds: '/mesh/v1/xds',
  ack: '/mesh/v1/ack',
  proxyStatus: '/mesh/v1/proxy-status',
} as const

/** Istio kinds pushed to proxies, by snapshot field. */
const ISTIO_KINDS = {
  virtualServices: {group: 'networking.istio.io', kind: 'VirtualService'},
  destinationRules: {group: 'networking.istio.io', kind: 'DestinationRule'},
  gateways: {group: 'networking.istio.io', kind: 'Gateway'},
  peerAuthentications: {group: 'security.istio.io', kind: 'PeerAuthentication'},
  authorizationPolicies: {group: 'security.istio.io', kind: 'AuthorizationPolicy'},
} as const

export interface SnapshotOptions {
  trustDomain?: string
  rootNamespace?: string
}

/** The answer of GET /mesh/v1/proxy-status. */
export interface ProxyStatusReport {
  /** the newest config generation */
  generation: number
  /** every connected proxy acknowledged `generation` (vacuously true with no proxies) */
  synced: boolean
  /** store resourceVersion the current config reflects: writes up to here are in `generation` */
  covered: number
  proxies: ProxyStatusEntry[]
}

const byName = (a: KubeObject, b: KubeObject) => {
  const ka = `${a.metadata.namespace ?? ''}/${a.metadata.name}`
  const kb = `${b.metadata.namespace ?? ''}/${b.metadata.name}`
  return ka < kb ? -1 : ka > kb ? 1 : 0
}

/** Istio objects as stored, minus bookkeeping proxies never need. */
function slim(o: KubeObject): KubeObject {
  const {managedFields: _m, ...meta} = o.metadata as KubeObject['metadata'] & {managedFields?: unknown}
  return {apiVersion: o.apiVersion, kind: o.kind, metadata: meta, spec: o.spec ?? {}}
}

/** Builds the snapshot proxies get from the store's current state. */
export function buildSnapshot(store: Store, generation: number, opts: SnapshotOptions = {}): MeshSnapshot {
  const t = (kind: string, group: string): ResourceType | undefined => store.typeFor(kind, group)
  const list = (type: ResourceType | undefined): KubeObject[] => (type ? store.list(type, undefined).items.sort(byName) : [])
  const pods = list(t('Pod', '')).filter((p) => !isDeleting(p) && !isPodTerminal(p) && (p.status as {podIP?: string} | undefined)?.podIP)

  const services: ServiceEntry[] = list(t('Service', '')).map((s) => {
    const selector = (s.spec?.selector ?? {}) as Record<string, string>
    const selected = pods.filter((p) => p.metadata.namespace === s.metadata.namespace && mapSelects(selector, p.metadata.labels))
    const ports = ((s.spec?.ports ?? []) as Array<{name?: string; port: number; targetPort?: number | string; protocol?: string}>).map((sp) => {
      // a named targetPort resolves against the first selected pod that declares it
      let target: number | undefined
      for (const p of selected) if ((target = resolveTargetPort(sp, p)) !== undefined) break
      if (target === undefined) target = typeof sp.targetPort === 'number' ? sp.targetPort : /^\d+$/.test(String(sp.targetPort ?? '')) ? Number(sp.targetPort) : sp.port
      return {...(sp.name ? {name: sp.name} : {}), port: sp.port, targetPort: target, protocol: sp.protocol ?? 'TCP'}
    })
    const clusterIP = s.spec?.clusterIP
    return {
      name: s.metadata.name,
      namespace: s.metadata.namespace ?? 'default',
      selector,
      ports,
      ...(typeof clusterIP === 'string' && clusterIP !== '' && clusterIP !== 'None' ? {clusterIP} : {}),
    }
  })

  const endpoints: Endpoint[] = pods.map((p) => ({
    address: (p.status as {podIP: string}).podIP,
    podName: p.metadata.name,
    namespace: p.metadata.namespace ?? 'default',
    labels: {...(p.metadata.labels ?? {})},
    serviceAccount: String(p.spec?.serviceAccountName ?? p.spec?.serviceAccount ?? 'default'),
    sidecar: hasSidecar(p),
    ready: isPodReady(p),
    ports: ((p.spec?.containers ?? []) as Array<{name?: string; ports?: Array<{containerPort: number}>}>)
      .filter((c) => c.name !== 'istio-proxy')
      .flatMap((c) => (c.ports ?? []).map((x) => x.containerPort)),
  }))

  const istio = (k: keyof typeof ISTIO_KINDS) => list(t(ISTIO_KINDS[k].kind, ISTIO_KINDS[k].group)).map(slim)
  return {
    generation,
    trustDomain: opts.trustDomain ?? 'cluster.local',
    rootNamespace: opts.rootNamespace ?? 'istio-system',
    services,
    endpoints,
    virtualServices: istio('virtualServices'),
    destinationRules: istio('destinationRules'),
    gateways: istio('gateways'),
    peerAuthentications: istio('peerAuthentications'),
    authorizationPolicies: istio('authorizationPolicies'),
  }
}

const RELEVANT = new Set(['core/pods', 'core/services', ...Object.values(ISTIO_KINDS).map((k) => `${k.group}/${k.kind}`)])
const relevant = (t: ResourceType) => RELEVANT.has(t.group ? `${t.group}/${t.kind}` : `core/${t.resource}`)

export interface DistributionOptions extends SnapshotOptions {
  store: Store
  /** coalesce bursts of changes into one push (default 10 ms) */
  debounceMs?: number
  /**
   * workload certificate for a subscribing proxy; pushed as a `secret` message before its first
   * config, and again with a fresh certificate at half of each certificate's remaining lifetime
   * for as long as the proxy stays subscribed (Istio's agent renews at 50% too)
   */
  issueSecret?: (identity: ProxyIdentity) => Promise<WorkloadSecret>
  /** renew after this fraction of a certificate's remaining lifetime (default 0.5) */
  renewFraction?: number
  log?: (message: string) => void
}

interface Subscriber {
  identity: ProxyIdentity
  res: ServerResponse
  sent: number
  acked: number
  connectedAt: string
  /** the last generation the proxy refused to apply, and why (an xDS NACK) */
  rejected?: {generation: number; error: string}
  /** renews this proxy's certificate while it is subscribed */
  rotator?: CertRotator
}

/** A proxy's sync state; `rejected` is set while its last refusal is newer than what it acked. */
export interface ProxyStatusEntry extends ProxySyncStatus {
  connectedAt: string
  rejected?: {generation: number; error: string}
}

interface Waiter {
  generation: number
  resolve: (r: ProxyStatusReport) => void
  timer: NodeJS.Timeout
}

export class ConfigDistributor {
  private current: MeshSnapshot
  private contentKey: string
  /** store resourceVersion the current snapshot reflects (≥ generation) */
  private coveredRv: number
  private readonly subs = new Map<string, Subscriber>()
  private waiters: Waiter[] = []
  private timer?: NodeJS.Timeout
  private unwatch?: () => void
  private stopped = false
  private readonly log: (m: string) => void

  constructor(private readonly o: DistributionOptions) {
    this.log = o.log ?? (() => undefined)
    const rv = Number(o.store.currentResourceVersion())
    this.current = buildSnapshot(o.store, rv, o)
    this.contentKey = contentOf(this.current)
    this.coveredRv = rv
  }

  get generation(): number {
    return this.current.generation
  }

  snapshot(): MeshSnapshot {
    return this.current
  }

  start(): void {
    this.unwatch = this.o.store.watch(undefined, this.o.store.currentResourceVersion(), (type, ev) => {
      if (relevant(type)) this.schedule()
      else this.cover(Number(ev.object.metadata.resourceVersion))
    })
  }

  /** Ends every stream (proxies reconnect to the next meshd) and answers pending waits. */
  stop(): void {
    this.stopped = true
    this.unwatch?.()
    if (this.timer) clearTimeout(this.timer)
    for (const s of this.subs.values()) {
      s.rotator?.stop()
      s.res.end()
    }
    this.subs.clear()
    for (const w of this.waiters) {
      clearTimeout(w.timer)
      w.resolve(this.report())
    }
    this.waiters = []
  }

  /** Rebuilds now (tests; also what the debounce timer calls). Returns the generation. */
  rebuild(): number {
    this.timer = undefined
    const rv = Number(this.o.store.currentResourceVersion())
    const next = buildSnapshot(this.o.store, rv, this.o)
    const key = contentOf(next)
    this.coveredRv = rv
    if (key !== this.contentKey) {
      this.current = next
      this.contentKey = key
      for (const s of this.subs.values()) this.send(s, {type: 'config', generation: next.generation, snapshot: next})
    }
    this.checkWaiters()
    return this.current.generation
  }

  report(): ProxyStatusReport {
    const proxies = [...this.subs.values()]
      .map((s): ProxyStatusEntry => ({
        proxy: s.identity.id,
        kind: s.identity.kind,
        sent: s.sent,
        acked: s.acked,
        state: s.sent === 0 ? 'NOT_SENT' : s.acked >= s.sent ? 'SYNCED' : 'STALE',
        connectedAt: s.connectedAt,
        ...(s.rejected && s.rejected.generation > s.acked ? {rejected: s.rejected} : {}),
      }))
      .sort((a, b) => (a.proxy < b.proxy ? -1 : 1))
    return {generation: this.current.generation, synced: proxies.every((p) => p.acked >= this.current.generation), covered: this.timer ? this.current.generation : this.coveredRv, proxies}
  }

  /**
   * Resolves once the config covering store resourceVersion `generation` is acknowledged by
   * every connected proxy, or with the current state after `timeoutMs`.
   */
  waitForSync(generation: number, timeoutMs: number): Promise<ProxyStatusReport> {
    if (this.isSynced(generation) || this.stopped) return Promise.resolve(this.report())
    return new Promise((resolve) => {
      const w: Waiter = {
        generation,
        resolve,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w)
          resolve(this.report())
        }, Math.max(0, timeoutMs)),
      }
      this.waiters.push(w)
    })
  }

  /** The extraRoutes hook for the API server: true when it handled the request. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const url = new URL(req.url ?? '/', 'http://meshd')
    switch (url.pathname) {
      case DISTRIBUTION_PATHS.xds:
        if (req.method !== 'GET') return methodNotAllowed(res, 'GET')
        await this.subscribe(url, req, res)
        return true
      case DISTRIBUTION_PATHS.ack:
        if (req.method !== 'POST') return methodNotAllowed(res, 'POST')
        await this.ack(req, res)
        return true
      case DISTRIBUTION_PATHS.proxyStatus: {
        if (req.method !== 'GET') return methodNotAllowed(res, 'GET')
        const wait = url.searchParams.get('wait')
        if (wait === null) return json(res, 200, this.report())
        const gen = Number(wait)
        const timeoutMs = Math.min(Number(url.searchParams.get('timeoutMs') ?? 10_000), 120_000)
        if (!Number.isFinite(gen) || !Number.isFinite(timeoutMs)) return json(res, 400, status(400, 'BadRequest', 'wait and timeoutMs must be numbers'))
        // a long poll must not outlive its client
        let gone = false
        res.on('close', () => (gone = true))
        const r = await this.waitForSync(gen, timeoutMs)
        if (!gone) json(res, 200, r)
        return true
      }
      default:
        return false
    }
  }

  // ---------------------------------------------------------------- internals

  private schedule(): void {
    if (this.stopped || this.timer) return
    this.timer = setTimeout(() => this.rebuild(), this.o.debounceMs ?? 10)
  }

  /** An irrelevant write still moves the covered resourceVersion (when nothing relevant is pending). */
  private cover(rv: number): void {
    if (this.timer || !Number.isFinite(rv)) return
    this.coveredRv = Math.max(this.coveredRv, rv)
    this.checkWaiters()
  }

  private isSynced(generation: number): boolean {
    if (generation > this.current.generation && (this.timer || generation > this.coveredRv)) return false
    const target = Math.min(generation, this.current.generation)
    return [...this.subs.values()].every((s) => s.acked >= target)
  }

  private checkWaiters(): void {
    if (this.waiters.length === 0) return
    const done = this.waiters.filter((w) => this.isSynced(w.generation))
    if (done.length === 0) return
    this.waiters = this.waiters.filter((w) => !done.includes(w))
    const r = this.report()
    for (const w of done) {
      clearTimeout(w.timer)
      w.resolve(r)
    }
  }

  private async subscribe(url: URL, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const q = url.searchParams
    const id = q.get('proxy') ?? ''
    const kind = q.get('kind') ?? 'sidecar'
    if (!id || (kind !== 'sidecar' && kind !== 'gateway')) {
      json(res, 400, status(400, 'BadRequest', 'query parameters: proxy=<id> is required and kind must be sidecar or gateway'))
      return
    }
    const identity = this.identityOf(id, kind, q, req.headers['x-mesh-proxy-identity'])
    let secret: WorkloadSecret | undefined
    let sub: Subscriber | undefined
    let rotator: CertRotator | undefined
    const issue = this.o.issueSecret
    if (issue) {
      rotator = new CertRotator({
        issue: () => issue(identity),
        renewFraction: this.o.renewFraction,
        // renewals go down the same stream; the proxy swaps contexts for new connections only
        onRotate: (next, previous) => {
          if (!previous || !sub) return
          if (this.write(sub, {type: 'secret', secret: next})) this.log(`xds: renewed the certificate of ${id} (${next.spiffeId}, valid until ${next.notAfter})`)
        },
        onError: (e) => this.log(`xds: renewing the certificate of ${id} failed, retrying: ${(e as Error).message}`),
      })
      try {
        secret = await rotator.start()
      } catch (e) {
        rotator.stop()
        this.log(`xds: no certificate for ${id}: ${(e as Error).message}`)
        json(res, 500, status(500, 'InternalError', `could not issue a workload certificate for ${id}: ${(e as Error).message}`))
        return
      }
    }
    if (this.stopped || req.destroyed) {
      rotator?.stop()
      res.end()
      return
    }
    const previous = this.subs.get(id)
    if (previous) previous.res.end()
    res.writeHead(200, {'Content-Type': 'application/x-ndjson', 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff'})
    res.socket?.setNoDelay(true)
    res.socket?.setKeepAlive(true, 15_000)
    sub = {identity, res, sent: 0, acked: 0, connectedAt: new Date().toISOString(), rotator}
    const self = sub
    this.subs.set(id, sub)
    const drop = () => {
      self.rotator?.stop()
      if (this.subs.get(id) === self) {
        this.subs.delete(id)
        this.checkWaiters()
      }
    }
    res.on('close', drop)
    req.on('close', drop)
    // a renewal may have landed while the stream was being set up
    const first = rotator?.current ?? secret
    if (first) this.write(sub, {type: 'secret', secret: first})
    this.send(sub, {type: 'config', generation: this.current.generation, snapshot: this.current})
    this.log(`xds: ${kind} ${id} subscribed (generation ${this.current.generation})`)
  }

  private identityOf(id: string, kind: 'sidecar' | 'gateway', q: URLSearchParams, header?: string | string[]): ProxyIdentity {
    // the xds client may send its whole identity as base64url JSON in a header
    let fromHeader: Partial<ProxyIdentity> = {}
    if (typeof header === 'string' && header) {
      try {
        const v = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as unknown
        if (v && typeof v === 'object') fromHeader = v as Partial<ProxyIdentity>
      } catch {
        // ignore a malformed header; the query string and the store still identify the proxy
      }
    }
    let labels: Record<string, string> = isStringMap(fromHeader.labels) ? {...fromHeader.labels} : {}
    const raw = q.get('labels')
    if (raw) {
      try {
        const v = JSON.parse(raw) as unknown
        if (v && typeof v === 'object' && !Array.isArray(v)) labels = Object.fromEntries(Object.entries(v).map(([k, x]) => [k, String(x)]))
      } catch {
        // labels=k=v,k2=v2 also works
        labels = Object.fromEntries(raw.split(',').map((kv) => kv.split('=')).filter((p) => p.length === 2) as Array<[string, string]>)
      }
    }
    const dot = id.lastIndexOf('.')
    const identity: ProxyIdentity = {
      id,
      kind,
      podName: q.get('podName') ?? str(fromHeader.podName) ?? (dot > 0 ? id.slice(0, dot) : id),
      namespace: q.get('namespace') ?? str(fromHeader.namespace) ?? (dot > 0 ? id.slice(dot + 1) : 'default'),
      labels,
      serviceAccount: q.get('serviceAccount') ?? str(fromHeader.serviceAccount) ?? 'default',
      address: q.get('address') ?? str(fromHeader.address) ?? '',
    }
    // the store knows the pod better than the query string does
    const podType = this.o.store.typeFor('Pod', '')
    const pod = podType ? this.o.store.get(podType, identity.namespace, identity.podName) : undefined
    if (pod) {
      identity.labels = {...(pod.metadata.labels ?? {})}
      identity.serviceAccount = String(pod.spec?.serviceAccountName ?? identity.serviceAccount)
      identity.address = String((pod.status as {podIP?: string} | undefined)?.podIP ?? identity.address)
    }
    return identity
  }

  private async ack(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body: {proxy?: unknown; generation?: unknown; rejected?: unknown; error?: unknown}
    try {
      body = JSON.parse(await readBody(req)) as typeof body
    } catch {
      json(res, 400, status(400, 'BadRequest', 'the ack body must be JSON: {"proxy": "<id>", "generation": <n>}'))
      return
    }
    const id = typeof body?.proxy === 'string' ? body.proxy : ''
    const gen = typeof body?.generation === 'number' ? body.generation : NaN
    if (!id || !Number.isFinite(gen)) {
      json(res, 400, status(400, 'BadRequest', 'the ack body needs proxy (string) and generation (number)'))
      return
    }
    const sub = this.subs.get(id)
    if (!sub) {
      json(res, 404, status(404, 'NotFound', `proxy "${id}" is not subscribed`))
      return
    }
    if (gen > sub.acked) sub.acked = Math.min(gen, sub.sent)
    if (typeof body.rejected === 'number') {
      sub.rejected = {generation: body.rejected, error: typeof body.error === 'string' ? body.error : 'rejected'}
      this.log(`xds: ${id} rejected generation ${body.rejected}: ${sub.rejected.error}`)
    }
    json(res, 200, {proxy: id, acked: sub.acked, generation: this.current.generation})
    this.checkWaiters()
  }

  private send(sub: Subscriber, msg: PushMessage & {type: 'config'}): void {
    if (this.write(sub, msg)) sub.sent = msg.generation
  }

  private write(sub: Subscriber, msg: PushMessage): boolean {
    if (sub.res.writableEnded || sub.res.destroyed) return false
    sub.res.write(JSON.stringify(msg) + '\n')
    return true
  }
}

/** Content identity of a snapshot: everything except the generation. */
function contentOf(s: MeshSnapshot): string {
  const {generation: _g, ...rest} = s
  return canonical(rest)
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined)

const isStringMap = (v: unknown): v is Record<string, string> =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string')

function status(code: number, reason: string, message: string) {
  return {kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code}
}

function json(res: ServerResponse, code: number, body: unknown): true {
  const text = JSON.stringify(body)
  res.writeHead(code, {'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text)})
  res.end(text)
  return true
}

function methodNotAllowed(res: ServerResponse, allow: string): true {
  res.setHeader('Allow', allow)
  return json(res, 405, status(405, 'MethodNotAllowed', `only ${allow} is allowed here`))
}

function readBody(req: IncomingMessage, limit = 64 * 1024): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > limit) {
        reject(new Error('body too large'))
        req.destroy()
      } else chunks.push(c)
    })
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}
