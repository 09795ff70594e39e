// `mesh verify` with no argument: every check that applies to the lab's current state, in
// order — propagation, the split at the current weights, the mTLS matrix, authorization when
// policies exist, whether ejection is possible at all, and (only with --include ejection, since
// it scales a replica) the ejection itself. Returns data; the command renders it.
import type {CheckResult, HtmlReport, ReachabilityMatrix} from '../checks/report.js'
import {summarize, type CheckSummary} from '../checks/report.js'
import {invalid} from '../lib/errors.js'
import type {Lab} from '../lab/open-target.js'
import {INTRUSIVE_GROUPS, VERIFY_GROUPS, resultOf, type VerifyGroup} from './catalog.js'
import {syncCheck, type ProgressFn} from './common.js'
import {assessEjection, verifyEjection, type VerifyEjectionOptions} from './ejection.js'
import {readSecurityState, verifyAuthz, verifyMtls, type AuthzVerifyOptions, type SecurityVerifyOptions} from './security.js'
import {validateSplitInput, verifySplit, type VerifySplitOptions} from './split.js'

export interface VerifyOptions {
  /** run only these groups (verify split/mtls/authz/ejection); default: every applicable one */
  only?: VerifyGroup[]
  /** add groups that change the lab (ejection) */
  include?: VerifyGroup[]
  split?: Omit<VerifySplitOptions, 'onProgress'>
  mtls?: Omit<SecurityVerifyOptions, 'onProgress'>
  authz?: Omit<AuthzVerifyOptions, 'onProgress'>
  ejection?: Omit<VerifyEjectionOptions, 'onProgress'>
  syncTimeoutMs?: number
  onProgress?: ProgressFn
}

export interface VerifyReport {
  target: {kind: 'embedded' | 'real'; context: string}
  checks: CheckResult[]
  summary: CheckSummary
  warnings: Array<{code: string; message: string}>
  /** why a group was not run */
  skipped: Array<{group: VerifyGroup; reason: string}>
  /** for renderHtml: split over time, latency histogram, matrices */
  report: Omit<HtmlReport, 'title' | 'checks'>
}

export function parseGroups(values: readonly string[] | undefined, field: string): VerifyGroup[] | undefined {
  if (!values || values.length === 0) return undefined
  const out: VerifyGroup[] = []
  for (const raw of values.flatMap((v) => v.split(','))) {
    const v = raw.trim().toLowerCase()
    if (!v) continue
    if (!(VERIFY_GROUPS as readonly string[]).includes(v)) {
      throw invalid('MESH_VERIFY_CHECK', `${field} "${raw}" is not one of ${VERIFY_GROUPS.join(', ')}`, `Name checks from ${VERIFY_GROUPS.join(', ')}, e.g. --${field} ejection.`, field)
    }
    if (!out.includes(v as VerifyGroup)) out.push(v as VerifyGroup)
  }
  return out
}

export async function runVerify(lab: Lab, o: VerifyOptions = {}): Promise<VerifyReport> {
  if (o.split) validateSplitInput(o.split)
  const target = lab.target
  const progress = o.onProgress ?? (() => {})
  const wanted = (g: VerifyGroup) => (o.only ? o.only.includes(g) : !INTRUSIVE_GROUPS.includes(g) || Boolean(o.include?.includes(g)))
  const checks: CheckResult[] = []
  const warnings: VerifyReport['warnings'] = []
  const skipped: VerifyReport['skipped'] = []
  const report: VerifyReport['report'] = {}
  const matrices: ReachabilityMatrix[] = []

  progress('Waiting for the proxies to acknowledge the current configuration')
  checks.push((await syncCheck(target, o.syncTimeoutMs)).result)

  if (wanted('split')) {
    progress('Checking the traffic split')
    const s = await verifySplit(target, {...o.split, onProgress: progress})
    checks.push(s.result)
    Object.assign(report, s.report)
  }
  const needSecurity = wanted('mtls') || wanted('authz')
  const st = needSecurity ? await readSecurityState(target) : undefined
  if (st && wanted('mtls')) {
    const m = await verifyMtls(target, {...o.mtls, onProgress: progress}, st)
    checks.push(...m.results)
    matrices.push(m.matrix)
  }
  if (st && wanted('authz')) {
    if (!o.only && st.inputs.authorizationPolicies.length === 0) {
      skipped.push({group: 'authz', reason: 'no AuthorizationPolicy exists: every request is allowed (mesh verify authz checks that anyway)'})
    } else {
      const a = await verifyAuthz(target, {...o.authz, onProgress: progress}, st)
      checks.push(...a.results)
      matrices.push(a.matrix)
    }
  }
  if (wanted('ejection')) {
    const e = await verifyEjection(lab, {...o.ejection, onProgress: progress})
    checks.push(...e.results)
    warnings.push(...e.warnings)
  } else if (!o.only) {
    // the static part costs nothing: warn when the DestinationRule can never eject
    const e = await staticEjectionCheck(lab)
    checks.push(e.result)
    warnings.push(...e.warnings)
    skipped.push({group: 'ejection', reason: 'changes the lab (scales hello-v1-faulty); run with --include ejection'})
  }
  if (matrices.length) report.matrices = matrices
  return {target: {kind: target.kind, context: target.context}, checks, summary: summarize(checks), warnings, skipped, report}
}

/** ejection.possible only: read the DestinationRule and count endpoints, drive no load. */
async function staticEjectionCheck(lab: Lab): Promise<{result: CheckResult; warnings: VerifyReport['warnings']}> {
  const a = await assessEjection(lab.target)
  return {result: a.possible, warnings: a.impossible ? [{code: a.impossible.code, message: a.impossible.message}] : []}
}
