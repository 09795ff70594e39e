// The split check end to end, cluster-agnostic: drive load at a URL, feed each batch of
// classified responses to SplitTest, stop the load as soon as it decides.
import {runLoad, type Classifier, type LoadResult} from './load.js'
import {SplitTest, type SplitDecision, type SplitTestOptions} from './stats.js'
import type {CheckResult, HtmlReport} from './report.js'

/** One look: cumulative counts and the interval at that point (percent). */
export interface SplitPoint {
  requests: number
  n: number
  v2: number
  observedShare: number | null
  interval: [number, number]
}

export interface SplitCheckOptions extends SplitTestOptions {
  url: string
  method?: string
  headers?: Record<string, string>
  /** responses per look; default 50 */
  batchSize?: number
  connections?: number
  /** fixed total requests per second; default as fast as possible */
  rate?: number
  /** wall-clock cap; default 120 s (a pending test then ends inconclusive) */
  maxDurationSec?: number
  /** must return 'v1' / 'v2' for versions; anything else counts as neither */
  classify?: Classifier
  signal?: AbortSignal
  onLook?: (decision: SplitDecision) => void
}

export interface SplitCheckOutcome {
  decision: SplitDecision
  /** one point per look, for the report's split-over-time chart */
  history: SplitPoint[]
  load: LoadResult
}

function point(d: SplitDecision): SplitPoint {
  return {requests: d.requests, n: d.n, v2: d.v2, observedShare: d.observedShare, interval: d.interval}
}

/** Run the sequential split test against a URL; the request budget is maxRequests. */
export async function runSplitCheck(o: SplitCheckOptions): Promise<SplitCheckOutcome> {
  const test = new SplitTest(o) // validates before any traffic is sent
  const history: SplitPoint[] = []
  const seen = {v1: 0, v2: 0, other: 0}
  const feed = (classes: Record<string, number>) => {
    let v1 = 0
    let v2 = 0
    let other = 0
    for (const [k, c] of Object.entries(classes)) {
      if (k === 'v1') v1 += c
      else if (k === 'v2') v2 += c
      else other += c
    }
    test.observe(v2 - seen.v2, v1 - seen.v1, other - seen.other)
    Object.assign(seen, {v1, v2, other})
  }
  const look = (): SplitDecision => {
    const d = test.decision()
    history.push(point(d))
    o.onLook?.(d)
    return d
  }

  const load = await runLoad({
    url: o.url,
    method: o.method,
    headers: o.headers,
    connections: o.connections,
    amount: o.maxRequests,
    maxDurationSec: o.maxDurationSec ?? 120,
    rate: o.rate,
    classify: o.classify,
    signal: o.signal,
    checkEvery: o.batchSize ?? 50,
    stopWhen: (counts) => {
      feed(counts.classes)
      return look().verdict !== 'continue'
    },
  })

  let decision: SplitDecision
  if (test.done) decision = test.decision()
  else {
    feed(load.classes)
    decision = look()
    if (decision.verdict === 'continue') {
      const why =
        load.stopReason === 'aborted'
          ? 'the load was aborted before a decision'
          : load.stopReason === 'time-limit'
            ? `the time limit of ${o.maxDurationSec ?? 120} s was reached before a decision`
            : 'the load ended before a decision'
      decision = test.finalize(why)
      history[history.length - 1] = point(decision)
    }
  }
  return {decision, history, load}
}

export interface SplitCheckMeta {
  id?: string
  description?: string
  hintUrl?: string
}

/** Express a split decision as a check for the reporters (fatal: a wrong split fails CI). */
export function splitCheckResult(outcome: Pick<SplitCheckOutcome, 'decision'> & Partial<SplitCheckOutcome>, meta: SplitCheckMeta = {}): CheckResult {
  const d = outcome.decision
  const expected = `${100 - d.expectedV2Share}/${d.expectedV2Share}`
  const status = d.verdict === 'pass' ? 'pass' : d.verdict === 'fail' ? 'fail' : 'inconclusive'
  const round = (x: number) => Math.round(x * 100) / 100
  return {
    id: meta.id ?? 'split',
    description: meta.description ?? `traffic split matches v1/v2 ${expected}`,
    hintUrl: meta.hintUrl ?? 'docs/statistics.md#reading-a-verdict',
    severity: 'fatal',
    status,
    message: d.reason,
    evidence: {
      observedV2Share: d.observedShare === null ? null : round(d.observedShare),
      interval: [round(d.interval[0]), round(d.interval[1])],
      band: d.band,
      requests: d.requests,
      v1: d.v1,
      v2: d.v2,
      other: d.other,
      confidence: d.confidence,
      ...(outcome.load
        ? {p99Ms: round(outcome.load.latencyMs.p99), requestsPerSec: Math.round(outcome.load.requestsPerSec)}
        : {}),
    },
  }
}

/** The split and latency sections of an HTML report from one split-check run. */
export function splitReportSections(outcome: SplitCheckOutcome): Pick<HtmlReport, 'split' | 'latency'> {
  const d = outcome.decision
  const l = outcome.load.latencyMs
  return {
    split: {
      expectedV2Share: d.expectedV2Share,
      tolerance: d.tolerance,
      confidence: d.confidence,
      points: outcome.history.map((p) => ({requests: p.requests, observedShare: p.observedShare, interval: p.interval})),
    },
    latency: {
      buckets: outcome.load.latencyHistogram,
      percentiles: l.count > 0 ? {p50: l.p50, p90: l.p90, p99: l.p99, p999: l.p999} : {},
    },
  }
}
