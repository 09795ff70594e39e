// Reads what the lab is doing right now from the cluster: canary weights, mTLS per namespace
// and mesh-wide, authorization policies, pods per version, proxy sync. Read-only; used by the
// status commands and by `mesh verify` to know what to expect.
import type {KubeClient, KubeObject} from '../cluster/client.js'
import {isManaged} from '../cluster/guard.js'
import type {ProxySyncStatus, Target} from '../cluster/target.js'
import {LAB} from '../mesh/lab.js'
import {NETWORKING_API} from '../mesh/traffic.js'
import {SECURITY_API, type MtlsMode} from '../mesh/security.js'
import {ROLLBACK_WEIGHTS} from '../mesh/canary.js'
import {formatWeights, type Weights} from '../mesh/weights.js'

/** The client methods the readers use (a fake in tests implements just these). */
export type ReadClient = Pick<KubeClient, 'get' | 'list'>

// ------------------------------------------------------------------ weights

export interface WeightsState {
  /** the split the sidecars route by (VirtualService `hello`) */
  weights: Weights
  /** virtualservice: read from `hello`; default: `hello` is missing, so Istio sends all to v1 */
  source: 'virtualservice' | 'default'
  /** the split the ingress routes by (`hello-ingress`); null when it is missing */
  ingress: Weights | null
  /** both VirtualServices exist and route the same split */
  consistent: boolean
  /** `hello` carries mesh's managed-by label */
  managed: boolean
  resourceVersion?: string
  notes: string[]
}

interface RouteDestination {
  destination?: {host?: string; subset?: string}
  weight?: number
}

/**
 * The v1/v2 split of a VirtualService's first HTTP route. One destination without a weight
 * takes everything; a destination without a subset is noted (the service's load balancer then
 * picks any version). Weights that do not add up to 100 are scaled, with a note.
 */
export function weightsFromVirtualService(vs: KubeObject): {weights: Weights; notes: string[]} {
  const notes: string[] = []
  const name = vs.metadata.name
  const http = (vs.spec?.http ?? []) as Array<{route?: RouteDestination[]}>
  if (http.length === 0 || !http[0]!.route?.length) {
    notes.push(`VirtualService ${name} has no HTTP route; Istio falls back to the service's default routing`)
    return {weights: {...ROLLBACK_WEIGHTS}, notes}
  }
  if (http.length > 1) notes.push(`VirtualService ${name} has ${http.length} HTTP routes; the split shown is the first route's`)
  const routes = http[0]!.route!
  const sum = {v1: 0, v2: 0, other: 0}
  for (const r of routes) {
    const w = routes.length === 1 && r.weight === undefined ? 100 : (r.weight ?? 0)
    const subset = r.destination?.subset
    if (subset === 'v1' || subset === 'v2') sum[subset] += w
    else {
      sum.other += w
      if (w > 0) notes.push(`VirtualService ${name} sends ${w}% to ${subset ? `subset ${subset}` : `${r.destination?.host ?? '?'} without a subset`}, which is neither v1 nor v2`)
    }
  }
  const total = sum.v1 + sum.v2
  if (total === 0) return {weights: {...ROLLBACK_WEIGHTS}, notes: [...notes, `VirtualService ${name} gives v1 and v2 no weight`]}
  if (total !== 100 || sum.other > 0) {
    notes.push(`VirtualService ${name} weights v1 ${sum.v1} and v2 ${sum.v2} are shown scaled to 100`)
    const v2 = Math.round((100 * sum.v2) / total)
    return {weights: {v1: 100 - v2, v2}, notes}
  }
  return {weights: {v1: sum.v1, v2: sum.v2}, notes}
}

const vsRef = (name: string, namespace: string) => ({apiVersion: NETWORKING_API, kind: 'VirtualService', name, namespace})

