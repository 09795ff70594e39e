// What each caller should meet at hello, computed from the objects in force: the server's mTLS
// mode (PeerAuthentication, PA-1/PA-2), the client's transport (auto mTLS or the
// DestinationRule's tls, DR-10) and the AuthorizationPolicy decision (AZ-1..AZ-8) — with the
// same pure functions the embedded proxies use. Pure: objects in, expectations out.
import type {KubeObject} from '../cluster/client.js'
import {explainMtlsMode, type EffectiveMtls} from '../local/dataplane/security/peer-authentication.js'
import {evaluate, RBAC_ACCESS_DENIED_BODY} from '../local/dataplane/security/authz.js'
import type {CallerKind, CallResult} from '../lab/callers.js'
import {LAB} from '../mesh/lab.js'

/** What a call ended as, in the matrix's vocabulary. */
export type Outcome = 'allowed' | 'denied' | 'reset' | 'unavailable' | 'no-route'

export interface CallerProfile {
  kind: CallerKind
  /** the caller's side has a proxy (gateway or sidecar) that can originate mTLS */
  proxied: boolean
  /** SPIFFE id it presents over mTLS */
  spiffeId?: string
  /** source IP the server sees, when known */
  ip?: string
}

export const spiffe = (namespace: string, serviceAccount: string): string => `spiffe://${LAB.trustDomain}/ns/${namespace}/sa/${serviceAccount}`

export const INGRESS_SPIFFE_ID = spiffe(LAB.rootNamespace, 'istio-ingressgateway-service-account')
export const MESHED_SPIFFE_ID = spiffe(LAB.namespace, LAB.serviceAccounts.client)

/** The lab's three callers. */
export function labCallers(ips: Partial<Record<CallerKind, string>> = {}): CallerProfile[] {
  return [
    {kind: 'ingress', proxied: true, spiffeId: INGRESS_SPIFFE_ID, ...(ips.ingress ? {ip: ips.ingress} : {})},
    {kind: 'meshed', proxied: true, spiffeId: MESHED_SPIFFE_ID, ...(ips.meshed ? {ip: ips.meshed} : {})},
    {kind: 'legacy', proxied: false, ...(ips.legacy ? {ip: ips.legacy} : {})},
  ]
}

/** A hello workload the call may land on (one per version with its pod labels). */
export interface ServerWorkload {
  version: string
  namespace: string
  labels: Record<string, string>
  /** the pod runs a sidecar */
  sidecar: boolean
}

export interface SecurityInputs {
  peerAuthentications: KubeObject[]
  authorizationPolicies: KubeObject[]
  rootNamespace?: string
  /** `spec.trafficPolicy.tls.mode` of the hello DestinationRule, if set (DR-10: explicit wins) */
  destinationRuleTlsMode?: string
  /** hello's container port (PeerAuthentication portLevelMtls, destination.port) */
  port?: number
}

export type Transport = 'mtls' | 'plaintext'

export interface WorkloadExpectation {
  version: string
  outcome: Outcome
  transport: Transport
  mtls: EffectiveMtls
  /** the AuthorizationPolicy decision, when the request reaches the sidecar */
  authz?: {decision: 'ALLOW' | 'DENY'; policy?: string; reason: string}
  why: string
}

export interface CellExpectation {
  caller: CallerKind
  method: string
  path: string
  /** every outcome that is correct (more than one when versions differ) */
  outcomes: Outcome[]
  /** the peer identity the server should see; null = plaintext (no identity) */
  identity: string | null | 'either'
  perWorkload: WorkloadExpectation[]
}

/**
 * The transport a caller uses toward one server workload: no client proxy → plaintext; an
 * explicit DestinationRule tls mode wins; else auto mTLS (ISTIO_MUTUAL to a sidecar unless the
 * server's mode is DISABLE).
 */
export function clientTransport(caller: CallerProfile, server: ServerWorkload, mtls: EffectiveMtls, drTlsMode?: string): Transport {
  if (!caller.proxied) return 'plaintext'
  if (drTlsMode === 'DISABLE') return 'plaintext'
  if (drTlsMode === 'ISTIO_MUTUAL' || drTlsMode === 'MUTUAL') return 'mtls'
  if (!server.sidecar) return 'plaintext'
  return mtls.mode === 'DISABLE' ? 'plaintext' : 'mtls'
}

