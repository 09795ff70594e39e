// `mesh verify split`: wait for the proxies, then run the sequential split test through the
// ingress against the expected weights (default: the split the ingress VirtualService routes).
import type {Target} from '../cluster/target.js'
import type {CheckResult, HtmlReport} from '../checks/report.js'
import {runSplitCheck, splitCheckResult, splitReportSections, type SplitCheckOutcome} from '../checks/split.js'
import {SPLIT_DEFAULTS, validateSplitOptions} from '../checks/stats.js'
import type {SplitDecision} from '../checks/stats.js'
import {EXIT, MeshError} from '../lib/errors.js'
import {LAB} from '../mesh/lab.js'
import {formatWeights, type Weights} from '../mesh/weights.js'
import {readWeights, type ReadClient} from '../lab/state.js'
import {CHECKS} from './catalog.js'
import {ingressUnreachable, probeIngress, resolveIngress, type ProgressFn} from './common.js'

export const SPLIT_VERIFY_DEFAULTS = {budget: 5000, connections: 10, maxDurationSec: 120} as const

export interface VerifySplitOptions {
  /** expected weights; default: what the ingress VirtualService routes now */
  expect?: Weights
  /** percentage points, default 5 */
  tolerance?: number
  /** default 0.999 */
  confidence?: number
  /** request budget, default 5000 */
  budget?: number
  connections?: number
  /** fixed total requests per second; default as fast as possible */
  rate?: number
  maxDurationSec?: number
  /** ingress base URL instead of the target's */
  ingressUrl?: string
  signal?: AbortSignal
  onLook?: (d: SplitDecision) => void
  onProgress?: ProgressFn
}

export interface SplitVerification {
  result: CheckResult
  expected: Weights
  /** flag: --expect; lab: the ingress VirtualService */
  expectedFrom: 'flag' | 'lab'
  url: string
  notes: string[]
  outcome: SplitCheckOutcome
  /** the split and latency sections of the HTML report */
  report: Pick<HtmlReport, 'split' | 'latency'>
}

/** Validate the statistical options before touching the lab (bad input exits 65 with the lab down too). */
export function validateSplitInput(o: Pick<VerifySplitOptions, 'expect' | 'tolerance' | 'confidence' | 'budget'>): void {
  validateSplitOptions({
    expectedV2Share: o.expect?.v2 ?? 10,
    maxRequests: o.budget ?? SPLIT_VERIFY_DEFAULTS.budget,
    ...(o.tolerance !== undefined ? {tolerance: o.tolerance} : {}),
    ...(o.confidence !== undefined ? {confidence: o.confidence} : {}),
  })
}

/** The split the ingress routes now (the check measures through the ingress). */
export async function currentIngressWeights(client: ReadClient): Promise<{weights: Weights; notes: string[]}> {
  const st = await readWeights(client)
  if (!st.ingress) {
    throw new MeshError('MESH_NO_INGRESS_ROUTE', `VirtualService ${LAB.namespace}/${LAB.ingressVirtualService} does not exist, so the ingress has no route to hello`, {
      suggestion: 'Run mesh lab reset (or mesh canary shift 100/0) to create the routes, or give --expect.',
      exit: EXIT.unavailable,
    })
  }
  return {weights: st.ingress, notes: st.notes}
}

export async function verifySplit(target: Target, o: VerifySplitOptions = {}): Promise<SplitVerification> {
  validateSplitInput(o)
  const started = performance.now()
  const notes: string[] = []
  let expected = o.expect
  const expectedFrom: SplitVerification['expectedFrom'] = expected ? 'flag' : 'lab'
  if (!expected) {
    const cur = await currentIngressWeights(target.client)
    expected = cur.weights
    notes.push(...cur.notes)
  }
  const base = await resolveIngress(target, o.ingressUrl)
  const url = base + LAB.ingressPath
  await probeIngress(base)
  o.onProgress?.(`Measuring the split at ${url} against ${formatWeights(expected)}`)
  const outcome = await runSplitCheck({
    url,
    expectedV2Share: expected.v2,
    maxRequests: o.budget ?? SPLIT_VERIFY_DEFAULTS.budget,
    ...(o.tolerance !== undefined ? {tolerance: o.tolerance} : {}),
    ...(o.confidence !== undefined ? {confidence: o.confidence} : {}),
    connections: o.connections ?? SPLIT_VERIFY_DEFAULTS.connections,
    ...(o.rate !== undefined ? {rate: o.rate} : {}),
    maxDurationSec: o.maxDurationSec ?? SPLIT_VERIFY_DEFAULTS.maxDurationSec,
    ...(o.signal ? {signal: o.signal} : {}),
    ...(o.onLook ? {onLook: o.onLook} : {}),
  })
  const load = outcome.load
  if (load.completed === 0 && load.errors > 0) throw ingressUnreachable(base, load.firstError ?? 'every request failed to connect')
  const tol = outcome.decision.tolerance ?? SPLIT_DEFAULTS.tolerance
  const result = splitCheckResult(outcome, {
    id: 'split',
    description: outcome.decision.exact
      ? `traffic through the ingress goes ${expected.v1 === 100 ? 'only to v1' : 'only to v2'} (${formatWeights(expected)}, exact check)`
      : `traffic through the ingress is split ${formatWeights(expected)} (v1/v2, ±${tol} points)`,
    hintUrl: CHECKS.split.hintUrl,
  })
  result.category = CHECKS.split.category
  result.durationMs = Math.round(performance.now() - started)
  const errorStatuses = Object.fromEntries(Object.entries(load.statuses).filter(([s]) => !s.startsWith('2')))
  result.evidence = {
    expected: formatWeights(expected),
    expectedFrom,
    ...result.evidence,
    url,
    stopReason: load.stopReason,
    ...(Object.keys(errorStatuses).length ? {nonSuccessStatuses: errorStatuses} : {}),
    ...(load.errors ? {connectionErrors: load.errors, firstError: load.firstError} : {}),
    ...(notes.length ? {notes} : {}),
  }
  return {result, expected, expectedFrom, url, notes, outcome, report: splitReportSections(outcome)}
}
