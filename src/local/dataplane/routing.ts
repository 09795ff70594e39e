// Compiles a MeshSnapshot into the route table one proxy uses (Istio's RDS, built the way
// istiod builds it): gateway context (Gateway servers + bound VirtualServices) or sidecar
// context (VirtualServices for `mesh`, default routes to every service). Matching follows
// VS-1..VS-10 in istio-semantics.md. Pure: no sockets, randomness injected.
import type {IncomingHttpHeaders} from 'node:http'
import type {KubeObject, MeshSnapshot, ProxyIdentity, ServiceEntry} from './snapshot.js'
import {labelsMatch, parseDuration, splitAuthority, type Random} from './util.js'

export const CLUSTER_DOMAIN = 'svc.cluster.local'

export type ProxyContext =
  /** serverPort: which Gateway `servers[].port.number` this listener serves (default 80) */
  | {kind: 'gateway'; identity: ProxyIdentity; serverPort?: number}
  | {kind: 'sidecar'; identity: ProxyIdentity}

/** What routing looks at; built once per request by the proxy. */
export interface RouteRequest {
  method: string
  /** path without the query string */
  path: string
  /** raw query string after `?`, or undefined */
  query: string | undefined
  headers: IncomingHttpHeaders
  authority: string
  /** destination port: the service port (sidecar) or the Gateway server port (gateway) */
  port: number
  /** lazily parsed query parameters */
  params?: URLSearchParams
}

export interface HeaderOps {
  set: [string, string][]
  add: [string, string][]
  remove: string[]
}

export interface HeaderOperations {
  request?: HeaderOps
  response?: HeaderOps
}

export interface DestinationRef {
  /** Envoy cluster name, e.g. outbound|5000|v1|hello.mesh-lab.svc.cluster.local */
  cluster: string
  /** FQDN of the destination service (or the host as written when it is not a service) */
  host: string
  port: number
  subset?: string
  weight: number
  headers?: HeaderOperations
}

export const RETRY_ON = {
  CONNECT_FAILURE: 1,
  REFUSED_STREAM: 2,
  UNAVAILABLE: 4,
  CANCELLED: 8,
  RETRIABLE_STATUS_CODES: 16,
  '5XX': 32,
  GATEWAY_ERROR: 64,
  RESET: 128,
  RETRIABLE_4XX: 256,
} as const

export interface RetryPolicy {
  /** number of retries (so attempts + 1 tries at most) */
  attempts: number
  /** 0 = no per-try timeout */
  perTryTimeoutMs: number
  retryOn: number
  statusCodes: number[]
  backoffBaseMs: number
  backoffMaxMs: number
  /** retry host predicate previous_hosts (off when the user turned it off; the engine also skips it for consistent hashing) */
  avoidPreviousHosts: boolean
}

export interface FaultPolicy {
  delayMs: number
  delayPercent: number
  abortStatus: number
  abortPercent: number
}

export interface MirrorPolicy {
  cluster: string
  host: string
  percent: number
}

export interface RewritePolicy {
  /** replace this matched prefix (or the whole path when the match was not a prefix) with `uri` */
  uri?: string
  matchedPrefix?: string
  regex?: {re: RegExp; substitution: string}
  authority?: string
}

export type RouteAction =
  | {
      kind: 'forward'
      destinations: DestinationRef[]
      totalWeight: number
      /** route timeout; 0 = disabled (VS-7) */
      timeoutMs: number
      /** null = retries disabled (attempts 0) */
      retry: RetryPolicy | null
      fault?: FaultPolicy
      mirrors: MirrorPolicy[]
      headers?: HeaderOperations
      rewrite?: RewritePolicy
    }
  | {kind: 'redirect'; status: number; uri?: string; authority?: string; scheme?: string; port?: number; headers?: HeaderOperations}
  | {kind: 'direct'; status: number; body: string; headers?: HeaderOperations}

export interface CompiledRoute {
  /** Envoy route name (%ROUTE_NAME%): the VS http route's `name`, `default` for a service's default route */
  name: string
  /** `<namespace>/<name>` of the VirtualService that produced it */
  virtualService?: string
  match: (r: RouteRequest) => boolean
  action: RouteAction
}

export interface VirtualHost {
  /** e.g. `hello.mesh-lab.svc.cluster.local:5000` (sidecar) or `hello.example.com:80` (gateway) */
  name: string
  domains: string[]
  routes: CompiledRoute[]
  /** sidecar: the service and port this virtual host belongs to */
  service?: ServiceEntry
  port: number
}

