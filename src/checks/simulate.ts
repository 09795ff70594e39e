// Seeded simulation of the split test (no network): each look draws a whole batch with
// binomial draws, then asks SplitTest for a decision exactly as the live check does.
import jstatModule from 'jstat'
import {mersenne} from 'pure-rand/generator/mersenne'
import {uniformFloat64} from 'pure-rand/distribution/uniformFloat64'
import {invalid} from '../lib/errors.js'
import {SplitTest, type SplitTestOptions, type SplitVerdict} from './stats.js'

const jStat = jstatModule.jStat ?? jstatModule

export type Rng = () => number

/** Uniform [0, 1) numbers from a seeded Mersenne Twister (pure-rand). */
export function createRng(seed: number): Rng {
  const g = mersenne(seed >>> 0)
  return () => uniformFloat64(g)
}

// Inversion needs (1−p)^n to stay far from underflow; larger draws are summed from chunks.
const CHUNK = 400

/** One Binomial(n, p) draw by CDF inversion (chunked for large n). */
export function binomial(n: number, p: number, rng: Rng): number {
  if (n <= 0 || p <= 0) return 0
  if (p >= 1) return n
  if (p > 0.5) return n - binomial(n, 1 - p, rng)
  let total = 0
  for (let left = n; left > 0; left -= CHUNK) {
    const m = Math.min(left, CHUNK)
    const u = rng()
    const ratio = p / (1 - p)
    let pmf = Math.pow(1 - p, m)
    let cdf = pmf
    let k = 0
    while (u > cdf && k < m) {
      pmf *= (ratio * (m - k)) / (k + 1)
      k++
      cdf += pmf
    }
    total += k
  }
  return total
}

/** Two-sided Clopper–Pearson interval for x successes in n trials. */
export function clopperPearson(x: number, n: number, level = 0.95): [number, number] {
  if (n === 0) return [0, 1]
  const a = (1 - level) / 2
  const lo = x === 0 ? 0 : jStat.beta.inv(a, x, n - x + 1)
  const hi = x === n ? 1 : jStat.beta.inv(1 - a, x + 1, n - x)
  return [lo, hi]
}

export interface SimulationOptions extends SplitTestOptions {
  /** the real v2 share in percent, 0–100 */
  trueV2Share: number
  /** responses per look; default 50 */
  batchSize?: number
  /** percent of responses that are errors (neither v1 nor v2); default 0 */
  errorRate?: number
  runs: number
  seed: number
}

export interface RequestFigures {
  count: number
  median: number | null
  p90: number | null
  mean: number | null
  max: number | null
}

export interface SimulationSummary {
  runs: number
  seed: number
  batchSize: number
  trueV2Share: number
  expectedV2Share: number
  tolerance: number
  confidence: number
  maxRequests: number
  pass: number
  fail: number
  inconclusive: number
  passRate: number
  failRate: number
  inconclusiveRate: number
  /** 95% Clopper–Pearson intervals for the three rates */
  passRateCI: [number, number]
  failRateCI: [number, number]
  inconclusiveRateCI: [number, number]
  /** requests used (errors included) per run, all runs */
  requests: RequestFigures
  requestsToPass: RequestFigures
  requestsToFail: RequestFigures
  elapsedMs: number
}

function figures(values: number[]): RequestFigures {
  if (values.length === 0) return {count: 0, median: null, p90: null, mean: null, max: null}
  const v = [...values].sort((x, y) => x - y)
  const q = (p: number) => v[Math.min(v.length - 1, Math.ceil(p * v.length) - 1)]
  return {count: v.length, median: q(0.5), p90: q(0.9), mean: v.reduce((s, x) => s + x, 0) / v.length, max: v[v.length - 1]}
}

/** One simulated run; returns the verdict and the requests it used. */
export function simulateRun(
  opts: SplitTestOptions & {trueV2Share: number; batchSize: number; errorRate: number},
  rng: Rng,
): {verdict: Exclude<SplitVerdict, 'continue'>; requests: number} {
  const test = new SplitTest(opts)
  const p = opts.trueV2Share / 100
  const pe = opts.errorRate / 100
  for (;;) {
    const batch = Math.min(opts.batchSize, opts.maxRequests - test.counts.requests)
    const errors = binomial(batch, pe, rng)
    const v2 = binomial(batch - errors, p, rng)
    test.observe(v2, batch - errors - v2, errors)
    const d = test.decision()
    if (d.verdict !== 'continue') return {verdict: d.verdict, requests: d.requests}
  }
}

export function simulateSplit(opts: SimulationOptions): SimulationSummary {
  const batchSize = opts.batchSize ?? 50
  const errorRate = opts.errorRate ?? 0
  const t = opts.trueV2Share
  if (typeof t !== 'number' || !(t >= 0 && t <= 100))
    throw invalid('MESH_INVALID_TRUE_SHARE', `trueV2Share must be a percentage between 0 and 100, got ${String(t)}`, 'Give the simulated v2 share in percent.', 'trueV2Share')
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw invalid('MESH_INVALID_BATCH', `batchSize must be an integer of at least 1, got ${String(batchSize)}`, 'Use e.g. 50 responses per look.', 'batchSize')
  if (!(errorRate >= 0 && errorRate < 100))
    throw invalid('MESH_INVALID_ERROR_RATE', `errorRate must be a percentage in [0, 100), got ${String(errorRate)}`, 'Give the simulated error rate in percent.', 'errorRate')
  if (!Number.isInteger(opts.runs) || opts.runs < 1)
    throw invalid('MESH_INVALID_RUNS', `runs must be an integer of at least 1, got ${String(opts.runs)}`, 'Use e.g. 10000 runs.', 'runs')
  const started = performance.now()
  const rng = createRng(opts.seed)
  const counts = {pass: 0, fail: 0, inconclusive: 0}
  const all: number[] = []
  const toPass: number[] = []
  const toFail: number[] = []
  const probe = new SplitTest(opts) // validates options and resolves defaults once
  for (let i = 0; i < opts.runs; i++) {
    const r = simulateRun({...opts, batchSize, errorRate}, rng)
    counts[r.verdict]++
    all.push(r.requests)
    if (r.verdict === 'pass') toPass.push(r.requests)
    if (r.verdict === 'fail') toFail.push(r.requests)
  }
  const n = opts.runs
  return {
    runs: n,
    seed: opts.seed,
    batchSize,
    trueV2Share: t,
    expectedV2Share: probe.options.expectedV2Share,
    tolerance: probe.options.tolerance,
    confidence: probe.options.confidence,
    maxRequests: probe.options.maxRequests,
    ...counts,
    passRate: counts.pass / n,
    failRate: counts.fail / n,
    inconclusiveRate: counts.inconclusive / n,
    passRateCI: clopperPearson(counts.pass, n),
    failRateCI: clopperPearson(counts.fail, n),
    inconclusiveRateCI: clopperPearson(counts.inconclusive, n),
    requests: figures(all),
    requestsToPass: figures(toPass),
    requestsToFail: figures(toFail),
    elapsedMs: performance.now() - started,
  }
}
