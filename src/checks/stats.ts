// Sequential test for a traffic split (ADR 0070, docs/statistics.md).
//
// Each response is a Bernoulli outcome: v2 or v1. Responses that are neither (errors, other
// versions) are counted but never enter the share. After every look the caller asks for a
// decision; the interval is an anytime-valid confidence sequence, so looking after every batch
// does not inflate the error rate: P(∃n: true share ∉ CS_n) ≤ α = 1 − confidence.
//
// All shares and intervals in this API are PERCENT (0–100); tolerance is in percentage points.
import jstatModule from 'jstat'
import {invalid} from '../lib/errors.js'

const jStat = jstatModule.jStat ?? jstatModule

export const SPLIT_DEFAULTS = {
  tolerance: 5,
  confidence: 0.999,
  minRequests: 0,
  exactPassAfter: 200,
} as const

export type SplitVerdict = 'pass' | 'fail' | 'inconclusive' | 'continue'

export interface SplitTestOptions {
  /** expected share of v2 in percent, 0–100 (0 and 100 select the exact check) */
  expectedV2Share: number
  /** accepted deviation in percentage points, (0, 50]; default 5 */
  tolerance?: number
  /** confidence of the sequence, (0.5, 1); default 0.999 (α = 0.1%) */
  confidence?: number
  /** request budget: every observed response counts, errors included; integer ≥ 1 */
  maxRequests: number
  /** no pass/fail before this many v1+v2 responses; default 0 */
  minRequests?: number
  /** exact checks (0 or 100): pass after this many responses all of the right version; default 200 */
  exactPassAfter?: number
  /** Beta(a, b) mixing prior; default centred on the expected share (see mixturePrior) */
  prior?: [number, number]
}

export interface SplitDecision {
  verdict: SplitVerdict
  /** one sentence saying why */
  reason: string
  /** v1 + v2 responses: the sample the share is computed on */
  n: number
  v1: number
  v2: number
  /** responses that were neither v1 nor v2 (errors); not in the share */
  other: number
  /** every observed response: n + other (what the budget counts) */
  requests: number
  /** observed v2 share in percent; null before the first v1/v2 response */
  observedShare: number | null
  /** anytime-valid confidence sequence for the v2 share, percent */
  interval: [number, number]
  expectedV2Share: number
  tolerance: number
  /** accepted band [expected − tolerance, expected + tolerance], clipped to [0, 100] */
  band: [number, number]
  confidence: number
  alpha: number
  maxRequests: number
  exact: boolean
  method: {name: 'beta-binomial-mixture' | 'exact'; prior: [number, number]}
  /** responses observed after the verdict was fixed (in-flight when the load stopped) */
  late: number
}

interface Resolved {
  prior?: [number, number]
  expectedV2Share: number
  tolerance: number
  confidence: number
  maxRequests: number
  minRequests: number
  exactPassAfter: number
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v)

