// Authorization on the lab: deny-all, ALLOW rules, list, and reset (which deletes only the
// AuthorizationPolicies mesh manages and reports the ones it left alone).
import type {KubeObject, ObjectRef} from '../cluster/client.js'
import {MANAGED_BY_LABEL, MANAGED_BY_VALUE} from '../cluster/guard.js'
import {LAB} from '../mesh/lab.js'
import {SECURITY_API, buildAllowPolicy, buildDenyAll, type AllowPolicyOptions} from '../mesh/security.js'
import {assertValid} from '../mesh/validate.js'
import {applyAndSync, locked, requireNamespace, type ChangeOptions, type ChangeReport} from './change.js'
import type {Lab} from './open-target.js'
import {policyInfo, readPolicies, type PolicyInfo} from './state.js'

export interface PolicyResult extends ChangeReport {
  policy: {namespace: string; name: string}
  /** the policy as it will read in `mesh policy list` */
  summary: string
  elapsedMs: number
}

export interface DenyAllOptions extends ChangeOptions {
  namespace?: string
}

const apply = async (lab: Lab, obj: KubeObject, opts: ChangeOptions): Promise<PolicyResult> => {
  const started = Date.now()
  const namespace = obj.metadata.namespace!
  return locked(lab, opts, async () => {
    await requireNamespace(lab, namespace, [LAB.namespace])
    const report = await applyAndSync(lab, [obj], opts)
    return {...report, policy: {namespace, name: obj.metadata.name}, summary: policyInfo(obj).summary, elapsedMs: Date.now() - started}
  })
}

/** `deny-all`: an ALLOW policy with no rules, so nothing in the namespace is allowed. */
export async function denyAll(lab: Lab, opts: DenyAllOptions = {}): Promise<PolicyResult> {
  const obj = assertValid(buildDenyAll(opts.namespace ?? LAB.namespace) as unknown as Record<string, unknown>) as unknown as KubeObject
  return apply(lab, obj, opts)
}

export interface AllowOptions extends ChangeOptions {
  /** workload (app label) the rule protects, e.g. hello; omitted = every workload of the namespace */
  to?: string
  methods?: string[]
  paths?: string[]
  fromPrincipals?: string[]
  fromNamespaces?: string[]
  namespace?: string
  /** default: derived, allow-<methods>-<app> (e.g. allow-get-hello) */
  name?: string
}

/** The ALLOW policy `allow` would apply (validated; bad input throws 65 before any request). */
export function buildAllow(opts: AllowOptions): KubeObject {
  const o: AllowPolicyOptions = {
    ...(opts.name ? {name: opts.name} : {}),
    namespace: opts.namespace ?? LAB.namespace,
    ...(opts.to ? {selector: {[LAB.appLabel]: opts.to}} : {}),
    principals: opts.fromPrincipals,
    namespaces: opts.fromNamespaces,
    methods: opts.methods,
    paths: opts.paths,
  }
  return assertValid(buildAllowPolicy(o) as unknown as Record<string, unknown>) as unknown as KubeObject
}

export async function allowPolicy(lab: Lab, opts: AllowOptions): Promise<PolicyResult> {
  return apply(lab, buildAllow(opts), opts)
}

export function listPolicies(lab: Lab, opts: {namespace?: string} = {}): Promise<PolicyInfo[]> {
  return readPolicies(lab.target.client, opts)
}

export interface PolicyResetResult extends ChangeReport {
  /** mesh-managed policies deleted (or that would be, in a dry run) */
  deleted: Array<{namespace: string; name: string}>
  /** policies without mesh's label: never touched */
  kept: PolicyInfo[]
  elapsedMs: number
}

/** Delete every AuthorizationPolicy labelled managed-by=mesh (one namespace, or all); report the rest. */
export async function resetPolicies(lab: Lab, opts: ChangeOptions & {namespace?: string} = {}): Promise<PolicyResetResult> {
  const started = Date.now()
  return locked(lab, opts, async () => {
    if (!lab.up) {
      return {dryRun: true, serverValidated: false, yaml: '', changes: [], changed: false, deleted: [], kept: [], elapsedMs: 0}
    }
    const all = await readPolicies(lab.target.client, opts)
    const ours = all.filter((p) => p.managed)
    const kept = all.filter((p) => !p.managed)
    const refs: ObjectRef[] = ours.map((p) => ({apiVersion: SECURITY_API, kind: 'AuthorizationPolicy', name: p.name, namespace: p.namespace}))
    const report = await applyAndSync(lab, [], opts, refs)
    return {
      ...report,
      deleted: report.changes.filter((c) => c.action === 'deleted').map((c) => ({namespace: c.namespace ?? '', name: c.name})),
      kept,
      elapsedMs: Date.now() - started,
    }
  })
}

export const MANAGED_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`