export async function readWeights(client: ReadClient, opts: {namespace?: string} = {}): Promise<WeightsState> {
  const namespace = opts.namespace ?? LAB.namespace
  const [mesh, ingress] = await Promise.all([client.get(vsRef(LAB.virtualService, namespace)), client.get(vsRef(LAB.ingressVirtualService, namespace))])
  const notes: string[] = []
  let weights: Weights = {...ROLLBACK_WEIGHTS}
  if (mesh) {
    const r = weightsFromVirtualService(mesh)
    weights = r.weights
    notes.push(...r.notes)
  } else {
    notes.push(`VirtualService ${namespace}/${LAB.virtualService} does not exist: without it requests are balanced over every hello pod, whatever its version; mesh counts that as the baseline 100/0 (mesh canary shift or mesh lab reset create it)`)
  }
  let ingressWeights: Weights | null = null
  if (ingress) {
    const r = weightsFromVirtualService(ingress)
    ingressWeights = r.weights
    notes.push(...r.notes)
  } else {
    notes.push(`VirtualService ${namespace}/${LAB.ingressVirtualService} does not exist: the ingress has no route to hello`)
  }
  const consistent = Boolean(mesh && ingressWeights && ingressWeights.v1 === weights.v1 && ingressWeights.v2 === weights.v2)
  if (mesh && ingressWeights && !consistent) {
    notes.push(`the ingress routes ${formatWeights(ingressWeights)} but the sidecars route ${formatWeights(weights)}; mesh canary shift sets both`)
  }
  return {
    weights,
    source: mesh ? 'virtualservice' : 'default',
    ingress: ingressWeights,
    consistent,
    managed: mesh ? isManaged(mesh) : false,
    ...(mesh?.metadata.resourceVersion ? {resourceVersion: mesh.metadata.resourceVersion} : {}),
    notes,
  }
}

// ------------------------------------------------------------------ mTLS

export type PeerAuthScope = 'mesh' | 'namespace' | 'workload'
export type EffectiveMtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE'

export interface PeerAuthInfo {
  namespace: string
  name: string
  scope: PeerAuthScope
  /** UNSET: inherits from the parent scope */
  mode: MtlsMode | 'UNSET'
  selector?: Record<string, string>
  /** per-port modes of a workload policy */
  portLevel?: Record<string, string>
  managed: boolean
  resourceVersion?: string
  creationTimestamp?: string
}

export interface NamespaceMtls {
  namespace: string
  /** what a plaintext caller meets at a sidecar in this namespace (workload policies aside) */
  mode: EffectiveMtlsMode
  /** namespace: its own policy; mesh: inherited from the root namespace; default: no policy (Istio's PERMISSIVE) */
  source: 'namespace' | 'mesh' | 'default'
  /** the deciding policy, namespace/name */
  policy?: string
}

export interface MtlsState {
  rootNamespace: string
  /** the mesh-wide mode (root-namespace policy without selector), PERMISSIVE by default */
  mesh: {mode: EffectiveMtlsMode; source: 'mesh' | 'default'; policy?: string}
  /** the lab namespaces plus any namespace holding a PeerAuthentication */
  namespaces: NamespaceMtls[]
  policies: PeerAuthInfo[]
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined)

function peerAuthInfo(o: KubeObject, rootNamespace: string): PeerAuthInfo {
  const namespace = o.metadata.namespace ?? ''
  const selector = o.spec?.selector?.matchLabels as Record<string, string> | undefined
  const hasSelector = Boolean(selector && Object.keys(selector).length > 0)
  const mode = (str(o.spec?.mtls?.mode)?.toUpperCase() ?? 'UNSET') as PeerAuthInfo['mode']
  const portLevel = o.spec?.portLevelMtls as Record<string, {mode?: string}> | undefined
  return {
    namespace,
    name: o.metadata.name,
    scope: hasSelector ? 'workload' : namespace === rootNamespace ? 'mesh' : 'namespace',
    mode,
    ...(hasSelector ? {selector: {...selector}} : {}),
    ...(portLevel ? {portLevel: Object.fromEntries(Object.entries(portLevel).map(([p, v]) => [p, String(v?.mode ?? 'UNSET').toUpperCase()]))} : {}),
    managed: isManaged(o),
    ...(o.metadata.resourceVersion ? {resourceVersion: o.metadata.resourceVersion} : {}),
    ...(str(o.metadata.creationTimestamp) ? {creationTimestamp: str(o.metadata.creationTimestamp)} : {}),
  }
}

/** Istio uses the oldest policy when several apply at one scope. */
const oldest = (ps: PeerAuthInfo[]): PeerAuthInfo | undefined =>
  [...ps].sort((a, b) => (a.creationTimestamp ?? '').localeCompare(b.creationTimestamp ?? '') || a.name.localeCompare(b.name))[0]

