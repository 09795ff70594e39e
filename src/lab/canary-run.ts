// `mesh canary run`: walk a canary plan step by step with an analysis gate after each step
// (ADR 0102). A failed or inconclusive gate rolls back to 100/0; an abort (Ctrl-C) leaves the
// last applied step in place. Progress is kept in <home>/canary-run.json for resuming.
import {runSplitCheck} from '../checks/split.js'
import {EXIT, invalid} from '../lib/errors.js'
import {CanaryPlan, ROLLBACK_WEIGHTS} from '../mesh/canary.js'
import {LAB} from '../mesh/lab.js'
import {formatWeights, sameWeights, type Weights} from '../mesh/weights.js'
import {locked} from './change.js'
import {rollbackCanary, shiftCanary, type CanaryOptions, type ShiftResult} from './canary.js'
import {readRunProgress, runProgressPath, writeRunProgress, type CanaryRunProgress, type GateRecord, type GateVerdict} from './canary-progress.js'
import {requireUp, type Lab} from './open-target.js'
import {readWeights} from './state.js'

export type AnalysisKind = 'split' | 'none'

export interface GateOptions {
  /** request budget of one split check, default 5000 */
  maxRequests?: number
  /** accepted deviation of the v2 share in percentage points, default 5 */
  tolerance?: number
  /** confidence of the split test, default 0.999 */
  confidence?: number
  /** fail the gate above this share of error responses (0–1), default 0.05 */
  maxErrorRate?: number
  /** fail the gate when p99 latency exceeds this many ms; default no limit */
  maxP99Ms?: number
  /** wall-clock cap of one check in seconds, default 60 */
  maxDurationSec?: number
}

export interface GateResult {
  verdict: GateVerdict
  reason: string
  expected: Weights
  /** observed v2 share in percent, null when no v1/v2 response came back */
  observedV2Share: number | null
  /** anytime-valid confidence interval of the v2 share, percent */
  interval: [number, number] | null
  requests: number
  /** responses that were neither v1 nor v2 (5xx, 4xx, connection errors) */
  errors: number
  errorRate: number
  p99Ms: number | null
}

export type Analyzer = (lab: Lab, expected: Weights, opts: GateOptions & {signal?: AbortSignal}) => Promise<GateResult>

export type CanaryRunEvent =
  | {type: 'start'; plan: Weights[]; from: Weights; startIndex: number; resumed: boolean}
  | {type: 'step'; index: number; total: number; shift: ShiftResult}
  | {type: 'in-place'; index: number; total: number; weights: Weights}
  | {type: 'analysis'; index: number; weights: Weights}
  | {type: 'gate'; index: number; gate: GateResult}
  | {type: 'wait'; ms: number; next: Weights}
  | {type: 'rollback'; reason: string; shift: ShiftResult}

export interface CanaryRunOptions extends CanaryOptions, GateOptions {
  plan?: CanaryPlan
  /** pause after each passed gate before the next step, default 5000 ms */
  intervalMs?: number
  analysis?: AnalysisKind
  /** abort = Ctrl-C: stop at once, keep the last applied step */
  signal?: AbortSignal
  onEvent?: (e: CanaryRunEvent) => void
  /** the gate; default: the split check against the ingress (splitGate) */
  analyze?: Analyzer
}

export interface RunStepRecord {
  index: number
  weights: Weights
  /** applied by this run, or already in place */
  applied: boolean
  gate?: GateResult
}

export interface CanaryRunResult {
  /** completed: every step passed; already-complete: the weights were at the last step; rolled-back: a gate failed; interrupted: aborted */
  status: 'completed' | 'already-complete' | 'rolled-back' | 'interrupted'
  plan: Weights[]
  startedFrom: Weights
  /** continued the run recorded in canary-run.json */
  resumed: boolean
  /** the weights in place when the run ended */
  final: Weights
  lastApplied?: {index: number; weights: Weights}
  steps: RunStepRecord[]
  rollback?: {reason: string; verdict: GateVerdict; shift: ShiftResult}
  progressFile: string
  /** 0 completed, 1 gate failed, 2 gate inconclusive, 130 interrupted */
  exitCode: number
  elapsedMs: number
}

export const INTERRUPTED_EXIT = 130

