// PeerAuthentication (mTLS mode) and AuthorizationPolicy builders.
import type {IAuthorizationPolicy} from '@kubernetes-models/istio/security.istio.io/v1/AuthorizationPolicy'
import type {IPeerAuthentication} from '@kubernetes-models/istio/security.istio.io/v1/PeerAuthentication'
import {LAB, fail, meta, requireDnsLabel, type ObjectMeta} from './lab.js'
import {methodProblem, namespaceValueProblem, pathProblem, portProblem, principalProblem} from './rules.js'

export type PeerAuthentication = IPeerAuthentication & {metadata: ObjectMeta; spec: NonNullable<IPeerAuthentication['spec']>}
export type AuthorizationPolicy = IAuthorizationPolicy & {metadata: ObjectMeta; spec: NonNullable<IAuthorizationPolicy['spec']>}

export const SECURITY_API = 'security.istio.io/v1'

export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE'
const SCOPE_MODES: readonly MtlsMode[] = ['STRICT', 'PERMISSIVE']
const WORKLOAD_MODES: readonly MtlsMode[] = ['STRICT', 'PERMISSIVE', 'DISABLE']

/** "strict" → STRICT. Namespace and mesh-wide policies take STRICT|PERMISSIVE; workloads and ports also DISABLE. */
export function parseMtlsMode(text: string, opts: {allowDisable?: boolean; field?: string} = {}): MtlsMode {
  const field = opts.field ?? 'mode'
  const allowed = opts.allowDisable ? WORKLOAD_MODES : SCOPE_MODES
  const mode = String(text).trim().toUpperCase() as MtlsMode
  if (!allowed.includes(mode)) fail('MESH_MTLS_MODE', `${field} "${text}" is not one of ${allowed.join(', ')}`, field)
  return mode
}

export interface PeerAuthenticationOptions {
  mode: string
  /** namespace-wide policy in this namespace (default mesh-lab) */
  namespace?: string
  /** mesh-wide policy in the root namespace istio-system */
  mesh?: boolean
}

/** `default` PeerAuthentication for a namespace, or mesh-wide in the root namespace (PA-2). */
export function buildPeerAuthentication(opts: PeerAuthenticationOptions): PeerAuthentication {
  const mode = parseMtlsMode(opts.mode)
  if (opts.mesh && opts.namespace !== undefined && opts.namespace !== LAB.rootNamespace) {
    fail('MESH_PA_SCOPE', `namespace "${opts.namespace}" was given together with mesh-wide; a mesh-wide policy lives in ${LAB.rootNamespace}`, 'namespace')
  }
  const namespace = opts.mesh ? LAB.rootNamespace : requireDnsLabel(opts.namespace ?? LAB.namespace, 'namespace')
  return {apiVersion: SECURITY_API, kind: 'PeerAuthentication', metadata: meta('default', namespace), spec: {mtls: {mode}}}
}

export interface WorkloadPeerAuthenticationOptions {
  name: string
  namespace?: string
  selector: Record<string, string>
  mode: string
  /** container port → mode, e.g. {5000: 'DISABLE'} */
  portLevelMtls?: Record<string | number, string>
}

/** Workload-level PeerAuthentication, optionally with per-port modes (SC-8). */
export function buildWorkloadPeerAuthentication(opts: WorkloadPeerAuthenticationOptions): PeerAuthentication {
  const mode = parseMtlsMode(opts.mode, {allowDisable: true})
  const namespace = requireDnsLabel(opts.namespace ?? LAB.namespace, 'namespace')
  requireDnsLabel(opts.name, 'name')
  if (Object.keys(opts.selector).length === 0) fail('MESH_SELECTOR', 'selector is empty; a workload policy needs labels to select pods', 'selector')
  const spec: PeerAuthentication['spec'] = {selector: {matchLabels: {...opts.selector}}, mtls: {mode}}
  if (opts.portLevelMtls) {
    spec.portLevelMtls = {}
    for (const [port, m] of Object.entries(opts.portLevelMtls)) {
      const field = `portLevelMtls[${port}]`
      const p = portProblem(port)
      if (p) fail('MESH_PORT_RANGE', `${field}: port "${port}" ${p}`, field)
      spec.portLevelMtls[String(Number(port))] = {mode: parseMtlsMode(m, {allowDisable: true, field})}
    }
  }
  return {apiVersion: SECURITY_API, kind: 'PeerAuthentication', metadata: meta(opts.name, namespace), spec}
}