export function validateSplitOptions(o: SplitTestOptions): Resolved {
  const e = o.expectedV2Share
  if (typeof e !== 'number' || !Number.isFinite(e) || e < 0 || e > 100)
    throw invalid(
      'MESH_INVALID_EXPECTED_SHARE',
      `expectedV2Share must be a percentage between 0 and 100, got ${String(e)}`,
      'Give the expected v2 share in percent, e.g. 10 for a 90/10 split.',
      'expectedV2Share',
    )
  const tolerance = o.tolerance ?? SPLIT_DEFAULTS.tolerance
  if (typeof tolerance !== 'number' || !Number.isFinite(tolerance) || tolerance <= 0 || tolerance > 50)
    throw invalid(
      'MESH_INVALID_TOLERANCE',
      `tolerance must be more than 0 and at most 50 percentage points, got ${String(tolerance)}`,
      'Use a tolerance such as 5 (± 5 points around the expected share).',
      'tolerance',
    )
  const confidence = o.confidence ?? SPLIT_DEFAULTS.confidence
  if (typeof confidence !== 'number' || !Number.isFinite(confidence) || confidence <= 0.5 || confidence >= 1)
    throw invalid(
      'MESH_INVALID_CONFIDENCE',
      `confidence must be strictly between 0.5 and 1, got ${String(confidence)}`,
      'Use a confidence such as 0.999 (a 0.1% false-alarm rate).',
      'confidence',
    )
  if (!isInt(o.maxRequests) || o.maxRequests < 1)
    throw invalid(
      'MESH_INVALID_BUDGET',
      `maxRequests (the request budget) must be an integer of at least 1, got ${String(o.maxRequests)}`,
      'Give a budget such as 5000 requests.',
      'maxRequests',
    )
  const minRequests = o.minRequests ?? SPLIT_DEFAULTS.minRequests
  if (!isInt(minRequests) || minRequests < 0 || minRequests > o.maxRequests)
    throw invalid(
      'MESH_INVALID_MIN_REQUESTS',
      `minRequests must be an integer between 0 and maxRequests (${o.maxRequests}), got ${String(minRequests)}`,
      'Lower minRequests or raise the request budget.',
      'minRequests',
    )
  const exactPassAfter = o.exactPassAfter ?? SPLIT_DEFAULTS.exactPassAfter
  if (!isInt(exactPassAfter) || exactPassAfter < 1)
    throw invalid(
      'MESH_INVALID_EXACT_PASS_AFTER',
      `exactPassAfter must be an integer of at least 1, got ${String(exactPassAfter)}`,
      'Use e.g. 200 responses for a 100/0 check.',
      'exactPassAfter',
    )
  const prior = o.prior
  if (prior !== undefined && !(Array.isArray(prior) && prior.length === 2 && prior.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0)))
    throw invalid('MESH_INVALID_PRIOR', `prior must be two positive numbers [a, b], got ${JSON.stringify(prior)}`, 'Leave the prior unset to use the default.', 'prior')
  return {expectedV2Share: e, tolerance, confidence, maxRequests: o.maxRequests, minRequests, exactPassAfter, ...(prior ? {prior: [prior[0], prior[1]] as [number, number]} : {})}
}

/**
 * Beta prior of the mixture: centred on the expected share with a standard deviation of half
 * the tolerance (tightest width near the point where a pass becomes possible; see
 * docs/statistics.md). Any prior fixed before the data keeps the guarantee.
 */
export function mixturePrior(expectedFraction: number, toleranceFraction: number): [number, number] {
  const m = Math.min(Math.max(expectedFraction, 0.005), 0.995)
  const sd = toleranceFraction / 2
  const k = Math.max(2, (m * (1 - m)) / (sd * sd) - 1)
  return [m * k, (1 - m) * k]
}

/**
 * ln of the mixture martingale for the null "share = p" after s successes and f failures:
 * ∫ Π q^x(1−q)^(1−x) dBeta(q; a, b) / Π p^x(1−p)^(1−x). Under the null it is a
 * non-negative martingale starting at 1, so by Ville's inequality it ever reaches 1/α with
 * probability ≤ α.
 */
export function logMixtureMartingale(s: number, f: number, p: number, prior: [number, number]): number {
  return martingaleAt(s, f, prior)(p)
}

// ln M_n(·) for fixed data: the Beta-function part does not depend on p, so compute it once.
function martingaleAt(s: number, f: number, prior: [number, number]): (p: number) => number {
  const [a, b] = prior
  const num = jStat.betaln(a + s, b + f) - jStat.betaln(a, b)
  return (p) => num - (s === 0 ? 0 : s * Math.log(p)) - (f === 0 ? 0 : f * Math.log(1 - p))
}

/**
 * Anytime-valid confidence sequence for a Bernoulli mean (fractions, not percent):
 * {p : M_n(p) < 1/α}. ln M_n is convex in p with its minimum ≤ 0 at s/n, so the set is an
 * interval found by bisection on each side.
 */
export function confidenceSequence(
  s: number,
  f: number,
  confidence: number,
  prior: [number, number] = [1, 1],
): [number, number] {
  const n = s + f
  if (n === 0) return [0, 1]
  const threshold = Math.log(1 / (1 - confidence))
  const logM = martingaleAt(s, f, prior)
  const outside = (p: number) => logM(p) >= threshold
  const hat = s / n
  const lo = s === 0 ? 0 : bisect(outside, 0, hat, true)
  const hi = f === 0 ? 1 : bisect(outside, hat, 1, false)
  return [lo, hi]
}

