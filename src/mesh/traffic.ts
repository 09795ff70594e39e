// Traffic objects of the lab: the hello VirtualServices, its DestinationRule, the ingress Gateway.
import type {IDestinationRule} from '@kubernetes-models/istio/networking.istio.io/v1/DestinationRule'
import type {IGateway} from '@kubernetes-models/istio/networking.istio.io/v1/Gateway'
import type {IVirtualService} from '@kubernetes-models/istio/networking.istio.io/v1/VirtualService'
import {MESH_CODES, type MeshWarning} from './codes.js'
import {LAB, meta, requireDnsLabel, type ObjectMeta} from './lab.js'
import {checkWeights, formatWeights, type Weights} from './weights.js'

export type VirtualService = IVirtualService & {metadata: ObjectMeta; spec: NonNullable<IVirtualService['spec']>}
export type DestinationRule = IDestinationRule & {metadata: ObjectMeta; spec: NonNullable<IDestinationRule['spec']>}
export type Gateway = IGateway & {metadata: ObjectMeta; spec: NonNullable<IGateway['spec']>}

type TrafficPolicy = NonNullable<NonNullable<IDestinationRule['spec']>['trafficPolicy']>
export type OutlierDetection = NonNullable<TrafficPolicy['outlierDetection']>
export type ConnectionPool = NonNullable<TrafficPolicy['connectionPool']>

export const NETWORKING_API = 'networking.istio.io/v1'

export interface LabOptions {
  /** namespace of the lab objects (default mesh-lab) */
  namespace?: string
}

/**
 * The two VirtualServices for one split, built from the same route list (ADR 0010):
 * `hello` for sidecars (gateway `mesh`) and `hello-ingress` for the ingress gateway.
 */
export function buildHelloVirtualServices(weights: Weights, opts: LabOptions = {}): [VirtualService, VirtualService] {
  const w = checkWeights(weights)
  const namespace = requireDnsLabel(opts.namespace ?? LAB.namespace, 'namespace')
  const route = LAB.versions.map((subset) => ({
    destination: {host: LAB.service, subset, port: {number: LAB.port}},
    weight: w[subset],
  }))
  const meshVs: VirtualService = {
    apiVersion: NETWORKING_API,
    kind: 'VirtualService',
    metadata: meta(LAB.virtualService, namespace),
    spec: {hosts: [LAB.service], gateways: ['mesh'], http: [{route: structuredClone(route)}]},
  }
  const ingressVs: VirtualService = {
    apiVersion: NETWORKING_API,
    kind: 'VirtualService',
    metadata: meta(LAB.ingressVirtualService, namespace),
    spec: {
      hosts: ['*'],
      gateways: [LAB.gateway],
      http: [{match: [{uri: {exact: LAB.ingressPath}}], route: structuredClone(route)}],
    },
  }
  return [meshVs, ingressVs]
}

/** Connection pool and outlier detection of the baseline DestinationRule. */
export const LAB_CONNECTION_POOL: ConnectionPool = {
  tcp: {maxConnections: 100},
  http: {http1MaxPendingRequests: 100, http2MaxRequests: 1000},
}

/** One ejection of two v1 endpoints is 50%, so maxEjectionPercent 50 lets it happen (DR-8). */
export const LAB_OUTLIER_DETECTION: OutlierDetection = {
  consecutive5xxErrors: 3,
  interval: '1s',
  baseEjectionTime: '10s',
  maxEjectionPercent: 50,
}

/** Istio's circuit-breaking task values (SC-6), used by lab 05. */
export const CIRCUIT_BREAKER_CONNECTION_POOL: ConnectionPool = {
  tcp: {maxConnections: 1},
  http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1},
}
export const CIRCUIT_BREAKER_OUTLIER_DETECTION: OutlierDetection = {
  consecutive5xxErrors: 1,
  interval: '1s',
  baseEjectionTime: '3m',
  maxEjectionPercent: 100,
}

export interface DestinationRuleOptions extends LabOptions {
  /** `baseline` (default): lab pool and ejection values; `circuit-breaker`: Istio's SC-6 values */
  variant?: 'baseline' | 'circuit-breaker'
}