export interface RouteConfig {
  name: string
  virtualHosts: VirtualHost[]
}

export interface RouteTable {
  kind: 'gateway' | 'sidecar'
  generation: number
  routeConfigs: RouteConfig[]
  warnings: string[]
  /** Finds the virtual host for a request's Host header; `port` is the destination port to use. */
  virtualHost(authority: string): {vhost: VirtualHost; port: number} | undefined
}

// ---------------------------------------------------------------------------------------------
// String matching (StringMatch: exact | prefix | regex), RE2-ish on JS RegExp, full match.

type StrPred = (v: string | undefined) => boolean

/** RE2 syntax that JS spells differently: leading (?i), (?P<name>, \A, \z. */
export function compileRe2(re: string, extraFlags = ''): RegExp {
  let flags = extraFlags
  let src = re
  const lead = /^\(\?([imsU]+)\)/.exec(src)
  if (lead) {
    src = src.slice(lead[0].length)
    if (lead[1].includes('i') && !flags.includes('i')) flags += 'i'
    if (lead[1].includes('s') && !flags.includes('s')) flags += 's'
  }
  src = src.replace(/\(\?P</g, '(?<').replace(/\\A/g, '^').replace(/\\z/g, '$')
  return new RegExp(`^(?:${src})$`, flags)
}

function compileStringMatch(m: any, ignoreCase: boolean, what: string, warnings: string[]): StrPred | undefined {
  if (m === null || typeof m !== 'object') return undefined
  if (typeof m.exact === 'string') {
    const v = ignoreCase ? m.exact.toLowerCase() : m.exact
    return ignoreCase ? (s) => s !== undefined && s.toLowerCase() === v : (s) => s === v
  }
  if (typeof m.prefix === 'string') {
    const v = ignoreCase ? m.prefix.toLowerCase() : m.prefix
    return ignoreCase ? (s) => s !== undefined && s.toLowerCase().startsWith(v) : (s) => s !== undefined && s.startsWith(v)
  }
  if (typeof m.regex === 'string') {
    try {
      const re = compileRe2(m.regex)
      return (s) => s !== undefined && re.test(s)
    } catch (error) {
      warnings.push(`${what}: invalid regex ${JSON.stringify(m.regex)} (${(error as Error).message}); the match never succeeds`)
      return () => false
    }
  }
  return undefined
}

function headerValue(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name]
  if (v === undefined) return undefined
  return Array.isArray(v) ? v.join(',') : v
}

function pseudoHeader(r: RouteRequest, name: string): string | undefined {
  switch (name) {
    case ':authority': return r.authority
    case ':method': return r.method
    case ':path': return r.query === undefined ? r.path : `${r.path}?${r.query}`
    case ':scheme': return 'http'
    default: return headerValue(r.headers, name)
  }
}

function queryParam(r: RouteRequest, name: string): string | null {
  if (r.query === undefined) return null
  r.params ??= new URLSearchParams(r.query)
  return r.params.get(name)
}

type Pred = (r: RouteRequest) => boolean

