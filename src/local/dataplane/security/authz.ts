// AuthorizationPolicy (security.istio.io/v1) evaluation at the server proxy, AZ-1..AZ-8.
// Each rule is compiled the way istiod compiles it for Envoy's RBAC filter: one matcher per
// (attribute, values, notValues); a value that cannot apply (an HTTP-only attribute on a TCP
// connection, a malformed CIDR) makes an ALLOW rule disappear (narrower) but only drops that
// value from a DENY/AUDIT/CUSTOM rule (wider).
import {BlockList, isIP} from 'node:net'
import type {KubeObject} from '../snapshot.js'
import {DEFAULT_ROOT_NAMESPACE, selectorMatches} from './peer-authentication.js'
import type {Peer} from '../security-provider.js'
import {principalOf} from '../../pki/spiffe.js'

export const RBAC_ACCESS_DENIED_STATUS = 403
/** Body of Envoy's RBAC local reply. */
export const RBAC_ACCESS_DENIED_BODY = 'RBAC: access denied'
export const CUSTOM_UNSUPPORTED_REASON = 'custom action unsupported in the embedded cluster'
export const DRY_RUN_ANNOTATION = 'istio.io/dry-run'

export type AuthzAction = 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM'

export interface PolicyRequest {
  method?: string
  /** request path as received (query and fragment are ignored for `paths`) */
  path?: string
  /** :authority / Host header, port included when the client sent one */
  host?: string
  /** destination (container) port of the connection */
  port: number
  headers?: Record<string, string | string[] | undefined>
  /** principal may be given with or without spiffe:// */
  peer: Peer
  protocol: 'http' | 'tcp'
  /** address the connection arrived on (destination.ip) */
  destinationIp?: string
  /** TLS SNI of the connection (connection.sni) */
  sni?: string
  /** original client address (remote.ip, remoteIpBlocks); defaults to peer.ip */
  remoteIp?: string
}

export interface PolicyDecision {
  decision: 'ALLOW' | 'DENY'
  /** the deciding rule, `ns[<ns>]-policy[<name>]-rule[<i>]` */
  policy?: string
  reason: string
  /** Envoy's response code details for the decision (`rbac_access_denied_matched_policy[...]` on deny) */
  details: string
  /** AUDIT rules that matched (they never change the decision) */
  audited: string[]
  /** rules of dry-run policies (annotation istio.io/dry-run: "true") that would have matched */
  dryRun: {action: AuthzAction; policy: string}[]
}

export interface EvaluateOptions {
  rootNamespace?: string
}

// ----------------------------------------------------------------- string forms (AZ-5)

type StrMatch = (s: string | undefined) => boolean

/** `*` = present and non-empty, `abc*` prefix, `*abc` suffix, otherwise exact. */
export function stringMatcher(pattern: string, ignoreCase = false): StrMatch {
  const norm = (s: string) => (ignoreCase ? s.toLowerCase() : s)
  if (pattern === '*') return (s) => s !== undefined && s.length > 0
  if (pattern.startsWith('*')) {
    const suffix = norm(pattern.slice(1))
    return (s) => s !== undefined && norm(s).endsWith(suffix)
  }
  if (pattern.endsWith('*')) {
    const prefix = norm(pattern.slice(0, -1))
    return (s) => s !== undefined && norm(s).startsWith(prefix)
  }
  const exact = norm(pattern)
  return (s) => s !== undefined && norm(s) === exact
}