export function buildHelloDestinationRule(opts: DestinationRuleOptions = {}): DestinationRule {
  const namespace = requireDnsLabel(opts.namespace ?? LAB.namespace, 'namespace')
  const cb = opts.variant === 'circuit-breaker'
  return {
    apiVersion: NETWORKING_API,
    kind: 'DestinationRule',
    metadata: meta(LAB.destinationRule, namespace),
    spec: {
      host: LAB.service,
      trafficPolicy: {
        connectionPool: structuredClone(cb ? CIRCUIT_BREAKER_CONNECTION_POOL : LAB_CONNECTION_POOL),
        outlierDetection: structuredClone(cb ? CIRCUIT_BREAKER_OUTLIER_DETECTION : LAB_OUTLIER_DETECTION),
      },
      subsets: LAB.versions.map((v) => ({name: v, labels: {[LAB.versionLabel]: v}})),
    },
  }
}

export const buildCircuitBreakerDestinationRule = (opts: LabOptions = {}): DestinationRule =>
  buildHelloDestinationRule({...opts, variant: 'circuit-breaker'})

/** The ingress Gateway: port 80 HTTP, any host, on pods labelled istio=ingressgateway. */
export function buildGateway(opts: LabOptions = {}): Gateway {
  const namespace = requireDnsLabel(opts.namespace ?? LAB.namespace, 'namespace')
  return {
    apiVersion: NETWORKING_API,
    kind: 'Gateway',
    metadata: meta(LAB.gateway, namespace),
    spec: {
      selector: {...LAB.gatewaySelector},
      servers: [{port: {number: 80, name: 'http', protocol: 'HTTP'}, hosts: ['*']}],
    },
  }
}

/** Outlier detection in force for a subset: the subset's block replaces the DR-level one whole (DR-2). */
export function effectiveOutlierDetection(dr: unknown, subset?: string): OutlierDetection | undefined {
  const spec = (dr as {spec?: IDestinationRule['spec']} | undefined)?.spec
  const own = subset ? spec?.subsets?.find((s) => s.name === subset)?.trafficPolicy?.outlierDetection : undefined
  return own ?? spec?.trafficPolicy?.outlierDetection ?? undefined
}

/**
 * Can outlier detection ever eject a host from a pool of `endpointCount` endpoints?
 * Envoy ejects only while 100 × (ejected + 1) ÷ hosts ≤ maxEjectionPercent (0/unset = 10),
 * so the first ejection needs 100 ÷ hosts ≤ maxEjectionPercent (DR-8).
 */
export function checkEjectionPossible(dr: unknown, endpointCount: number, subset?: string): MeshWarning | undefined {
  const warn = (message: string): MeshWarning => ({code: 'MESH_EJECTION_IMPOSSIBLE', message, suggestion: MESH_CODES.MESH_EJECTION_IMPOSSIBLE})
  const where = subset ? `subset ${subset}` : 'the DestinationRule'
  const od = effectiveOutlierDetection(dr, subset)
  if (!od) return warn(`${where} has no outlierDetection block, so no endpoint is ever ejected`)
  const c5xx = od.consecutive5xxErrors ?? 5
  const gateway = od.consecutiveGatewayErrors ?? 0
  if (c5xx === 0 && !gateway) return warn(`${where}: consecutive5xxErrors is 0 and consecutiveGatewayErrors unset, so outlier ejection is off`)
  if (endpointCount < 1) return warn(`${where} has no endpoints to eject`)
  const max = od.maxEjectionPercent || 10
  const oneEjection = 100 / endpointCount
  if (oneEjection > max) {
    return warn(
      `${where}: ejecting 1 of ${endpointCount} endpoints is ${round(oneEjection)}% of the pool, above maxEjectionPercent ${max}${od.maxEjectionPercent ? '' : ' (the default)'}, so Envoy never ejects`,
    )
  }
  return undefined
}

const round = (n: number) => Math.round(n * 10) / 10

/** Short description of a split for messages, e.g. "v1 90% / v2 10%". */
export const describeSplit = (w: Weights): string => `v1 ${w.v1}% / v2 ${w.v2}% (${formatWeights(w)})`