// Finds the boundary between "outside" and "inside" on [a, b]; `outsideAtA` tells which end is out.
function bisect(outside: (p: number) => boolean, a: number, b: number, outsideAtA: boolean): number {
  let lo = a
  let hi = b
  for (let i = 0; i < 40 && hi - lo > 1e-10; i++) {
    const mid = (lo + hi) / 2
    if (outside(mid) === outsideAtA) lo = mid
    else hi = mid
  }
  return (lo + hi) / 2
}

/** Wilson score interval (fractions) — a fixed-n interval, kept for comparison (ADR 0070). */
export function wilsonInterval(s: number, n: number, confidence: number): [number, number] {
  if (n === 0) return [0, 1]
  const z = jStat.normal.inv(1 - (1 - confidence) / 2, 0, 1)
  const phat = s / n
  const z2 = z * z
  const centre = (phat + z2 / (2 * n)) / (1 + z2 / n)
  const half = (z / (1 + z2 / n)) * Math.sqrt((phat * (1 - phat)) / n + z2 / (4 * n * n))
  return [Math.max(0, centre - half), Math.min(1, centre + half)]
}

const pct = (x: number) => `${(Math.round(x * 10) / 10).toString()}%`
const range = (r: [number, number]) => `${pct(r[0])}–${pct(r[1])}`
const confText = (c: number) => `${Math.round(c * 1e5) / 1e3}%`

/**
 * Incremental split test. Feed counts with observe()/add()/addOther(); every decision() is a
 * look. The first terminal verdict (pass, fail, inconclusive) is kept: later observations are
 * counted as `late` and do not change it.
 */
export class SplitTest {
  readonly options: Readonly<Resolved>
  readonly exact: boolean
  readonly prior: [number, number]
  private v1 = 0
  private v2 = 0
  private other = 0
  private late = 0
  private fixed: SplitDecision | undefined

  constructor(options: SplitTestOptions) {
    this.options = Object.freeze(validateSplitOptions(options))
    const e = this.options.expectedV2Share
    this.exact = e === 0 || e === 100
    this.prior = this.options.prior ?? (this.exact ? [1, 1] : mixturePrior(e / 100, this.options.tolerance / 100))
  }

  /** Add counts of v2, v1 and other (error) responses. */
  observe(v2Count: number, v1Count: number, otherCount = 0): this {
    for (const [name, v] of [
      ['v2Count', v2Count],
      ['v1Count', v1Count],
      ['otherCount', otherCount],
    ] as const)
      if (!isInt(v) || v < 0)
        throw invalid('MESH_INVALID_COUNT', `${name} must be a non-negative integer, got ${String(v)}`, 'Pass whole response counts.', name)
    if (this.fixed) {
      this.late += v2Count + v1Count + otherCount
      return this
    }
    this.v2 += v2Count
    this.v1 += v1Count
    this.other += otherCount
    return this
  }

  /** One response: true for v2, false for v1. */
  add(isV2: boolean): this {
    return isV2 ? this.observe(1, 0) : this.observe(0, 1)
  }

  /** Responses that are neither v1 nor v2. */
  addOther(count = 1): this {
    return this.observe(0, 0, count)
  }

  get counts(): {v1: number; v2: number; other: number; requests: number; late: number} {
    return {v1: this.v1, v2: this.v2, other: this.other, requests: this.v1 + this.v2 + this.other, late: this.late}
  }

  /** True once pass, fail or inconclusive has been reached. */
  get done(): boolean {
    return this.fixed !== undefined
  }

  /** Look at the data: pass, fail, inconclusive (budget used up) or continue. */
  decision(): SplitDecision {
    if (this.fixed) return {...this.fixed, late: this.late}
    const d = this.exact ? this.decideExact() : this.decideMixture()
    if (d.verdict !== 'continue') this.fixed = d
    return d
  }

  /**
   * Final answer when the caller stops for its own reason (time limit, aborted load):
   * a pending "continue" becomes inconclusive with the given reason.
   */
  finalize(why = 'the measurement stopped before a decision'): SplitDecision {
    const d = this.decision()
    if (d.verdict !== 'continue') return d
    this.fixed = {...d, verdict: 'inconclusive', reason: `${why}: ${d.reason}`}
    return this.fixed
  }

