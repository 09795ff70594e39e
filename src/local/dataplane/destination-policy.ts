// DestinationRule → the per-cluster policy a client proxy applies (DR-1..DR-6, DR-9):
// which DR applies to a host, subset labels, DR-2 inheritance, and Istio's translation of
// connectionPool / outlierDetection / loadBalancer into Envoy's settings with Envoy's defaults.
import type {KubeObject, MeshSnapshot} from './snapshot.js'
import {resolveHost, hostMatches} from './routing.js'
import {parseDuration} from './util.js'

/** Envoy's "unlimited" circuit-breaker threshold as Istio sets it (2^32 − 1). */
export const UNLIMITED = 4_294_967_295

export interface PoolLimits {
  maxConnections: number
  maxPendingRequests: number
  maxRequests: number
  /** 0 = unlimited */
  maxRequestsPerConnection: number
  maxRetries: number
  connectTimeoutMs: number
  /** 0 = keep idle connections until the upstream closes them */
  idleTimeoutMs: number
}

export interface OutlierConfig {
  /** threshold of consecutive 5xx; 0 = not detected */
  consecutive5xx: number
  enforce5xx: boolean
  /** threshold of consecutive 502/503/504 */
  consecutiveGateway: number
  enforceGateway: boolean
  intervalMs: number
  baseEjectionMs: number
  maxEjectionMs: number
  maxEjectionPercent: number
  /** Envoy healthy_panic_threshold, which Istio sets from minHealthPercent (DR-9) */
  panicThresholdPercent: number
}

export type HashKeySource =
  | {kind: 'header'; name: string}
  | {kind: 'cookie'; name: string; path?: string; ttlMs?: number}
  | {kind: 'sourceIp'}
  | {kind: 'queryParam'; name: string}

export type LbPolicy =
  | {kind: 'LEAST_REQUEST'}
  | {kind: 'ROUND_ROBIN'}
  | {kind: 'RANDOM'}
  | {kind: 'PASSTHROUGH'}
  | {kind: 'RING_HASH'; key: HashKeySource; ringSize: number}

export interface ClusterPolicy {
  lb: LbPolicy
  pool: PoolLimits
  outlier?: OutlierConfig
  /** the DR `tls` block after merging, passed to the security provider */
  tls?: Record<string, unknown>
  /** stable text of the merged policy; a change replaces the cluster (Envoy CDS semantics) */
  key: string
}

export const DEFAULT_POOL: PoolLimits = Object.freeze({
  maxConnections: UNLIMITED,
  maxPendingRequests: UNLIMITED,
  maxRequests: UNLIMITED,
  maxRequestsPerConnection: 0,
  maxRetries: UNLIMITED,
  connectTimeoutMs: 10_000,
  idleTimeoutMs: 0,
})

/**
 * The DestinationRule for `fqdn` as seen by a proxy in `proxyNamespace`: Istio prefers a rule
 * in the client's namespace, then the service's namespace, then the root namespace; the oldest wins a tie.
 */
export function findDestinationRule(snapshot: MeshSnapshot, fqdn: string, proxyNamespace: string): KubeObject | undefined {
  const svcNs = fqdn.split('.')[1]
  const candidates = snapshot.destinationRules.filter((dr) => {
    const h = resolveHost(String(dr.spec?.host ?? ''), dr.metadata.namespace ?? 'default')
    return h === fqdn || (h.startsWith('*') && hostMatches(h, fqdn))
  })
  if (candidates.length === 0) return undefined
  const rank = (dr: KubeObject): number => {
    const ns = dr.metadata.namespace
    const exact = resolveHost(String(dr.spec?.host ?? ''), ns ?? 'default') === fqdn ? 0 : 1
    const nsRank = ns === proxyNamespace ? 0 : ns === svcNs ? 1 : ns === snapshot.rootNamespace ? 2 : 3
    return nsRank * 2 + exact
  }
  return candidates.sort((a, b) => rank(a) - rank(b) || String(a.metadata.creationTimestamp ?? '').localeCompare(String(b.metadata.creationTimestamp ?? '')))[0]
}

export function subsetOf(dr: KubeObject | undefined, subset: string): {labels: Record<string, string>; trafficPolicy?: any} | undefined {
  const s = ((dr?.spec?.subsets ?? []) as any[]).find((x) => x?.name === subset)
  return s ? {labels: (s.labels ?? {}) as Record<string, string>, trafficPolicy: s.trafficPolicy} : undefined
}

/** A portLevelSettings entry for `port` replaces the policy wholesale (no inheritance). */
function portLevel(policy: any, port: number): any {
  if (!policy || typeof policy !== 'object') return policy
  const pls = ((policy.portLevelSettings ?? []) as any[]).find((p) => Number(p?.port?.number) === port)
  if (pls) {
    const {port: _omit, ...rest} = pls
    return rest
  }
  const {portLevelSettings: _drop, ...rest} = policy
  return rest
}

const BLOCKS = ['loadBalancer', 'connectionPool', 'outlierDetection', 'tls', 'proxyProtocol', 'tunnel'] as const