/** Envoy header matcher as Istio builds it: `*` only asks the header to be present. */
function headerValueMatcher(pattern: string): StrMatch {
  if (pattern === '*') return (s) => s !== undefined
  return stringMatcher(pattern)
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** Path templates: `{*}` one segment, `{**}` the rest (Istio 1.20+). */
function pathMatcher(pattern: string): StrMatch {
  if (pattern.includes('{*}') || pattern.includes('{**}')) {
    const re = new RegExp(
      '^' +
        pattern
          .split(/(\{\*\*\}|\{\*\})/)
          .map((part) => (part === '{**}' ? '.*' : part === '{*}' ? '[^/]+' : escapeRe(part)))
          .join('') +
        '$',
    )
    return (s) => s !== undefined && re.test(s)
  }
  return stringMatcher(pattern)
}

/** The path Envoy's RBAC filter sees: no query/fragment, dot-segments resolved, `\` as `/`. */
export function normalizePathForAuthz(path: string | undefined): string | undefined {
  if (path === undefined) return undefined
  const bare = path.split(/[?#]/, 1)[0]
  if (!bare.startsWith('/')) return bare
  // nothing to resolve: skip the URL parser (the common case, once per request)
  if (!/[.\\%]|\/\//.test(bare)) return bare
  try {
    return new URL(bare, 'http://authz.invalid').pathname
  } catch {
    return bare
  }
}

// ----------------------------------------------------------------- compilation

class NotApplicable extends Error {}

type Pred = (r: Ctx) => boolean

interface Ctx {
  req: PolicyRequest
  path?: string
  remoteIp: string
  principal?: string
  namespace?: string
  serviceAccount?: string
}

const HTTP_ONLY = (what: string) => new NotApplicable(`${what} is HTTP only`)

function ipMatcher(value: string): (ip: string | undefined) => boolean {
  const list = new BlockList()
  const [addr, prefixStr] = value.split('/')
  const family = isIP(addr)
  if (family === 0) throw new NotApplicable(`invalid IP address or CIDR "${value}"`)
  const type = family === 4 ? 'ipv4' : 'ipv6'
  if (prefixStr === undefined) list.addAddress(addr, type)
  else {
    const prefix = Number(prefixStr)
    if (!/^\d+$/.test(prefixStr) || prefix > (family === 4 ? 32 : 128)) throw new NotApplicable(`invalid CIDR "${value}"`)
    list.addSubnet(addr, prefix, type)
  }
  return (ip) => {
    if (!ip) return false
    const bare = ip.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '')
    const fam = isIP(bare)
    if (fam === 0) return false
    return list.check(bare, fam === 4 ? 'ipv4' : 'ipv6')
  }
}

function portMatcher(value: string): (port: number) => boolean {
  if (!/^\d+$/.test(String(value)) || Number(value) > 65535) throw new NotApplicable(`invalid port "${value}"`)
  const n = Number(value)
  return (port) => port === n
}

function headerOf(req: PolicyRequest, name: string): string | undefined {
  const lower = name.toLowerCase()
  if (lower === ':authority' || lower === 'host') return req.host ?? joinHeader(req.headers?.host)
  if (lower === ':method') return req.method
  if (lower === ':path') return req.path
  return joinHeader(req.headers?.[lower] ?? findHeader(req.headers, lower))
}

function findHeader(headers: PolicyRequest['headers'], lower: string) {
  if (!headers) return undefined
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === lower) return v
  return undefined
}

const joinHeader = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join(',') : v)

function bracketName(key: string, prefix: string): string {
  const rest = key.slice(prefix.length)
  const m = /^\[([^\]]+)\]$/.exec(rest)
  if (!m) throw new NotApplicable(`invalid attribute ${key}: expected ${prefix}[<name>]`)
  return m[1]
}

/** Compiles one value of one attribute into a predicate (throws NotApplicable when it cannot apply). */
function compileValue(key: string, value: string, forTCP: boolean, policyNs: string): Pred {
  if (typeof value !== 'string' || value === '') throw new NotApplicable(`empty value for ${key}`)
  switch (key) {
    // ---- sources / principals side
    case 'source.principal': {
      const m = stringMatcher(value)
      return (c) => c.req.peer.mtls && m(c.principal)
    }
    case 'source.namespace': {
      const re = new RegExp('^' + value.split('*').map(escapeRe).join('.*') + '$')
      return (c) => c.req.peer.mtls && c.namespace !== undefined && c.namespace !== '' && re.test(c.namespace)
    }
    case 'source.serviceAccount': {
      const [ns, sa] = value.includes('/') ? value.split('/', 2) : [policyNs, value]
      return (c) => c.req.peer.mtls && c.namespace === ns && c.serviceAccount === sa
    }
    case 'source.ip': {
      const m = ipMatcher(value)
      return (c) => m(c.req.peer.ip)
    }
    case 'remote.ip': {
      const m = ipMatcher(value)
      return (c) => m(c.remoteIp)
    }
    case 'request.auth.principal':
    case 'request.auth.audiences':
    case 'request.auth.presenter':
      // No RequestAuthentication/JWT support in the embedded cluster: there is never a
      // validated token, so these attributes are always absent.
      if (forTCP) throw HTTP_ONLY(key)
      return () => false
    // ---- operations / permissions side
    case 'destination.port': {
      const m = portMatcher(value)
      return (c) => m(c.req.port)
    }
    case 'destination.ip': {
      const m = ipMatcher(value)
      return (c) => m(c.req.destinationIp)
    }
    case 'connection.sni': {
      const m = stringMatcher(value)
      return (c) => m(c.req.sni)
    }
    case ':host': {
      if (forTCP) throw HTTP_ONLY('hosts')
      const m = value === '*' ? (s: string | undefined) => s !== undefined : stringMatcher(value, true)
      return (c) => m(c.req.host ?? joinHeader(c.req.headers?.host))
    }
    case ':method': {
      if (forTCP) throw HTTP_ONLY('methods')
      const m = headerValueMatcher(value)
      return (c) => m(c.req.method)
    }
    case ':path': {
      if (forTCP) throw HTTP_ONLY('paths')
      const m = pathMatcher(value)
      return (c) => m(c.path)
    }
    default:
      break
  }
  if (key.startsWith('request.headers')) {
    if (forTCP) throw HTTP_ONLY(key)
    const name = bracketName(key, 'request.headers')
    const m = headerValueMatcher(value)
    return (c) => m(headerOf(c.req, name))
  }
  if (key.startsWith('request.auth.claims')) {
    if (forTCP) throw HTTP_ONLY(key)
    bracketName(key, 'request.auth.claims')
    return () => false
  }
  if (key.startsWith('experimental.envoy.filters.')) {
    // Envoy dynamic metadata does not exist here; never present.
    return () => false
  }
  throw new NotApplicable(`unknown attribute ${key}`)
}