/** One HTTPMatchRequest → predicate, or null when it can never apply to this proxy (VS-3 config-time fields). */
function compileMatch(m: any, ctx: ProxyContext, gatewayNames: Set<string>, what: string, warnings: string[]): {pred: Pred; prefix?: string} | null {
  const preds: Pred[] = []
  let prefix: string | undefined
  // config-time conditions
  if (m.sourceLabels && !labelsMatch(m.sourceLabels, ctx.identity.labels)) return null
  if (m.sourceNamespace && m.sourceNamespace !== ctx.identity.namespace) return null
  if (Array.isArray(m.gateways) && m.gateways.length > 0) {
    const ok = ctx.kind === 'sidecar' ? m.gateways.includes('mesh') : m.gateways.some((g: string) => gatewayNames.has(g))
    if (!ok) return null
  }
  if (m.uri) {
    const p = compileStringMatch(m.uri, m.ignoreUriCase === true, `${what}.uri`, warnings)
    if (p) preds.push((r) => p(r.path))
    if (typeof m.uri.prefix === 'string') prefix = m.uri.prefix
  }
  if (m.method) {
    const p = compileStringMatch(m.method, false, `${what}.method`, warnings)
    if (p) preds.push((r) => p(r.method))
  }
  if (m.authority) {
    const p = compileStringMatch(m.authority, false, `${what}.authority`, warnings)
    if (p) preds.push((r) => p(r.authority))
  }
  if (m.scheme) {
    const p = compileStringMatch(m.scheme, false, `${what}.scheme`, warnings)
    if (p) preds.push(() => p('http'))
  }
  if (typeof m.port === 'number') {
    const port = m.port
    preds.push((r) => r.port === port)
  }
  for (const [rawName, sm] of Object.entries((m.headers ?? {}) as Record<string, any>)) {
    const name = rawName.toLowerCase()
    const p = compileStringMatch(sm, false, `${what}.headers.${name}`, warnings)
    if (p) preds.push((r) => p(pseudoHeader(r, name)))
    else preds.push((r) => pseudoHeader(r, name) !== undefined) // `{}` = present
  }
  for (const [rawName, sm] of Object.entries((m.withoutHeaders ?? {}) as Record<string, any>)) {
    const name = rawName.toLowerCase()
    const p = compileStringMatch(sm, false, `${what}.withoutHeaders.${name}`, warnings)
    // Envoy invert_match: an absent header never matches an inverted value matcher;
    // an inverted present-match (`{}`) matches exactly when the header is absent.
    if (p) preds.push((r) => { const v = pseudoHeader(r, name); return v !== undefined && !p(v) })
    else preds.push((r) => pseudoHeader(r, name) === undefined)
  }
  for (const [name, sm] of Object.entries((m.queryParams ?? {}) as Record<string, any>)) {
    if (sm && typeof sm === 'object' && sm.exact === '') {
      preds.push((r) => queryParam(r, name) !== null) // `exact: ""` matches a bare `?key`
      continue
    }
    const p = compileStringMatch(sm, false, `${what}.queryParams.${name}`, warnings)
    if (p) preds.push((r) => { const v = queryParam(r, name); return v !== null && p(v) })
    else preds.push((r) => queryParam(r, name) !== null)
  }
  if (preds.length === 0) return {pred: () => true, prefix}
  if (preds.length === 1) return {pred: preds[0], prefix}
  return {pred: (r) => { for (const p of preds) if (!p(r)) return false; return true }, prefix}
}

// ---------------------------------------------------------------------------------------------
// Hosts

/** VS-1: a short name (no dots) resolves in the namespace of the object that names it. */
export function resolveHost(host: string, namespace: string): string {
  const h = host.toLowerCase()
  if (h.includes('.') || h === '*' || h.startsWith('*')) return h
  return `${h}.${namespace}.${CLUSTER_DOMAIN}`
}

export function serviceFqdn(svc: ServiceEntry): string {
  return `${svc.name}.${svc.namespace}.${CLUSTER_DOMAIN}`
}

export function clusterName(port: number, subset: string | undefined, host: string): string {
  return `outbound|${port}|${subset ?? ''}|${host}`
}

/** `*.example.com` style wildcard match of a concrete host against a pattern. */
export function hostMatches(pattern: string, host: string): boolean {
  if (pattern === '*') return true
  if (pattern.startsWith('*')) return host.endsWith(pattern.slice(1))
  return pattern === host
}

/** Two host patterns overlap (either may be a wildcard); returns the more specific one or undefined. */
function intersectHosts(a: string, b: string): string | undefined {
  if (a === b) return a
  if (a === '*') return b
  if (b === '*') return a
  if (a.startsWith('*') && hostMatches(a, b.startsWith('*') ? b.slice(1) : b)) return b
  if (b.startsWith('*') && hostMatches(b, a.startsWith('*') ? a.slice(1) : a)) return a
  return undefined
}

const byAge = (a: KubeObject, b: KubeObject): number => {
  const ta = a.metadata.creationTimestamp ?? ''
  const tb = b.metadata.creationTimestamp ?? ''
  if (ta !== tb) return ta < tb ? -1 : 1
  const ka = `${a.metadata.namespace}/${a.metadata.name}`
  const kb = `${b.metadata.namespace}/${b.metadata.name}`
  return ka < kb ? -1 : ka > kb ? 1 : 0
}

// ---------------------------------------------------------------------------------------------
// Route actions

function compileHeaderOps(h: any): HeaderOps | undefined {
  if (!h || typeof h !== 'object') return undefined
  const ops: HeaderOps = {
    set: Object.entries((h.set ?? {}) as Record<string, string>).map(([k, v]) => [k.toLowerCase(), String(v)]),
    add: Object.entries((h.add ?? {}) as Record<string, string>).map(([k, v]) => [k.toLowerCase(), String(v)]),
    remove: ((h.remove ?? []) as string[]).map((k) => k.toLowerCase()),
  }
  return ops.set.length + ops.add.length + ops.remove.length > 0 ? ops : undefined
}