export async function readMtls(client: ReadClient, opts: {namespaces?: string[]; rootNamespace?: string} = {}): Promise<MtlsState> {
  const root = opts.rootNamespace ?? LAB.rootNamespace
  const items = await client.list(SECURITY_API, 'PeerAuthentication')
  const policies = items.map((o) => peerAuthInfo(o, root)).sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name))
  const meshPolicy = oldest(policies.filter((p) => p.scope === 'mesh' && p.mode !== 'UNSET'))
  const mesh: MtlsState['mesh'] = meshPolicy
    ? {mode: meshPolicy.mode as EffectiveMtlsMode, source: 'mesh', policy: `${meshPolicy.namespace}/${meshPolicy.name}`}
    : {mode: 'PERMISSIVE', source: 'default'}
  const names = new Set(opts.namespaces ?? [LAB.namespace, LAB.legacyNamespace])
  for (const p of policies) if (p.scope === 'namespace') names.add(p.namespace)
  const namespaces: NamespaceMtls[] = [...names].map((namespace) => {
    const own = oldest(policies.filter((p) => p.scope === 'namespace' && p.namespace === namespace && p.mode !== 'UNSET'))
    if (own) return {namespace, mode: own.mode as EffectiveMtlsMode, source: 'namespace', policy: `${own.namespace}/${own.name}`}
    if (mesh.source === 'mesh') return {namespace, mode: mesh.mode, source: 'mesh', policy: mesh.policy}
    return {namespace, mode: 'PERMISSIVE', source: 'default'}
  })
  return {rootNamespace: root, mesh, namespaces, policies}
}

// ------------------------------------------------------------------ authorization

export interface PolicyInfo {
  namespace: string
  name: string
  action: 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM'
  /** workload labels; absent = every workload of the namespace (or the mesh, in the root namespace) */
  selector?: Record<string, string>
  rules: number
  /** an ALLOW policy with no rules: nothing is allowed */
  denyAll: boolean
  /** carries app.kubernetes.io/managed-by=mesh: mesh policy reset may delete it */
  managed: boolean
  /** one line, e.g. "ALLOW GET,POST on /hello from ns mesh-lab" */
  summary: string
  resourceVersion?: string
}

type Rule = {
  from?: Array<{source?: Record<string, string[]>}>
  to?: Array<{operation?: Record<string, string[]>}>
  when?: unknown[]
}

function summarizeRule(r: Rule): string {
  const parts: string[] = []
  for (const t of r.to ?? []) {
    const op = t.operation ?? {}
    if (op.methods?.length) parts.push(op.methods.join(','))
    if (op.notMethods?.length) parts.push(`not ${op.notMethods.join(',')}`)
    if (op.paths?.length) parts.push(`on ${op.paths.join(',')}`)
    if (op.notPaths?.length) parts.push(`not on ${op.notPaths.join(',')}`)
    if (op.ports?.length) parts.push(`port ${op.ports.join(',')}`)
  }
  const from: string[] = []
  for (const f of r.from ?? []) {
    const s = f.source ?? {}
    if (s.principals?.length) from.push(s.principals.join(','))
    if (s.namespaces?.length) from.push(`ns ${s.namespaces.join(',')}`)
    if (s.ipBlocks?.length) from.push(`ip ${s.ipBlocks.join(',')}`)
    for (const k of ['notPrincipals', 'notNamespaces', 'requestPrincipals'] as const) if (s[k]?.length) from.push(`${k} ${s[k]!.join(',')}`)
  }
  if (from.length) parts.push(`from ${from.join(' and ')}`)
  if (r.when?.length) parts.push(`when ${r.when.length} condition(s)`)
  return parts.length ? parts.join(' ') : 'any request'
}

export function policyInfo(o: KubeObject): PolicyInfo {
  const action = (str(o.spec?.action) ?? 'ALLOW').toUpperCase() as PolicyInfo['action']
  const rules = (o.spec?.rules ?? []) as Rule[]
  const selector = o.spec?.selector?.matchLabels as Record<string, string> | undefined
  const denyAll = action === 'ALLOW' && rules.length === 0 && !o.spec?.provider
  const where = selector && Object.keys(selector).length ? ` for ${Object.entries(selector).map(([k, v]) => `${k}=${v}`).join(',')}` : ''
  const summary = denyAll
    ? `deny all${where} (ALLOW with no rules)`
    : `${action}${where}: ${rules.length ? rules.map(summarizeRule).join('; ') : action === 'DENY' ? 'no rules (denies nothing)' : 'no rules'}`
  return {
    namespace: o.metadata.namespace ?? '',
    name: o.metadata.name,
    action,
    ...(selector && Object.keys(selector).length ? {selector: {...selector}} : {}),
    rules: rules.length,
    denyAll,
    managed: isManaged(o),
    summary,
    ...(o.metadata.resourceVersion ? {resourceVersion: o.metadata.resourceVersion} : {}),
  }
}

/** AuthorizationPolicies in one namespace, or every namespace when none is given. */
export async function readPolicies(client: ReadClient, opts: {namespace?: string} = {}): Promise<PolicyInfo[]> {
  const items = await client.list(SECURITY_API, 'AuthorizationPolicy', opts.namespace ? {namespace: opts.namespace} : {})
  return items.map(policyInfo).sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name))
}

// ------------------------------------------------------------------ pods