interface Field {
  key: string
  values?: unknown
  notValues?: unknown
}

const asList = (v: unknown): string[] => (Array.isArray(v) ? v.map((x) => String(x)) : [])

/**
 * One attribute with its values (OR) and notValues (none may match). Returns undefined when
 * nothing of it applies. Throws for ALLOW when a value cannot apply.
 */
function compileField(f: Field, forTCP: boolean, action: AuthzAction, policyNs: string): Pred | undefined {
  const build = (list: string[]): Pred[] => {
    const out: Pred[] = []
    for (const v of list) {
      try {
        out.push(compileValue(f.key, v, forTCP, policyNs))
      } catch (error) {
        if (!(error instanceof NotApplicable) || action === 'ALLOW') throw error
        // DENY/AUDIT/CUSTOM: drop the value, the rule gets wider
      }
    }
    return out
  }
  const vs = build(asList(f.values))
  const nvs = build(asList(f.notValues))
  const parts: Pred[] = []
  if (vs.length > 0) parts.push((c) => vs.some((p) => p(c)))
  if (nvs.length > 0) parts.push((c) => !nvs.some((p) => p(c)))
  if (parts.length === 0) return undefined
  return parts.length === 1 ? parts[0] : (c) => parts.every((p) => p(c))
}

const and = (preds: (Pred | undefined)[]): Pred => {
  const ps = preds.filter((p): p is Pred => p !== undefined)
  return (c) => ps.every((p) => p(c))
}

const PRINCIPAL_WHEN = new Set(['source.ip', 'remote.ip', 'source.namespace', 'source.principal', 'source.serviceAccount', 'request.auth.principal', 'request.auth.audiences', 'request.auth.presenter'])

/** Compiles a rule; undefined when an ALLOW rule cannot apply to this protocol (AZ-7). */
function compileRule(rule: any, forTCP: boolean, action: AuthzAction, policyNs: string): Pred | undefined {
  try {
    const whenPreds: Pred[] = []
    for (const cond of Array.isArray(rule?.when) ? rule.when : []) {
      const key = String(cond?.key ?? '')
      if (
        !PRINCIPAL_WHEN.has(key) &&
        !['destination.ip', 'destination.port', 'connection.sni'].includes(key) &&
        !key.startsWith('request.headers') &&
        !key.startsWith('request.auth.claims') &&
        !key.startsWith('experimental.envoy.filters.')
      ) {
        // istiod skips a rule with an unknown attribute whatever the action
        return undefined
      }
      const p = compileField({key, values: cond.values, notValues: cond.notValues}, forTCP, action, policyNs)
      if (p) whenPreds.push(p)
    }
    const froms: any[] = Array.isArray(rule?.from) ? rule.from : []
    const tos: any[] = Array.isArray(rule?.to) ? rule.to : []
    const sources: Pred[] = froms.map((f) => {
      const s = f?.source ?? {}
      return and([
        compileField({key: 'source.principal', values: s.principals, notValues: s.notPrincipals}, forTCP, action, policyNs),
        compileRequestPrincipals(s, forTCP, action),
        compileField({key: 'source.namespace', values: s.namespaces, notValues: s.notNamespaces}, forTCP, action, policyNs),
        compileField({key: 'source.serviceAccount', values: s.serviceAccounts, notValues: s.notServiceAccounts}, forTCP, action, policyNs),
        compileField({key: 'source.ip', values: s.ipBlocks, notValues: s.notIpBlocks}, forTCP, action, policyNs),
        compileField({key: 'remote.ip', values: s.remoteIpBlocks, notValues: s.notRemoteIpBlocks}, forTCP, action, policyNs),
      ])
    })
    const operations: Pred[] = tos.map((t) => {
      const o = t?.operation ?? {}
      return and([
        compileField({key: ':host', values: o.hosts, notValues: o.notHosts}, forTCP, action, policyNs),
        compileField({key: ':method', values: o.methods, notValues: o.notMethods}, forTCP, action, policyNs),
        compileField({key: ':path', values: o.paths, notValues: o.notPaths}, forTCP, action, policyNs),
        compileField({key: 'destination.port', values: o.ports, notValues: o.notPorts}, forTCP, action, policyNs),
      ])
    })
    const when = and(whenPreds)
    return (c) =>
      (sources.length === 0 || sources.some((p) => p(c))) && (operations.length === 0 || operations.some((p) => p(c))) && when(c)
  } catch (error) {
    if (error instanceof NotApplicable) return undefined
    throw error
  }
}