/** ALLOW with no rules: nothing is allowed in the namespace (AZ-3). */
export function buildDenyAll(namespace: string = LAB.namespace): AuthorizationPolicy {
  return {apiVersion: SECURITY_API, kind: 'AuthorizationPolicy', metadata: meta('deny-all', requireDnsLabel(namespace, 'namespace')), spec: {}}
}

export interface AllowPolicyOptions {
  /** default: allow-<methods>-<selector app>, e.g. allow-get-hello */
  name?: string
  namespace?: string
  /** workload labels the policy applies to, e.g. {app: 'hello'}; omitted = whole namespace */
  selector?: Record<string, string>
  /** source identities without spiffe://, e.g. cluster.local/ns/mesh-lab/sa/curl */
  principals?: string[]
  /** source namespaces */
  namespaces?: string[]
  methods?: string[]
  paths?: string[]
}

/** One ALLOW rule from principals / namespaces (from) and methods / paths (to). */
export function buildAllowPolicy(opts: AllowPolicyOptions): AuthorizationPolicy {
  const namespace = requireDnsLabel(opts.namespace ?? LAB.namespace, 'namespace')
  const checkAll = (values: string[] | undefined, field: string, code: Parameters<typeof fail>[0], problem: (v: string) => string | undefined) =>
    (values ?? []).map((v, i) => {
      const p = problem(v)
      if (p) fail(code, `${field}[${i}] "${v}" ${p}`, `${field}[${i}]`)
      return v
    })
  const principals = checkAll(opts.principals, 'principals', 'MESH_PRINCIPAL', principalProblem)
  const namespaces = checkAll(opts.namespaces, 'namespaces', 'MESH_NAMESPACE_VALUE', namespaceValueProblem)
  const methods = checkAll(opts.methods?.map((m) => m.trim().toUpperCase()), 'methods', 'MESH_HTTP_METHOD', methodProblem)
  const paths = checkAll(opts.paths, 'paths', 'MESH_PATH', pathProblem)
  if (principals.length + namespaces.length + methods.length + paths.length === 0) {
    fail('MESH_POLICY_NO_RULES', 'the ALLOW policy has no principals, namespaces, methods or paths, so it would allow every request', 'rules')
  }
  const selector = opts.selector && Object.keys(opts.selector).length > 0 ? {...opts.selector} : undefined
  for (const [k, v] of Object.entries(selector ?? {})) {
    if (!k || !v) fail('MESH_SELECTOR', `selector "${k}=${v}" needs a key and a value`, 'selector')
  }
  const name = requireDnsLabel(opts.name ?? defaultAllowName(methods, selector), 'name')

  const rule: NonNullable<AuthorizationPolicy['spec']['rules']>[number] = {}
  const source: Record<string, string[]> = {}
  if (principals.length) source.principals = principals
  if (namespaces.length) source.namespaces = namespaces
  if (Object.keys(source).length) rule.from = [{source}]
  const operation: Record<string, string[]> = {}
  if (methods.length) operation.methods = methods
  if (paths.length) operation.paths = paths
  if (Object.keys(operation).length) rule.to = [{operation}]

  return {
    apiVersion: SECURITY_API,
    kind: 'AuthorizationPolicy',
    metadata: meta(name, namespace),
    spec: {...(selector ? {selector: {matchLabels: selector}} : {}), action: 'ALLOW', rules: [rule]},
  }
}

function defaultAllowName(methods: string[], selector?: Record<string, string>): string {
  const parts = ['allow', ...methods.map((m) => m.toLowerCase())]
  const app = selector?.[LAB.appLabel]
  if (app) parts.push(app.toLowerCase().replace(/[^-a-z0-9]/g, '-'))
  return parts.join('-').slice(0, 63).replace(/-+$/, '')
}

/** Parse "app=hello,version=v1" (or repeated key=value strings) into labels. */
export function parseSelector(items: string | string[]): Record<string, string> {
  const list = (Array.isArray(items) ? items : [items]).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean)
  const out: Record<string, string> = {}
  for (const item of list) {
    const eq = item.indexOf('=')
    if (eq <= 0 || eq === item.length - 1) fail('MESH_SELECTOR', `selector "${item}" is not key=value`, 'selector')
    out[item.slice(0, eq).trim()] = item.slice(eq + 1).trim()
  }
  return out
}