/** The default gate: a sequential split check through the ingress, plus error-rate and p99 limits. */
export const splitGate: Analyzer = async (lab, expected, opts) => {
  const url = (await lab.target.ingressUrl()).replace(/\/$/, '') + LAB.ingressPath
  const out = await runSplitCheck({
    url,
    expectedV2Share: expected.v2,
    maxRequests: opts.maxRequests ?? 5000,
    ...(opts.tolerance !== undefined ? {tolerance: opts.tolerance} : {}),
    ...(opts.confidence !== undefined ? {confidence: opts.confidence} : {}),
    maxDurationSec: opts.maxDurationSec ?? 60,
    signal: opts.signal,
  })
  const d = out.decision
  const errors = d.other
  const errorRate = d.requests ? errors / d.requests : 0
  const p99 = out.load.latencyMs.count ? out.load.latencyMs.p99 : null
  let verdict: GateVerdict = d.verdict === 'continue' ? 'inconclusive' : d.verdict
  let reason = d.reason
  const maxErr = opts.maxErrorRate ?? 0.05
  if (verdict !== 'fail' && d.requests > 0 && errorRate > maxErr) {
    verdict = 'fail'
    reason = `${errors} of ${d.requests} responses were errors (${pct(errorRate)}), above the limit ${pct(maxErr)}`
  } else if (verdict === 'pass' && opts.maxP99Ms !== undefined && p99 !== null && p99 > opts.maxP99Ms) {
    verdict = 'fail'
    reason = `p99 latency ${p99.toFixed(1)} ms is above the limit ${opts.maxP99Ms} ms`
  }
  return {verdict, reason, expected, observedV2Share: d.observedShare, interval: d.n ? d.interval : null, requests: d.requests, errors, errorRate, p99Ms: p99}
}

const pct = (f: number) => `${(f * 100).toFixed(1)}%`

const skippedGate = (expected: Weights): GateResult => ({
  verdict: 'skipped',
  reason: 'analysis none: no check',
  expected,
  observedV2Share: null,
  interval: null,
  requests: 0,
  errors: 0,
  errorRate: 0,
  p99Ms: null,
})

function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0 || signal?.aborted) return Promise.resolve()
  return new Promise((resolve) => {
    const t = setTimeout(done, ms)
    function done() {
      clearTimeout(t)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    signal?.addEventListener('abort', done, {once: true})
  })
}

export function validateRunOptions(o: CanaryRunOptions): void {
  if (o.intervalMs !== undefined && !(Number.isFinite(o.intervalMs) && o.intervalMs >= 0)) {
    throw invalid('MESH_CANARY_INTERVAL', `interval ${o.intervalMs} ms is not a duration of 0 or more`, 'Write the interval like 5s, 500ms or 0s.', 'interval')
  }
  if (o.maxErrorRate !== undefined && !(o.maxErrorRate >= 0 && o.maxErrorRate <= 1)) {
    throw invalid('MESH_CANARY_ERROR_RATE', `max error rate ${o.maxErrorRate} is not between 0 and 1`, 'Give the error-rate limit as a fraction, e.g. 0.05 for 5%.', 'maxErrorRate')
  }
  if (o.maxRequests !== undefined && !(Number.isInteger(o.maxRequests) && o.maxRequests >= 1)) {
    throw invalid('MESH_CANARY_BUDGET', `max requests ${o.maxRequests} is not a whole number of 1 or more`, 'Give the request budget of one gate, e.g. 5000.', 'maxRequests')
  }
}

/**
 * Walk the plan from where the lab's weights are. Resumes the run in canary-run.json when it
 * has the same plan and stopped at the weights the lab still has (gates it passed are not
 * repeated). Holds the lab lock for the whole run.
 */