function compileHeaders(h: any): HeaderOperations | undefined {
  if (!h || typeof h !== 'object') return undefined
  const request = compileHeaderOps(h.request)
  const response = compileHeaderOps(h.response)
  return request || response ? {request, response} : undefined
}

const DEFAULT_RETRY: RetryPolicy = Object.freeze({
  attempts: 2,
  perTryTimeoutMs: 0,
  retryOn: RETRY_ON.CONNECT_FAILURE | RETRY_ON.REFUSED_STREAM | RETRY_ON.UNAVAILABLE | RETRY_ON.CANCELLED | RETRY_ON.RETRIABLE_STATUS_CODES,
  statusCodes: [] as number[],
  backoffBaseMs: 25,
  backoffMaxMs: 250,
  avoidPreviousHosts: true,
}) as RetryPolicy

/** VS-6, as Istio converts HTTPRetry to an Envoy retry policy. */
export function compileRetry(r: any, warnings: string[] = [], what = 'retries'): RetryPolicy | null {
  if (r === undefined || r === null) return DEFAULT_RETRY
  const attempts = Number(r.attempts ?? 0)
  if (!(attempts > 0)) return null
  const out: RetryPolicy = {...DEFAULT_RETRY, statusCodes: [], attempts}
  if (typeof r.retryOn === 'string' && r.retryOn.trim() !== '') {
    let bits = 0
    for (const part0 of r.retryOn.split(',')) {
      const part = part0.trim()
      if (part === '') continue
      if (/^\d+$/.test(part)) {
        const code = Number(part)
        if (code >= 100 && code <= 599) out.statusCodes.push(code)
        continue
      }
      switch (part) {
        case 'connect-failure': bits |= RETRY_ON.CONNECT_FAILURE; break
        case 'refused-stream': bits |= RETRY_ON.REFUSED_STREAM; break
        case 'unavailable': bits |= RETRY_ON.UNAVAILABLE; break
        case 'cancelled': bits |= RETRY_ON.CANCELLED; break
        case 'retriable-status-codes': bits |= RETRY_ON.RETRIABLE_STATUS_CODES; break
        case '5xx': bits |= RETRY_ON['5XX']; break
        case 'gateway-error': bits |= RETRY_ON.GATEWAY_ERROR; break
        case 'reset': case 'reset-before-request': bits |= RETRY_ON.RESET; break
        case 'retriable-4xx': bits |= RETRY_ON.RETRIABLE_4XX; break
        case 'deadline-exceeded': case 'resource-exhausted': case 'internal': case 'envoy-ratelimited': case 'retriable-headers': case 'http3-post-connect-failure':
          break // gRPC/other conditions that plain HTTP/1.1 upstreams never produce
        default:
          warnings.push(`${what}.retryOn: unknown condition ${JSON.stringify(part)} ignored`)
      }
    }
    if (out.statusCodes.length > 0) bits |= RETRY_ON.RETRIABLE_STATUS_CODES
    out.retryOn = bits
  }
  const ptt = parseDuration(r.perTryTimeout)
  if (ptt !== undefined) out.perTryTimeoutMs = ptt
  const backoff = parseDuration(r.backoff)
  if (backoff !== undefined && backoff > 0) {
    out.backoffBaseMs = backoff
    out.backoffMaxMs = backoff * 10
  }
  if (r.retryIgnorePreviousHosts === false) out.avoidPreviousHosts = false
  return out
}

function percentOf(p: any, legacy?: any): number {
  if (p && typeof p === 'object' && p.value !== undefined) return Math.max(0, Math.min(100, Number(p.value)))
  if (typeof legacy === 'number') return Math.max(0, Math.min(100, legacy))
  return 0
}

function compileFault(f: any, what: string, warnings: string[]): FaultPolicy | undefined {
  if (!f || typeof f !== 'object') return undefined
  const out: FaultPolicy = {delayMs: 0, delayPercent: 0, abortStatus: 0, abortPercent: 0}
  if (f.delay) {
    const d = parseDuration(f.delay.fixedDelay)
    if (d === undefined) warnings.push(`${what}.fault.delay: only fixedDelay is supported`)
    else {
      out.delayMs = d
      out.delayPercent = percentOf(f.delay.percentage, f.delay.percent)
    }
  }
  if (f.abort) {
    if (typeof f.abort.httpStatus === 'number') {
      out.abortStatus = f.abort.httpStatus
      out.abortPercent = percentOf(f.abort.percentage)
    } else warnings.push(`${what}.fault.abort: only httpStatus is supported`)
  }
  return out.delayPercent > 0 || out.abortPercent > 0 ? out : undefined
}