/** requestPrincipals need a validated JWT, which the embedded cluster never has (see ADR 0063). */
function compileRequestPrincipals(s: any, forTCP: boolean, action: AuthzAction): Pred | undefined {
  const vs = asList(s.requestPrincipals)
  const nvs = asList(s.notRequestPrincipals)
  if (vs.length === 0 && nvs.length === 0) return undefined
  if (forTCP) {
    if (action === 'ALLOW') throw HTTP_ONLY('requestPrincipals')
    return undefined
  }
  const parts: Pred[] = []
  if (vs.length > 0) parts.push(() => false)
  // notRequestPrincipals: no token means none of them matches
  return parts.length > 0 ? parts[0] : () => true
}

// ----------------------------------------------------------------- policy selection

export function policyAction(p: KubeObject): AuthzAction | undefined {
  const a = p.spec?.action ?? 'ALLOW'
  return a === 'ALLOW' || a === 'DENY' || a === 'AUDIT' || a === 'CUSTOM' ? a : undefined
}

/** Policies that apply to a workload (AZ-1): same namespace or root namespace, selector matching. */
export function applicablePolicies(
  policies: KubeObject[],
  workload: {namespace: string; labels: Record<string, string>},
  rootNamespace = DEFAULT_ROOT_NAMESPACE,
): KubeObject[] {
  return policies.filter((p) => {
    const ns = p.metadata.namespace ?? ''
    if (ns !== workload.namespace && ns !== rootNamespace) return false
    // targetRef(s) bind a policy to gateways/waypoints, not to sidecars
    if (p.spec?.targetRef || (Array.isArray(p.spec?.targetRefs) && p.spec.targetRefs.length > 0)) return false
    const sel = p.spec?.selector?.matchLabels
    if (sel && typeof sel === 'object' && Object.keys(sel).length > 0) return selectorMatches(sel, workload.labels)
    return true
  })
}

export const policyRuleId = (p: KubeObject, i: number) => `ns[${p.metadata.namespace ?? ''}]-policy[${p.metadata.name}]-rule[${i}]`

/** Envoy's response code details for an RBAC denial. */
export const rbacDeniedDetails = (policy?: string) => `rbac_access_denied_matched_policy[${policy ?? 'none'}]`

const ORDER = (p: KubeObject) => `${p.metadata.namespace ?? ''}/${p.metadata.name}`

// ----------------------------------------------------------------- evaluation (AZ-2)

/**
 * Decides a request the way the server sidecar's RBAC filters do: CUSTOM, then DENY, then
 * ALLOW (allow when no ALLOW policy applies; deny when ALLOW policies apply and none matches).
 * AUDIT rules are reported but never change the decision.
 */