/** One caller × request against one server workload. */
export function expectOnWorkload(inputs: SecurityInputs, caller: CallerProfile, server: ServerWorkload, method: string, path: string): WorkloadExpectation {
  const port = inputs.port ?? LAB.port
  const mtls = explainMtlsMode({peerAuthentications: inputs.peerAuthentications, rootNamespace: inputs.rootNamespace ?? LAB.rootNamespace}, {namespace: server.namespace, labels: server.labels}, port)
  const transport = clientTransport(caller, server, mtls, inputs.destinationRuleTlsMode)
  const by = mtls.policy ? ` (${mtls.scope} policy ${mtls.policy})` : ' (no policy: PERMISSIVE by default)'
  if (server.sidecar && transport === 'plaintext' && mtls.mode === 'STRICT') {
    // PA-4: plaintext is closed without an HTTP answer; a calling proxy turns that into a 503
    return caller.proxied
      ? {version: server.version, outcome: 'unavailable', transport, mtls, why: `STRICT${by} refuses the plaintext connection; the calling proxy answers 503`}
      : {version: server.version, outcome: 'reset', transport, mtls, why: `STRICT${by}: a plaintext caller is reset`}
  }
  if (server.sidecar && transport === 'mtls' && mtls.mode === 'DISABLE') {
    return {version: server.version, outcome: 'unavailable', transport, mtls, why: `mTLS forced by the DestinationRule toward a DISABLE server${by}: the handshake fails (503)`}
  }
  if (!server.sidecar) return {version: server.version, outcome: 'allowed', transport, mtls, why: 'no sidecar on the server: nothing enforces mTLS or authorization'}
  const d = evaluate(
    inputs.authorizationPolicies,
    {namespace: server.namespace, labels: server.labels},
    {
      method,
      path,
      host: `${LAB.service}.${server.namespace}.svc.cluster.local:${port}`,
      port,
      protocol: 'http',
      peer: transport === 'mtls' && caller.spiffeId ? {mtls: true, principal: caller.spiffeId, ip: caller.ip ?? ''} : {mtls: false, ip: caller.ip ?? ''},
    },
    {rootNamespace: inputs.rootNamespace ?? LAB.rootNamespace},
  )
  const authz = {decision: d.decision, ...(d.policy ? {policy: d.policy} : {}), reason: d.reason}
  return {
    version: server.version,
    outcome: d.decision === 'ALLOW' ? 'allowed' : 'denied',
    transport,
    mtls,
    authz,
    why: `${transport === 'mtls' ? 'mTLS' : 'plaintext'} accepted (${mtls.mode}${by}); ${d.reason}`,
  }
}

/** A cell of the matrix: every workload the call may reach, merged. */
export function expectCell(inputs: SecurityInputs, caller: CallerProfile, servers: readonly ServerWorkload[], method: string, path: string): CellExpectation {
  const perWorkload = servers.map((s) => expectOnWorkload(inputs, caller, s, method, path))
  const outcomes = [...new Set(perWorkload.map((w) => w.outcome))]
  const ids = [...new Set(perWorkload.filter((w) => w.outcome !== 'reset' && w.outcome !== 'unavailable').map((w) => (w.transport === 'mtls' ? (caller.spiffeId ?? null) : null)))]
  return {caller: caller.kind, method, path, outcomes, identity: ids.length === 1 ? ids[0]! : ids.length === 0 ? null : 'either', perWorkload}
}

/** What an observed call amounts to. */
export function outcomeOf(r: Pick<CallResult, 'outcome' | 'status' | 'body'>): Outcome {
  if (r.outcome !== 'response') return 'reset'
  if (r.status === 403 && r.body.includes(RBAC_ACCESS_DENIED_BODY)) return 'denied'
  if (r.status === 503 && /upstream connect error|no healthy upstream|reset before headers/.test(r.body)) return 'unavailable'
  if (r.status === 404 && r.body.trim() === '') return 'no-route'
  return 'allowed'
}

/** Short label for a cell: "allowed 200", "denied 403", "reset". */
export function outcomeLabel(o: Outcome, status?: number): string {
  if (o === 'reset') return 'reset'
  return status ? `${o} ${status}` : o
}

/** The version labels of the hello pods, one workload per version (first Ready pod's labels). */
export function serverWorkloads(pods: readonly KubeObject[], sidecarFor: (pod: KubeObject) => boolean): ServerWorkload[] {
  const byVersion = new Map<string, ServerWorkload>()
  for (const p of [...pods].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))) {
    const labels = {...(p.metadata.labels ?? {})}
    if (labels[LAB.faultyLabel] === 'true') continue
    const version = labels[LAB.versionLabel] ?? '(none)'
    if (!byVersion.has(version)) byVersion.set(version, {version, namespace: p.metadata.namespace ?? LAB.namespace, labels, sidecar: sidecarFor(p)})
  }
  return [...byVersion.values()].sort((a, b) => a.version.localeCompare(b.version))
}