// ---------------------------------------------------------------------------------------------
// Compilation

interface Registry {
  byFqdn: Map<string, ServiceEntry>
  ctx: ProxyContext
  warnings: string[]
}

function destinationOf(d: any, vsNamespace: string, contextPort: number, reg: Registry, what: string): Omit<DestinationRef, 'weight'> {
  const host = resolveHost(String(d?.host ?? ''), vsNamespace)
  const svc = reg.byFqdn.get(host)
  let port = Number(d?.port?.number ?? 0)
  if (!port) {
    if (svc && svc.ports.length === 1) port = svc.ports[0].port
    else if (svc && contextPort && svc.ports.some((p) => p.port === contextPort)) port = contextPort
    else if (svc && svc.ports.length > 0) {
      port = svc.ports[0].port
      reg.warnings.push(`${what}: destination ${host} has several ports and none was given; using ${port}`)
    } else port = contextPort
  }
  const subset = d?.subset ? String(d.subset) : undefined
  return {cluster: clusterName(port, subset, host), host, port, subset}
}

function compileAction(h: any, vs: KubeObject, contextPort: number, reg: Registry, what: string, matchedPrefix: string | undefined): RouteAction {
  const ns = vs.metadata.namespace ?? 'default'
  const headers = compileHeaders(h.headers)
  if (h.redirect) {
    const r = h.redirect
    return {kind: 'redirect', status: Number(r.redirectCode ?? 301), uri: r.uri, authority: r.authority, scheme: r.scheme, port: r.port, headers}
  }
  if (h.directResponse) {
    const body = h.directResponse.body
    const text = body?.string ?? (body?.bytes ? Buffer.from(String(body.bytes), 'base64').toString('latin1') : '')
    return {kind: 'direct', status: Number(h.directResponse.status ?? 200), body: text, headers}
  }
  if (h.delegate) reg.warnings.push(`${what}: delegate VirtualServices are not supported; route ignored`)
  const dests: DestinationRef[] = ((h.route ?? []) as any[]).map((rd, i) => ({
    ...destinationOf(rd.destination, ns, contextPort, reg, `${what}.route[${i}]`),
    weight: Number(rd.weight ?? 0),
    headers: compileHeaders(rd.headers),
  }))
  if (dests.length === 1) dests[0].weight = 100 // VS-5: a single destination takes everything
  let total = dests.reduce((s, d) => s + Math.max(0, d.weight), 0)
  if (dests.length > 1 && total === 0) {
    reg.warnings.push(`${what}: weights sum to 0; splitting evenly`)
    for (const d of dests) d.weight = 1
    total = dests.length
  }
  const mirrors: MirrorPolicy[] = []
  if (h.mirror) {
    const m = destinationOf(h.mirror, ns, contextPort, reg, `${what}.mirror`)
    const pct = h.mirrorPercentage === undefined ? (h.mirrorPercent === undefined ? 100 : Number(h.mirrorPercent)) : percentOf(h.mirrorPercentage)
    if (pct > 0) mirrors.push({cluster: m.cluster, host: m.host, percent: pct})
  }
  for (const [i, mp] of ((h.mirrors ?? []) as any[]).entries()) {
    const m = destinationOf(mp.destination, ns, contextPort, reg, `${what}.mirrors[${i}]`)
    const pct = mp.percentage === undefined ? 100 : percentOf(mp.percentage)
    if (pct > 0) mirrors.push({cluster: m.cluster, host: m.host, percent: pct})
  }
  let rewrite: RewritePolicy | undefined
  if (h.rewrite) {
    rewrite = {authority: h.rewrite.authority}
    if (typeof h.rewrite.uri === 'string') {
      rewrite.uri = h.rewrite.uri
      rewrite.matchedPrefix = matchedPrefix
    }
    if (h.rewrite.uriRegexRewrite?.match) {
      try {
        rewrite.regex = {re: new RegExp(h.rewrite.uriRegexRewrite.match, 'g'), substitution: String(h.rewrite.uriRegexRewrite.rewrite ?? '').replace(/\\(\d)/g, '$$$1')}
      } catch {
        reg.warnings.push(`${what}.rewrite.uriRegexRewrite: invalid regex ignored`)
      }
    }
  }
  return {
    kind: 'forward',
    destinations: dests,
    totalWeight: total,
    timeoutMs: parseDuration(h.timeout) ?? 0,
    retry: compileRetry(h.retries, reg.warnings, `${what}.retries`),
    fault: compileFault(h.fault, what, reg.warnings),
    mirrors,
    headers,
    rewrite,
  }
}