export function evaluate(
  policies: KubeObject[],
  workload: {namespace: string; labels: Record<string, string>},
  request: PolicyRequest,
  opts: EvaluateOptions = {},
): PolicyDecision {
  const forTCP = request.protocol === 'tcp'
  const principal = request.peer.mtls && request.peer.principal ? principalOf(request.peer.principal) : undefined
  const ctx: Ctx = {
    req: request,
    path: forTCP ? undefined : normalizePathForAuthz(request.path),
    remoteIp: request.remoteIp ?? request.peer.ip,
    principal,
    namespace: request.peer.mtls ? (principal ? /\/ns\/([^/]+)\//.exec(principal)?.[1] : undefined) ?? request.peer.namespace : undefined,
    serviceAccount: principal ? /\/sa\/([^/]+)$/.exec(principal)?.[1] : undefined,
  }
  const applicable = applicableSorted(policies, workload, opts.rootNamespace ?? DEFAULT_ROOT_NAMESPACE)
  const dryRun: PolicyDecision['dryRun'] = []
  const enforced: {p: KubeObject; action: AuthzAction}[] = []
  for (const p of applicable) {
    const action = policyAction(p)
    if (!action) continue // unknown action: refused at apply time; ignored if it slipped through
    if (p.metadata.annotations?.[DRY_RUN_ANNOTATION] === 'true') {
      const hit = firstMatch(p, action, forTCP, ctx)
      if (hit !== undefined) dryRun.push({action, policy: hit})
      continue
    }
    enforced.push({p, action})
  }
  const of = (a: AuthzAction) => enforced.filter((e) => e.action === a).map((e) => e.p)

  const audited: string[] = []
  for (const p of of('AUDIT')) {
    const hit = firstMatch(p, 'AUDIT', forTCP, ctx)
    if (hit !== undefined) audited.push(hit)
  }
  const deny = (policy: string | undefined, reason: string): PolicyDecision => ({
    decision: 'DENY',
    policy,
    reason,
    details: rbacDeniedDetails(policy),
    audited,
    dryRun,
  })

  for (const p of of('CUSTOM')) {
    const hit = firstMatch(p, 'CUSTOM', forTCP, ctx)
    if (hit !== undefined) return deny(hit, `${CUSTOM_UNSUPPORTED_REASON} (provider ${p.spec?.provider?.name ?? 'unset'})`)
  }
  for (const p of of('DENY')) {
    const hit = firstMatch(p, 'DENY', forTCP, ctx)
    if (hit !== undefined) return deny(hit, `denied by DENY rule ${hit}`)
  }
  const allows = of('ALLOW')
  if (allows.length === 0) {
    return {decision: 'ALLOW', reason: 'no ALLOW policy applies to the workload', details: 'via_upstream', audited, dryRun}
  }
  for (const p of allows) {
    const hit = firstMatch(p, 'ALLOW', forTCP, ctx)
    if (hit !== undefined) return {decision: 'ALLOW', policy: hit, reason: `allowed by ALLOW rule ${hit}`, details: 'via_upstream', audited, dryRun}
  }
  return deny(undefined, `no rule of the ALLOW policies (${allows.map(ORDER).join(', ')}) matches`)
}

// The policy list of a snapshot is replaced on every push, never mutated, so the applicable
// subset can be cached per list and workload.
const applicableCache = new WeakMap<KubeObject[], Map<string, KubeObject[]>>()

function applicableSorted(policies: KubeObject[], workload: {namespace: string; labels: Record<string, string>}, root: string): KubeObject[] {
  let perList = applicableCache.get(policies)
  if (!perList) {
    perList = new Map()
    applicableCache.set(policies, perList)
  }
  const key = `${root}|${workload.namespace}|${Object.entries(workload.labels).sort().join(',')}`
  let hit = perList.get(key)
  if (!hit) {
    hit = applicablePolicies(policies, workload, root).sort((a, b) => ORDER(a).localeCompare(ORDER(b)))
    if (perList.size > 1000) perList.clear()
    perList.set(key, hit)
  }
  return hit
}

// Compiled rules are cached per policy object and protocol: policies arrive with config
// pushes and are replaced, not mutated.
const cache = new WeakMap<KubeObject, Map<string, (Pred | undefined)[]>>()

function compiledRules(p: KubeObject, action: AuthzAction, forTCP: boolean): (Pred | undefined)[] {
  let perPolicy = cache.get(p)
  if (!perPolicy) {
    perPolicy = new Map()
    cache.set(p, perPolicy)
  }
  const k = `${action}:${forTCP}`
  let rules = perPolicy.get(k)
  if (!rules) {
    const ns = p.metadata.namespace ?? ''
    const raw: unknown[] = Array.isArray(p.spec?.rules) ? p.spec.rules : []
    rules = raw.map((r) => compileRule(r ?? {}, forTCP, action, ns))
    perPolicy.set(k, rules)
  }
  return rules
}

function firstMatch(p: KubeObject, action: AuthzAction, forTCP: boolean, ctx: Ctx): string | undefined {
  const rules = compiledRules(p, action, forTCP)
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i]
    if (r && r(ctx)) return policyRuleId(p, i)
  }
  return undefined
}