export async function runCanary(lab: Lab, opts: CanaryRunOptions = {}): Promise<CanaryRunResult> {
  validateRunOptions(opts)
  const plan = opts.plan ?? new CanaryPlan()
  const steps = plan.steps
  const last = steps.length - 1
  const emit = opts.onEvent ?? (() => {})
  const analyze = opts.analysis === 'none' ? async (_l: Lab, w: Weights) => skippedGate(w) : (opts.analyze ?? splitGate)
  const signal = opts.signal
  const started = Date.now()
  const changeOpts: CanaryOptions = {namespace: opts.namespace, forceConflicts: opts.forceConflicts, syncTimeoutMs: opts.syncTimeoutMs, lockWaitMs: opts.lockWaitMs}
  requireUp(lab)

  return locked(lab, changeOpts, async () => {
    const namespace = opts.namespace ?? LAB.namespace
    let current = (await readWeights(lab.target.client, {namespace})).weights
    const startedFrom = current
    const planText = steps.map(formatWeights).join(',')
    const now = () => new Date().toISOString()
    const prev = readRunProgress(lab.home)
    const resumed = Boolean(
      prev && prev.plan === planText && (prev.status === 'running' || prev.status === 'interrupted') && prev.lastApplied && sameWeights(prev.lastApplied.weights, current),
    )
    const progress: CanaryRunProgress = resumed
      ? {...prev!, status: 'running', pid: process.pid}
      : {version: 1, plan: planText, status: 'running', pid: process.pid, startedAt: now(), updatedAt: now(), gates: []}
    const records: RunStepRecord[] = []
    const result = (status: CanaryRunResult['status'], exitCode: number, extra: Partial<CanaryRunResult> = {}): CanaryRunResult => ({
      status,
      plan: [...steps],
      startedFrom,
      resumed,
      final: current,
      ...(progress.lastApplied ? {lastApplied: {index: progress.lastApplied.index, weights: progress.lastApplied.weights}} : {}),
      steps: records,
      progressFile: runProgressPath(lab.home),
      exitCode,
      elapsedMs: Date.now() - started,
      ...extra,
    })
    const finish = (status: CanaryRunProgress['status']) => {
      progress.status = status
      writeRunProgress(lab.home, progress)
    }

    const gatePassed = (i: number) => progress.gates.some((g) => g.index === i && sameWeights(g.weights, steps[i]!) && (g.verdict === 'pass' || g.verdict === 'skipped'))
    const pos = plan.position(current)
    const startIndex = pos.onPlan ? pos.index : pos.next ? steps.indexOf(pos.next) : steps.length
    // at (or past) the last step there is nothing to walk, unless a resumed run still owes its last gate
    const owesLastGate = resumed && pos.onPlan && pos.index === last && !gatePassed(last)
    if (startIndex > last || (pos.onPlan && pos.index === last && !owesLastGate)) return result('already-complete', EXIT.ok)
    emit({type: 'start', plan: [...steps], from: current, startIndex, resumed})
    writeRunProgress(lab.home, progress)

    for (let i = startIndex; i <= last; i++) {
      const step = steps[i]!
      if (signal?.aborted) return (finish('interrupted'), result('interrupted', INTERRUPTED_EXIT))
      const record: RunStepRecord = {index: i, weights: step, applied: false}
      records.push(record)
      if (!sameWeights(current, step)) {
        const shift = await shiftCanary(lab, step, changeOpts)
        current = step
        record.applied = true
        progress.lastApplied = {index: i, weights: step, at: now()}
        writeRunProgress(lab.home, progress)
        emit({type: 'step', index: i, total: steps.length, shift})
      } else {
        progress.lastApplied = {index: i, weights: step, at: now()}
        writeRunProgress(lab.home, progress)
        emit({type: 'in-place', index: i, total: steps.length, weights: step})
      }
      if (signal?.aborted) return (finish('interrupted'), result('interrupted', INTERRUPTED_EXIT))

      if (!gatePassed(i)) {
        emit({type: 'analysis', index: i, weights: step})
        const gate = await analyze(lab, step, {...opts, signal})
        // an aborted check says nothing about the canary: keep the step, do not roll back
        if (signal?.aborted) return (finish('interrupted'), result('interrupted', INTERRUPTED_EXIT))
        record.gate = gate
        const rec: GateRecord = {index: i, weights: step, verdict: gate.verdict, reason: gate.reason, at: now()}
        progress.gates = [...progress.gates.filter((g) => g.index !== i), rec]
        writeRunProgress(lab.home, progress)
        emit({type: 'gate', index: i, gate})
        if (gate.verdict === 'fail' || gate.verdict === 'inconclusive') {
          const reason = `step ${i + 1} (${formatWeights(step)}): analysis ${gate.verdict}: ${gate.reason}`
          const shift = await rollbackCanary(lab, changeOpts)
          current = {...ROLLBACK_WEIGHTS}
          emit({type: 'rollback', reason, shift})
          progress.rollback = {reason, verdict: gate.verdict, at: now()}
          finish('rolled-back')
          return result('rolled-back', gate.verdict === 'fail' ? EXIT.checkFailed : EXIT.inconclusive, {rollback: {reason, verdict: gate.verdict, shift}})
        }
      }
      if (i < last) {
        const ms = opts.intervalMs ?? 5000
        if (ms > 0) emit({type: 'wait', ms, next: steps[i + 1]!})
        await abortableSleep(ms, signal)
      }
    }
    finish('completed')
    return result('completed', EXIT.ok)
  })
}