/** Istio emits one Envoy route per match entry (entries are ORed, VS-2). */
function compileHttpRoutes(vs: KubeObject, contextPort: number, reg: Registry, gatewayNames: Set<string>): CompiledRoute[] {
  const out: CompiledRoute[] = []
  const vsName = `${vs.metadata.namespace}/${vs.metadata.name}`
  for (const [i, h] of ((vs.spec?.http ?? []) as any[]).entries()) {
    const what = `VirtualService ${vsName} http[${i}]`
    const name = typeof h.name === 'string' && h.name !== '' ? h.name : '-'
    const matches = Array.isArray(h.match) && h.match.length > 0 ? h.match : [undefined]
    for (const [j, m] of matches.entries()) {
      let pred: Pred = () => true
      let prefix: string | undefined
      if (m !== undefined) {
        const c = compileMatch(m, reg.ctx, gatewayNames, `${what}.match[${j}]`, reg.warnings)
        if (c === null) continue
        pred = c.pred
        prefix = c.prefix
      }
      out.push({name, virtualService: vsName, match: pred, action: compileAction(h, vs, contextPort, reg, what, prefix)})
    }
  }
  return out
}

function defaultRoute(svc: ServiceEntry, port: number): CompiledRoute {
  const host = serviceFqdn(svc)
  return {
    name: 'default',
    match: () => true,
    action: {
      kind: 'forward',
      destinations: [{cluster: clusterName(port, undefined, host), host, port, weight: 100}],
      totalWeight: 100,
      timeoutMs: 0,
      retry: DEFAULT_RETRY,
      mirrors: [],
    },
  }
}

/** Does a Gateway select this proxy? */
export function gatewaySelects(gw: KubeObject, identity: ProxyIdentity): boolean {
  const sel = gw.spec?.selector as Record<string, string> | undefined
  if (!sel || Object.keys(sel).length === 0) return false
  return labelsMatch(sel, identity.labels)
}

export function compileRouteTable(snapshot: MeshSnapshot, ctx: ProxyContext): RouteTable {
  const reg: Registry = {byFqdn: new Map(), ctx, warnings: []}
  for (const s of snapshot.services) reg.byFqdn.set(serviceFqdn(s), s)
  return ctx.kind === 'gateway' ? compileGateway(snapshot, ctx, reg) : compileSidecar(snapshot, ctx, reg)
}