export interface PodInfo {
  name: string
  namespace: string
  phase: string
  ready: boolean
  podIP: string | null
  /** the always-5xx replica of the ejection lab */
  faulty: boolean
  version?: string
}

export interface VersionPods {
  version: string
  ready: number
  total: number
  pods: PodInfo[]
}

export interface PodsState {
  namespace: string
  /** hello pods per version label (v1 includes the faulty replica, marked) */
  versions: VersionPods[]
  clients: PodInfo[]
}

export const isPodReady = (p: KubeObject): boolean =>
  Boolean((p.status?.conditions as Array<{type: string; status: string}> | undefined)?.some((c) => c.type === 'Ready' && c.status === 'True'))

export function podInfo(p: KubeObject): PodInfo {
  const labels = p.metadata.labels ?? {}
  return {
    name: p.metadata.name,
    namespace: p.metadata.namespace ?? '',
    phase: str(p.status?.phase) ?? 'Pending',
    ready: isPodReady(p) && !p.metadata.deletionTimestamp,
    podIP: str(p.status?.podIP) ?? null,
    faulty: labels[LAB.faultyLabel] === 'true',
    ...(labels[LAB.versionLabel] ? {version: labels[LAB.versionLabel]} : {}),
  }
}

export async function readPods(client: ReadClient, opts: {namespace?: string} = {}): Promise<PodsState> {
  const namespace = opts.namespace ?? LAB.namespace
  const [hello, clients] = await Promise.all([
    client.list('v1', 'Pod', {namespace, labelSelector: `${LAB.appLabel}=${LAB.service}`}),
    client.list('v1', 'Pod', {namespace, labelSelector: `${LAB.appLabel}=${LAB.deployments.client}`}),
  ])
  const byVersion = new Map<string, PodInfo[]>(LAB.versions.map((v) => [v, []]))
  for (const p of hello.map(podInfo)) {
    const v = p.version ?? '(none)'
    if (!byVersion.has(v)) byVersion.set(v, [])
    byVersion.get(v)!.push(p)
  }
  const versions = [...byVersion.entries()].map(([version, pods]) => ({
    version,
    ready: pods.filter((p) => p.ready).length,
    total: pods.length,
    pods: pods.sort((a, b) => a.name.localeCompare(b.name)),
  }))
  return {namespace, versions, clients: clients.map(podInfo)}
}

// ------------------------------------------------------------------ proxies

export interface ProxiesState {
  /** every proxy acknowledged the latest config it was sent */
  synced: boolean
  items: ProxySyncStatus[]
  /** why the sync state could not be read */
  error?: string
}

export async function readProxies(target: Pick<Target, 'proxyStatus'>): Promise<ProxiesState> {
  try {
    const items = await target.proxyStatus()
    return {synced: items.every((p) => p.state !== 'STALE'), items}
  } catch (e) {
    return {synced: false, items: [], error: (e as Error).message}
  }
}

// ------------------------------------------------------------------ all of it

export type StatePart = 'weights' | 'mtls' | 'policies' | 'pods' | 'proxies'

export interface LabState {
  target: {kind: 'embedded' | 'real'; context: string}
  namespace: string
  readAt: string
  weights?: WeightsState
  mtls?: MtlsState
  policies?: PolicyInfo[]
  pods?: PodsState
  proxies?: ProxiesState
}

export interface ReadStateOptions {
  namespace?: string
  /** default: all parts */
  parts?: StatePart[]
}

/** The lab's current state; read in parallel, only the parts asked for. */
export async function readLabState(target: Pick<Target, 'kind' | 'context' | 'client' | 'proxyStatus'>, opts: ReadStateOptions = {}): Promise<LabState> {
  const namespace = opts.namespace ?? LAB.namespace
  const want = new Set<StatePart>(opts.parts ?? ['weights', 'mtls', 'policies', 'pods', 'proxies'])
  const client = target.client
  const [weights, mtls, policies, pods, proxies] = await Promise.all([
    want.has('weights') ? readWeights(client, {namespace}) : undefined,
    want.has('mtls') ? readMtls(client) : undefined,
    want.has('policies') ? readPolicies(client) : undefined,
    want.has('pods') ? readPods(client, {namespace}) : undefined,
    want.has('proxies') ? readProxies(target) : undefined,
  ])
  return {
    target: {kind: target.kind, context: target.context},
    namespace,
    readAt: new Date().toISOString(),
    ...(weights ? {weights} : {}),
    ...(mtls ? {mtls} : {}),
    ...(policies ? {policies} : {}),
    ...(pods ? {pods} : {}),
    ...(proxies ? {proxies} : {}),
  }
}