/** DR-2: DR policy → port-level replacement → subset blocks replace whole blocks. */
export function mergeTrafficPolicy(dr: KubeObject | undefined, port: number, subset?: string): Record<string, any> {
  const base = portLevel(dr?.spec?.trafficPolicy, port) ?? {}
  if (!subset) return base
  const sp = portLevel(subsetOf(dr, subset)?.trafficPolicy, port)
  if (!sp) return base
  const merged: Record<string, any> = {...base}
  for (const b of BLOCKS) if (sp[b] !== undefined) merged[b] = sp[b]
  return merged
}

function num(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined
  if (typeof v === 'object' && 'value' in (v as object)) return Number((v as {value: unknown}).value)
  const n = Number(v)
  return Number.isFinite(n) ? n : undefined
}

function positiveOr(v: unknown, dflt: number): number {
  const n = num(v)
  return n !== undefined && n > 0 ? n : dflt
}

export function poolLimitsOf(cp: any): PoolLimits {
  if (!cp) return DEFAULT_POOL
  return {
    maxConnections: positiveOr(cp.tcp?.maxConnections, UNLIMITED),
    maxPendingRequests: positiveOr(cp.http?.http1MaxPendingRequests, UNLIMITED),
    maxRequests: positiveOr(cp.http?.http2MaxRequests, UNLIMITED),
    maxRequestsPerConnection: positiveOr(cp.http?.maxRequestsPerConnection, 0),
    maxRetries: positiveOr(cp.http?.maxRetries, UNLIMITED),
    connectTimeoutMs: parseDuration(cp.tcp?.connectTimeout) ?? 10_000,
    idleTimeoutMs: parseDuration(cp.http?.idleTimeout) ?? 0,
  }
}

/** DR-6 defaults and Istio's enforcement flags. Undefined when the DR has no outlierDetection block. */
export function outlierConfigOf(od: any): OutlierConfig | undefined {
  if (!od || typeof od !== 'object') return undefined
  const c5 = num(od.consecutive5xxErrors)
  let gw = num(od.consecutiveGatewayErrors)
  // the deprecated consecutiveErrors field counted gateway errors
  if (gw === undefined && num(od.consecutiveErrors) !== undefined) gw = num(od.consecutiveErrors)
  const base = parseDuration(od.baseEjectionTime) ?? 30_000
  const mep = num(od.maxEjectionPercent)
  return {
    consecutive5xx: c5 === undefined ? 5 : c5,
    enforce5xx: c5 === undefined ? true : c5 > 0,
    consecutiveGateway: gw === undefined ? 5 : gw,
    enforceGateway: gw !== undefined && gw > 0,
    intervalMs: parseDuration(od.interval) || 10_000,
    baseEjectionMs: base,
    maxEjectionMs: Math.max(300_000, base),
    maxEjectionPercent: mep !== undefined && mep > 0 ? Math.min(100, mep) : 10,
    panicThresholdPercent: Math.max(0, Math.min(100, num(od.minHealthPercent) ?? 0)),
  }
}

export function lbPolicyOf(lb: any): LbPolicy {
  if (!lb || typeof lb !== 'object') return {kind: 'LEAST_REQUEST'}
  if (lb.consistentHash) {
    const ch = lb.consistentHash
    const ringSize = positiveOr(ch.ringHash?.minimumRingSize ?? ch.minimumRingSize, 1024)
    let key: HashKeySource
    if (ch.httpHeaderName) key = {kind: 'header', name: String(ch.httpHeaderName).toLowerCase()}
    else if (ch.httpCookie) key = {kind: 'cookie', name: String(ch.httpCookie.name), path: ch.httpCookie.path, ttlMs: parseDuration(ch.httpCookie.ttl)}
    else if (ch.httpQueryParameterName) key = {kind: 'queryParam', name: String(ch.httpQueryParameterName)}
    else key = {kind: 'sourceIp'}
    return {kind: 'RING_HASH', key, ringSize: Math.min(ringSize, 65_536)}
  }
  switch (String(lb.simple ?? '').toUpperCase()) {
    case 'ROUND_ROBIN': return {kind: 'ROUND_ROBIN'}
    case 'RANDOM': return {kind: 'RANDOM'}
    case 'PASSTHROUGH': return {kind: 'PASSTHROUGH'}
    default: return {kind: 'LEAST_REQUEST'} // UNSPECIFIED, LEAST_REQUEST, LEAST_CONN (DR-3)
  }
}

export function clusterPolicy(dr: KubeObject | undefined, port: number, subset?: string): ClusterPolicy {
  const tp = mergeTrafficPolicy(dr, port, subset)
  return {
    lb: lbPolicyOf(tp.loadBalancer),
    pool: poolLimitsOf(tp.connectionPool),
    outlier: outlierConfigOf(tp.outlierDetection),
    tls: tp.tls,
    key: JSON.stringify([tp.loadBalancer ?? null, tp.connectionPool ?? null, tp.outlierDetection ?? null, tp.tls ?? null]),
  }
}