function compileGateway(snapshot: MeshSnapshot, ctx: Extract<ProxyContext, {kind: 'gateway'}>, reg: Registry): RouteTable {
  const serverPort = ctx.serverPort ?? 80
  const gateways = snapshot.gateways.filter((g) => gatewaySelects(g, ctx.identity)).sort(byAge)
  const gatewayNames = new Set<string>()
  const servers: {gw: KubeObject; host: string; nsAllowed: string}[] = []
  for (const g of gateways) {
    const gns = g.metadata.namespace ?? 'default'
    gatewayNames.add(`${gns}/${g.metadata.name}`)
    for (const [i, s] of ((g.spec?.servers ?? []) as any[]).entries()) {
      if (Number(s?.port?.number) !== serverPort) continue
      const proto = String(s?.port?.protocol ?? 'HTTP').toUpperCase()
      if (proto !== 'HTTP' && proto !== 'HTTP2') {
        reg.warnings.push(`Gateway ${gns}/${g.metadata.name} servers[${i}]: protocol ${proto} is not served by the embedded gateway`)
        continue
      }
      for (const h of (s.hosts ?? []) as string[]) {
        const slash = h.indexOf('/')
        const nsPart = slash >= 0 ? h.slice(0, slash) : '*'
        const hostPart = (slash >= 0 ? h.slice(slash + 1) : h).toLowerCase()
        servers.push({gw: g, host: hostPart, nsAllowed: nsPart === '.' ? gns : nsPart})
      }
    }
  }
  // domain → routes, in VirtualService age order (Istio merges a gateway's VS routes per host)
  const domains = new Map<string, CompiledRoute[]>()
  const vses = snapshot.virtualServices.slice().sort(byAge)
  for (const vs of vses) {
    const vns = vs.metadata.namespace ?? 'default'
    const bound = ((vs.spec?.gateways ?? []) as string[]).map((g) => (g.includes('/') ? g : `${vns}/${g}`))
    const boundHere = gateways.filter((g) => bound.includes(`${g.metadata.namespace ?? 'default'}/${g.metadata.name}`))
    if (boundHere.length === 0) continue
    let compiled: CompiledRoute[] | undefined
    for (const h of (vs.spec?.hosts ?? []) as string[]) {
      const vh = resolveHost(h, vns)
      for (const s of servers) {
        if (!boundHere.includes(s.gw)) continue
        if (s.nsAllowed !== '*' && s.nsAllowed !== vns) continue
        const domain = intersectHosts(vh, s.host)
        if (domain === undefined) continue
        compiled ??= compileHttpRoutes(vs, 0, reg, gatewayNames)
        const list = domains.get(domain) ?? []
        if (!domains.has(domain)) domains.set(domain, list)
        for (const r of compiled) if (!list.includes(r)) list.push(r)
      }
    }
  }
  const vhosts: VirtualHost[] = [...domains.entries()].map(([d, routes]) => ({name: `${d}:${serverPort}`, domains: [d, `${d}:*`], routes, port: serverPort}))
  const exact = new Map<string, VirtualHost>()
  const wild: VirtualHost[] = []
  let star: VirtualHost | undefined
  for (const v of vhosts) {
    const d = v.domains[0]
    if (d === '*') star = v
    else if (d.startsWith('*')) wild.push(v)
    else exact.set(d, v)
  }
  wild.sort((a, b) => b.domains[0].length - a.domains[0].length) // longest suffix wins
  const cache = new Map<string, {vhost: VirtualHost; port: number} | undefined>()
  return {
    kind: 'gateway',
    generation: snapshot.generation,
    routeConfigs: [{name: `http.${serverPort}`, virtualHosts: vhosts}],
    warnings: reg.warnings,
    virtualHost(authority) {
      if (cache.has(authority)) return cache.get(authority)
      const {host} = splitAuthority(authority)
      let v = exact.get(host)
      if (!v) v = wild.find((w) => hostMatches(w.domains[0], host))
      if (!v) v = star
      const hit = v ? {vhost: v, port: serverPort} : undefined
      if (cache.size < 1024) cache.set(authority, hit)
      return hit
    },
  }
}

