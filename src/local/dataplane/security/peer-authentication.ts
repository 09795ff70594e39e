// PeerAuthentication resolution (PA-1, PA-2) and the client side's choice of upstream TLS
// (DR-10 auto mTLS), following Istio's ComposePeerAuthentication.
import type {Endpoint, KubeObject, MeshSnapshot} from '../snapshot.js'
import type {MtlsMode} from './tls.js'

export const DEFAULT_ROOT_NAMESPACE = 'istio-system'
export type PeerAuthenticationMode = 'UNSET' | MtlsMode
export type UpstreamTlsMode = 'DISABLE' | 'SIMPLE' | 'MUTUAL' | 'ISTIO_MUTUAL'

export interface WorkloadRef {
  namespace: string
  labels: Record<string, string>
}

export type MtlsScope = 'workload-port' | 'workload' | 'namespace' | 'mesh' | 'default'

export interface EffectiveMtls {
  mode: MtlsMode
  /** which level decided the mode (after UNSET inheritance) */
  scope: MtlsScope
  /** `namespace/name` of the deciding policy; absent for the PERMISSIVE default */
  policy?: string
}

type PaSnapshot = Pick<MeshSnapshot, 'peerAuthentications'> & Partial<Pick<MeshSnapshot, 'rootNamespace'>>

const MODES = new Set(['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'])

function modeOf(mtls: unknown): PeerAuthenticationMode {
  const m = (mtls as {mode?: unknown} | undefined)?.mode
  return typeof m === 'string' && MODES.has(m) ? (m as PeerAuthenticationMode) : 'UNSET'
}

function matchLabels(obj: KubeObject): Record<string, string> | undefined {
  const ml = obj.spec?.selector?.matchLabels
  return ml && typeof ml === 'object' && Object.keys(ml).length > 0 ? (ml as Record<string, string>) : undefined
}

export function selectorMatches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v)
}

const ref = (o: KubeObject) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`

/** Oldest creationTimestamp wins; ties (or missing timestamps) fall back to name order. */
function oldest(objs: KubeObject[]): KubeObject | undefined {
  const ts = (o: KubeObject) => {
    const t = Date.parse(o.metadata.creationTimestamp ?? '')
    return Number.isNaN(t) ? Number.POSITIVE_INFINITY : t
  }
  return [...objs].sort((a, b) => ts(a) - ts(b) || ref(a).localeCompare(ref(b)))[0]
}

/** The three candidate policies for a workload (PA-2): mesh, namespace, workload. */
export function applicablePeerAuthentications(snapshot: PaSnapshot, workload: WorkloadRef) {
  const root = snapshot.rootNamespace || DEFAULT_ROOT_NAMESPACE
  const mesh: KubeObject[] = []
  const ns: KubeObject[] = []
  const wl: KubeObject[] = []
  for (const pa of snapshot.peerAuthentications ?? []) {
    const paNs = pa.metadata.namespace ?? ''
    const sel = matchLabels(pa)
    if (!sel) {
      if (paNs === root) mesh.push(pa)
      else if (paNs === workload.namespace) ns.push(pa)
    } else if (paNs !== root && paNs === workload.namespace && selectorMatches(sel, workload.labels)) {
      // selector policies in the root namespace are ignored (PA-2)
      wl.push(pa)
    }
  }
  return {mesh: oldest(mesh), namespace: oldest(ns), workload: oldest(wl)}
}

/** Effective mode with the policy that decided it (PA-1/PA-2, port-level included). */
export function explainMtlsMode(snapshot: PaSnapshot, workload: WorkloadRef, port?: number): EffectiveMtls {
  const {mesh, namespace, workload: wl} = applicablePeerAuthentications(snapshot, workload)
  let out: EffectiveMtls = {mode: 'PERMISSIVE', scope: 'default'}
  const layer = (pa: KubeObject | undefined, scope: MtlsScope) => {
    if (!pa) return
    const m = modeOf(pa.spec?.mtls)
    if (m !== 'UNSET') out = {mode: m, scope, policy: ref(pa)}
  }
  layer(mesh, 'mesh')
  layer(namespace, 'namespace')
  layer(wl, 'workload')
  if (wl && port !== undefined) {
    // portLevelMtls only counts on a selector policy; keys are container ports (strings in YAML)
    const plm = wl.spec?.portLevelMtls as Record<string, unknown> | undefined
    const entry = plm?.[String(port)]
    if (entry !== undefined) {
      const m = modeOf(entry)
      if (m !== 'UNSET') out = {mode: m, scope: 'workload-port', policy: ref(wl)}
    }
  }
  return out
}

/** The server-side mTLS mode for a workload's container port. */
export function effectiveMtlsMode(snapshot: PaSnapshot, workload: WorkloadRef, port?: number): MtlsMode {
  return explainMtlsMode(snapshot, workload, port).mode
}

/** `spec.trafficPolicy...tls` as written in a DestinationRule. */
export interface DestinationRuleTls {
  mode?: string
  sni?: string
  subjectAltNames?: string[]
  caCertificates?: string
  clientCertificate?: string
  privateKey?: string
  credentialName?: string
  insecureSkipVerify?: boolean
}

/**
 * What a client proxy uses toward one endpoint (DR-10): an explicit DestinationRule `tls.mode`
 * wins; otherwise auto mTLS - ISTIO_MUTUAL to endpoints with a sidecar, plaintext to those
 * without, plaintext when the server's effective mode for that port is DISABLE.
 * `targetPort` is the endpoint's container port (for port-level PeerAuthentication).
 */
export function upstreamTlsMode(
  snapshot: PaSnapshot,
  _clientNamespace: string,
  dest: Pick<Endpoint, 'namespace' | 'labels' | 'sidecar'>,
  destRuleTls?: DestinationRuleTls | null,
  targetPort?: number,
): UpstreamTlsMode {
  const explicit = destRuleTls?.mode
  if (explicit === 'DISABLE' || explicit === 'SIMPLE' || explicit === 'MUTUAL' || explicit === 'ISTIO_MUTUAL') return explicit
  if (!dest.sidecar) return 'DISABLE'
  const serverMode = effectiveMtlsMode(snapshot, {namespace: dest.namespace, labels: dest.labels}, targetPort)
  return serverMode === 'DISABLE' ? 'DISABLE' : 'ISTIO_MUTUAL'
}
