// The configuration meshd pushes to every proxy (our stand-in for xDS): the Istio objects
// as stored, plus the service registry. One generation number covers the whole snapshot.

/** A Kubernetes object as stored by the API (Istio resources keep their raw spec). */
export interface KubeObject {
  apiVersion: string
  kind: string
  metadata: {
    name: string
    namespace?: string
    uid?: string
    resourceVersion?: string
    generation?: number
    creationTimestamp?: string
    labels?: Record<string, string>
    annotations?: Record<string, string>
    [k: string]: unknown
  }
  spec?: any // eslint-disable-line @typescript-eslint/no-explicit-any
  status?: any // eslint-disable-line @typescript-eslint/no-explicit-any
  [k: string]: unknown
}

export interface ServicePort {
  name?: string
  port: number
  /** the container port traffic is sent to (resolved from a named targetPort where possible) */
  targetPort: number
  protocol: string
}

export interface ServiceEntry {
  name: string
  namespace: string
  selector: Record<string, string>
  ports: ServicePort[]
  clusterIP?: string
}

export interface Endpoint {
  /** pod IP on loopback, e.g. 127.42.0.7 */
  address: string
  podName: string
  namespace: string
  labels: Record<string, string>
  serviceAccount: string
  /** true when the pod runs our sidecar (namespace label istio-injection=enabled, not opted out) */
  sidecar: boolean
  ready: boolean
  /** container ports the pod declares, keyed by port number */
  ports: number[]
}

export interface MeshSnapshot {
  generation: number
  trustDomain: string
  rootNamespace: string
  services: ServiceEntry[]
  /** every pod that could be an endpoint, with its labels; proxies select by service selector + subset labels */
  endpoints: Endpoint[]
  virtualServices: KubeObject[]
  destinationRules: KubeObject[]
  gateways: KubeObject[]
  peerAuthentications: KubeObject[]
  authorizationPolicies: KubeObject[]
}

/** Who a proxy is; sent when it subscribes. */
export interface ProxyIdentity {
  /** e.g. `hello-v1-6d9f7-x2k4p.mesh-lab` or `istio-ingressgateway.istio-system` */
  id: string
  kind: 'sidecar' | 'gateway'
  podName: string
  namespace: string
  labels: Record<string, string>
  serviceAccount: string
  address: string
}

/** Workload certificate material, pushed alongside config (meshd plays istiod's CA). */
export interface WorkloadSecret {
  certChainPem: string
  privateKeyPem: string
  rootCaPem: string
  spiffeId: string
  notAfter: string
}

export type PushMessage =
  | {type: 'config'; generation: number; snapshot: MeshSnapshot}
  | {type: 'secret'; secret: WorkloadSecret}

export interface ProxySyncStatus {
  proxy: string
  kind: 'sidecar' | 'gateway'
  sent: number
  acked: number
  state: 'SYNCED' | 'STALE' | 'NOT_SENT'
}

/** Ports every sidecar uses on its pod's address, as Istio does. */
export const PROXY_PORTS = {
  outbound: 15001,
  admin: 15000,
  prometheus: 15090,
} as const

/** The emulated app listens on containerPort + this offset; the sidecar owns containerPort. */
export const APP_PORT_OFFSET = 30000