  private base(): Omit<SplitDecision, 'verdict' | 'reason'> {
    const {expectedV2Share: e, tolerance, confidence, maxRequests} = this.options
    const n = this.v1 + this.v2
    const cs = confidenceSequence(this.v2, this.v1, confidence, this.prior)
    const band: [number, number] = this.exact ? [e, e] : [Math.max(0, e - tolerance), Math.min(100, e + tolerance)]
    return {
      n,
      v1: this.v1,
      v2: this.v2,
      other: this.other,
      requests: n + this.other,
      observedShare: n === 0 ? null : (100 * this.v2) / n,
      interval: [100 * cs[0], 100 * cs[1]],
      expectedV2Share: e,
      tolerance: this.exact ? 0 : tolerance,
      band,
      confidence,
      alpha: 1 - confidence,
      maxRequests,
      exact: this.exact,
      method: {name: this.exact ? 'exact' : 'beta-binomial-mixture', prior: this.prior},
      late: this.late,
    }
  }

  private budgetUsed(): boolean {
    return this.v1 + this.v2 + this.other >= this.options.maxRequests
  }

  private otherNote(b: {other: number; requests: number}): string {
    return b.other > 0 ? ` (${b.other} of ${b.requests} responses were neither v1 nor v2)` : ''
  }

  private decideExact(): SplitDecision {
    const b = this.base()
    const wantV2 = this.options.expectedV2Share === 100
    const stray = wantV2 ? this.v1 : this.v2
    const want = wantV2 ? 'v2' : 'v1'
    if (stray > 0)
      return {...b, verdict: 'fail', reason: `expected every response from ${want}, but ${stray} of ${b.n} came from ${wantV2 ? 'v1' : 'v2'}`}
    if (b.n >= this.options.exactPassAfter && b.n >= this.options.minRequests)
      return {...b, verdict: 'pass', reason: `all ${b.n} responses came from ${want} as expected`}
    if (this.budgetUsed())
      return {
        ...b,
        verdict: 'inconclusive',
        reason: `request budget of ${this.options.maxRequests} used up after ${b.n} of the ${this.options.exactPassAfter} clean responses needed${this.otherNote(b)}`,
      }
    return {...b, verdict: 'continue', reason: `${b.n} of ${this.options.exactPassAfter} responses from ${want} so far, none stray`}
  }

  private decideMixture(): SplitDecision {
    const b = this.base()
    const {confidence, minRequests} = this.options
    const s = this.v2
    const f = this.v1
    const threshold = Math.log(1 / (1 - confidence))
    const e = b.expectedV2Share / 100
    const [bandLo, bandHi] = [b.band[0] / 100, b.band[1] / 100]
    const cl = confText(confidence)
    if (b.n > 0 && b.n >= minRequests) {
      // Decide from the martingale at three points rather than from the bisected endpoints.
      const logM = martingaleAt(s, f, this.prior)
      const excludes = (p: number) => logM(p) >= threshold
      if (excludes(e))
        return {...b, verdict: 'fail', reason: `expected ${pct(b.expectedV2Share)} v2 lies outside the ${cl} confidence sequence ${range(b.interval)} after ${b.n} responses`}
      const hat = s / b.n
      const loOut = bandLo <= 0 || excludes(bandLo)
      const hiOut = bandHi >= 1 || excludes(bandHi)
      const hatInBand = (bandLo <= 0 || hat > bandLo) && (bandHi >= 1 || hat < bandHi)
      if (hatInBand && loOut && hiOut)
        return {...b, verdict: 'pass', reason: `the ${cl} confidence sequence ${range(b.interval)} lies within ${range(b.band)} after ${b.n} responses`}
    }
    if (this.budgetUsed()) {
      const why =
        b.n < minRequests
          ? `only ${b.n} of the ${minRequests} v1/v2 responses required`
          : `the ${cl} interval ${range(b.interval)} is not within ${range(b.band)} and still contains ${pct(b.expectedV2Share)}`
      return {
        ...b,
        verdict: 'inconclusive',
        reason: `request budget of ${this.options.maxRequests} used up before a decision: ${why}${this.otherNote(b)}`,
      }
    }
    return {...b, verdict: 'continue', reason: `${b.n} responses, ${cl} interval ${range(b.interval)}`}
  }
}