function compileSidecar(snapshot: MeshSnapshot, ctx: Extract<ProxyContext, {kind: 'sidecar'}>, reg: Registry): RouteTable {
  const ns = ctx.identity.namespace
  // VS-1: VirtualServices for sidecars are those bound to `mesh` (or to no gateway). First (oldest) wins a host.
  const vsByHost = new Map<string, KubeObject>()
  for (const vs of snapshot.virtualServices.slice().sort(byAge)) {
    const gws = (vs.spec?.gateways ?? []) as string[]
    if (gws.length > 0 && !gws.includes('mesh')) continue
    for (const h of (vs.spec?.hosts ?? []) as string[]) {
      const fq = resolveHost(h, vs.metadata.namespace ?? 'default')
      if (vsByHost.has(fq)) {
        reg.warnings.push(`VirtualService ${vs.metadata.namespace}/${vs.metadata.name}: host ${fq} already routed by an older VirtualService; ignored`)
        continue
      }
      vsByHost.set(fq, vs)
    }
  }
  const wildVs = [...vsByHost.entries()].filter(([h]) => h.startsWith('*')).sort((a, b) => b[0].length - a[0].length)
  const gatewayNames = new Set<string>(['mesh'])
  const byPort = new Map<number, VirtualHost[]>()
  const vhostByKey = new Map<string, VirtualHost>()
  const aliases = new Map<string, ServiceEntry>()
  for (const svc of snapshot.services) {
    const fq = serviceFqdn(svc)
    aliases.set(fq, svc)
    aliases.set(`${svc.name}.${svc.namespace}.svc`, svc)
    aliases.set(`${svc.name}.${svc.namespace}`, svc)
    if (svc.namespace === ns) aliases.set(svc.name, svc)
    if (svc.clusterIP && svc.clusterIP !== 'None') aliases.set(svc.clusterIP, svc)
    const vs = vsByHost.get(fq) ?? wildVs.find(([h]) => hostMatches(h, fq))?.[1]
    for (const p of svc.ports) {
      const domains = [fq, `${fq}:${p.port}`, `${svc.name}.${svc.namespace}.svc:${p.port}`, `${svc.name}.${svc.namespace}:${p.port}`]
      if (svc.namespace === ns) domains.push(`${svc.name}:${p.port}`)
      const routes = vs ? compileHttpRoutes(vs, p.port, reg, gatewayNames) : [defaultRoute(svc, p.port)]
      const vh: VirtualHost = {name: `${fq}:${p.port}`, domains, routes, service: svc, port: p.port}
      vhostByKey.set(`${fq}:${p.port}`, vh)
      const list = byPort.get(p.port) ?? []
      list.push(vh)
      byPort.set(p.port, list)
    }
  }
  // VirtualServices for hosts that are not services (e.g. external names): any port.
  const external = new Map<string, VirtualHost>()
  for (const [h, vs] of vsByHost) {
    if (reg.byFqdn.has(h) || h.startsWith('*')) continue
    external.set(h, {name: h, domains: [h], routes: compileHttpRoutes(vs, 80, reg, gatewayNames), port: 80})
  }
  const cache = new Map<string, {vhost: VirtualHost; port: number} | undefined>()
  return {
    kind: 'sidecar',
    generation: snapshot.generation,
    routeConfigs: [...byPort.entries()].sort((a, b) => a[0] - b[0]).map(([port, v]) => ({name: String(port), virtualHosts: v})).concat(external.size > 0 ? [{name: 'external', virtualHosts: [...external.values()]}] : []),
    warnings: reg.warnings,
    virtualHost(authority) {
      if (cache.has(authority)) return cache.get(authority)
      const {host, port} = splitAuthority(authority)
      let hit: {vhost: VirtualHost; port: number} | undefined
      const svc = aliases.get(host) ?? (host.endsWith('.') ? aliases.get(host.slice(0, -1)) : undefined)
      if (svc) {
        // ADR-0042: no port in Host → the service's port 80 if it has one, else its first port
        const p = port ?? (svc.ports.some((x) => x.port === 80) ? 80 : svc.ports[0]?.port)
        const vh = p === undefined ? undefined : vhostByKey.get(`${serviceFqdn(svc)}:${p}`)
        if (vh) hit = {vhost: vh, port: p!}
      } else {
        const ext = external.get(host)
        if (ext) hit = {vhost: ext, port: port ?? 80}
      }
      if (cache.size < 1024) cache.set(authority, hit)
      return hit
    },
  }
}

// ---------------------------------------------------------------------------------------------
// Request-time helpers

/** VS-2: first route whose match succeeds. */
export function selectRoute(vhost: VirtualHost, req: RouteRequest): CompiledRoute | undefined {
  for (const r of vhost.routes) if (r.match(req)) return r
  return undefined
}

/** VS-5: per-request independent choice, weight ÷ sum. */
export function pickDestination(action: Extract<RouteAction, {kind: 'forward'}>, random: Random): DestinationRef | undefined {
  const d = action.destinations
  if (d.length <= 1) return d[0]
  let x = random() * action.totalWeight
  for (const dest of d) {
    if (dest.weight <= 0) continue
    x -= dest.weight
    if (x < 0) return dest
  }
  for (let i = d.length - 1; i >= 0; i--) if (d[i].weight > 0) return d[i]
  return d[0]
}

/** Applies a route's rewrite to a path (Envoy prefix_rewrite / regex_rewrite semantics). */
export function rewritePath(rw: RewritePolicy, path: string, query: string | undefined): string {
  let p = path
  if (rw.uri !== undefined) {
    if (rw.matchedPrefix !== undefined && p.startsWith(rw.matchedPrefix)) p = rw.uri + p.slice(rw.matchedPrefix.length)
    else p = rw.uri
  } else if (rw.regex) {
    p = p.replace(rw.regex.re, rw.regex.substitution)
  }
  return query === undefined ? p : `${p}?${query}`
}

/** Host header a mirrored request carries: `<host>-shadow[:port]` (VS-10). */
export function shadowAuthority(authority: string): string {
  const i = authority.lastIndexOf(':')
  if (i > 0 && !authority.endsWith(']')) return `${authority.slice(0, i)}-shadow${authority.slice(i)}`
  return `${authority}-shadow`
}
