// What outlier detection should do to an endpoint that answers 5xx to everything, and whether
// what the proxy's counters and the answering instances show matches it (DR-6..DR-8). Pure:
// samples and responses come in, a verdict with reasons goes out.
import type {OutlierDetection} from '../mesh/traffic.js'
import {parseDurationMs} from '../mesh/rules.js'

/** Envoy's defaults where the DestinationRule leaves a field unset (DR-6). */
export const OUTLIER_DEFAULTS = {consecutive5xx: 5, intervalMs: 10_000, baseEjectionMs: 30_000, maxEjectionPercent: 10, maxEjectionMs: 300_000} as const

export interface OutlierSettings {
  consecutive5xx: number
  /** 0 = off */
  consecutiveGateway: number
  intervalMs: number
  baseEjectionMs: number
  maxEjectionPercent: number
  /** Envoy's max_ejection_time: max(300 s, base) */
  maxEjectionMs: number
}

const dur = (v: unknown, dflt: number): number => {
  if (typeof v !== 'string' || v.trim() === '') return dflt
  const ms = parseDurationMs(v.trim())
  return ms === undefined || ms <= 0 ? dflt : ms
}

export function outlierSettings(od: OutlierDetection | undefined): OutlierSettings {
  const c5 = od?.consecutive5xxErrors
  const base = dur(od?.baseEjectionTime, OUTLIER_DEFAULTS.baseEjectionMs)
  return {
    consecutive5xx: c5 === undefined || c5 === null ? OUTLIER_DEFAULTS.consecutive5xx : Number(c5),
    consecutiveGateway: Number(od?.consecutiveGatewayErrors ?? 0),
    intervalMs: dur(od?.interval, OUTLIER_DEFAULTS.intervalMs),
    baseEjectionMs: base,
    maxEjectionPercent: od?.maxEjectionPercent || OUTLIER_DEFAULTS.maxEjectionPercent,
    maxEjectionMs: Math.max(OUTLIER_DEFAULTS.maxEjectionMs, base),
  }
}

export interface EjectionPrediction {
  /** 5xx answers that trigger the ejection */
  threshold: number
  /** requests already on their way when it happens (one per connection at most) */
  inFlightSlack: number
  /** the most requests the faulty endpoint may get before it is ejected: threshold + slack */
  maxRequestsBeforeEjection: number
  /** ejection-time multiplier (1 for a first ejection) */
  multiplier: number
  /** how long it stays out: base × multiplier (capped), returned on the next interval tick */
  ejectedForMs: [number, number]
}

/**
 * An always-5xx endpoint gets `threshold` requests, then is ejected inline; requests already
 * dispatched over other connections may still reach it (slack = connections − 1, stated as
 * `connections` to stay on the safe side). It returns on the first interval tick at or after
 * base × multiplier, so within [base·m, base·m + interval].
 */
export function predictEjection(s: OutlierSettings, connections: number, multiplier = 1): EjectionPrediction {
  const threshold = s.consecutive5xx > 0 ? s.consecutive5xx : s.consecutiveGateway
  const m = Math.max(1, Math.round(multiplier))
  const out = Math.min(s.baseEjectionMs * m, s.maxEjectionMs)
  return {
    threshold,
    inFlightSlack: Math.max(0, connections),
    maxRequestsBeforeEjection: threshold + Math.max(0, connections),
    multiplier: m,
    ejectedForMs: [out, out + s.intervalMs],
  }
}

/** One poll of the proxy's state for the faulty host. */
export interface HostSample {
  /** epoch ms of the poll */
  t: number
  /** requests the proxy sent to the host so far (counted when the host is picked) */
  rqTotal: number
  ejected: boolean
  /** times ejected so far (embedded data plane) */
  ejections?: number
  /** epoch ms of the last ejection (embedded data plane) */
  lastEjectedAt?: number
  /** epoch ms the ejection ends at the earliest (embedded data plane) */
  ejectedUntil?: number
  /** the host's consecutive-5xx count */
  consecutive5xx?: number
}

/** One response seen by the load generator. */
export interface ResponseRecord {
  /** epoch ms the response arrived */
  t: number
  status: number
  /** an answer from the faulty endpoint (its 5xx), as opposed to a healthy instance or a proxy-local reply */
  faulty: boolean
  /** helloworld instance (pod name) for healthy answers */
  instance?: string
}

export type EjectionVerdict = 'pass' | 'fail' | 'inconclusive'

export interface EjectionPeriod {
  /** epoch ms (from the proxy when it says, else the poll that first saw it) */
  ejectedAt: number
  /** requests the proxy sent to the host before this ejection (since the previous return) */
  requestsBefore: number
  /** requests the proxy sent to it while ejected: must be 0 */
  requestsWhileEjected: number
  /** observed bounds of how long it stayed out, from the polls around its return; absent if not seen */
  ejectedForMs?: [number, number]
  /** the proxy's own ejectedUntil − lastEjectedAt */
  plannedMs?: number
}

export interface CounterAnalysis {
  verdict: EjectionVerdict
  reasons: string[]
  ejections: EjectionPeriod[]
  /** the host got requests again after returning */
  trafficAfterReturn: boolean
  requestsTotal: number
}

const fmtS = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`

/**
 * Check the proxy's per-host samples against the prediction. `pollMs` is the sampling period:
 * observed times are only known to within one poll, so windows are widened by it.
 */
export function analyzeCounters(samples: readonly HostSample[], s: OutlierSettings, connections: number, pollMs: number): CounterAnalysis {
  const reasons: string[] = []
  const fails: string[] = []
  const ejections: EjectionPeriod[] = []
  if (samples.length < 2) return {verdict: 'inconclusive', reasons: ['fewer than two samples of the proxy state'], ejections, trafficAfterReturn: false, requestsTotal: 0}
  const first = samples[0]!
  const requestsTotal = samples[samples.length - 1]!.rqTotal - first.rqTotal
  let segmentStartRq = first.rqTotal
  // a host already part-way to the threshold needs fewer errors
  let carried = first.consecutive5xx ?? 0
  let trafficAfterReturn = false
  let i = 1
  if (first.ejected) return {verdict: 'inconclusive', reasons: ['the faulty endpoint was already ejected when the load started'], ejections, trafficAfterReturn, requestsTotal}
  while (i < samples.length) {
    // find the next ejection
    while (i < samples.length && !samples[i]!.ejected) i++
    if (i >= samples.length) break
    const e = samples[i]!
    const prev = samples[i - 1]!
    const multiplier = e.ejectedUntil !== undefined && e.lastEjectedAt !== undefined ? (e.ejectedUntil - e.lastEjectedAt) / s.baseEjectionMs : ejections.length + 1
    const p = predictEjection(s, connections, multiplier)
    const requestsBefore = e.rqTotal - segmentStartRq
    const need = Math.max(1, p.threshold - carried)
    const ejectedAt = e.lastEjectedAt ?? e.t
    const n = ejections.length + 1
    if (requestsBefore > p.maxRequestsBeforeEjection - carried) {
      fails.push(`ejection ${n}: the faulty endpoint got ${requestsBefore} requests before it was ejected; predicted at most ${p.maxRequestsBeforeEjection - carried} (consecutive5xxErrors ${p.threshold} + ${p.inFlightSlack} in flight)`)
    } else if (requestsBefore < need) {
      fails.push(`ejection ${n}: ejected after ${requestsBefore} requests, fewer than the ${need} consecutive errors that trigger it`)
    } else {
      reasons.push(`ejection ${n}: ejected after ${requestsBefore} requests (predicted ${need}–${p.maxRequestsBeforeEjection - carried})`)
    }
    carried = 0
    // the ejected stretch
    let j = i
    while (j + 1 < samples.length && samples[j + 1]!.ejected && (samples[j + 1]!.lastEjectedAt ?? ejectedAt) === ejectedAt) j++
    const whileEjected = samples[j]!.rqTotal - e.rqTotal
    const period: EjectionPeriod = {ejectedAt, requestsBefore, requestsWhileEjected: whileEjected, ...(e.ejectedUntil !== undefined && e.lastEjectedAt !== undefined ? {plannedMs: e.ejectedUntil - e.lastEjectedAt} : {})}
    if (whileEjected > 0) fails.push(`ejection ${n}: the proxy sent ${whileEjected} requests to the endpoint while it was ejected`)
    const ejectedLo = e.lastEjectedAt ?? prev.t
    const ejectedHi = e.lastEjectedAt ?? e.t
    if (j + 1 < samples.length) {
      const back = samples[j + 1]!
      // returned somewhere between the last ejected poll and this one
      const lo = samples[j]!.t - ejectedHi
      const hi = back.t - ejectedLo
      period.ejectedForMs = [Math.max(0, lo), hi]
      const [pLo, pHi] = p.ejectedForMs
      if (hi + pollMs < pLo) fails.push(`ejection ${n}: back after at most ${fmtS(hi)}, before baseEjectionTime × ${p.multiplier} = ${fmtS(pLo)}`)
      else if (lo - pollMs > pHi) fails.push(`ejection ${n}: still ejected after ${fmtS(lo)}, predicted back within ${fmtS(pHi)} (base × ${p.multiplier} rounded up to the ${fmtS(s.intervalMs)} interval)`)
      else reasons.push(`ejection ${n}: out for ${fmtS(period.ejectedForMs[0])}–${fmtS(period.ejectedForMs[1])} (predicted ${fmtS(pLo)}–${fmtS(pHi)}), no requests meanwhile`)
      // nothing reached it while ejected, so this is the count at its return
      const atReturn = samples[j]!.rqTotal
      segmentStartRq = atReturn
      // requests after the return show it is back in the pool
      if (samples.slice(j + 1).some((x) => x.rqTotal > atReturn)) trafficAfterReturn = true
      i = j + 1
    } else {
      const lasted = samples[j]!.t - ejectedHi
      const [, pHi] = p.ejectedForMs
      if (lasted - pollMs > pHi) fails.push(`ejection ${n}: still ejected after ${fmtS(lasted)}, predicted back within ${fmtS(pHi)}`)
      else reasons.push(`ejection ${n}: no requests during the ${fmtS(Math.max(0, lasted))} observed (its return was not observed)`)
      ejections.push(period)
      break
    }
    ejections.push(period)
  }
  if (fails.length) return {verdict: 'fail', reasons: [...fails, ...reasons], ejections, trafficAfterReturn, requestsTotal}
  if (ejections.length === 0) {
    const p = predictEjection(s, connections)
    if (requestsTotal >= p.maxRequestsBeforeEjection) {
      return {verdict: 'fail', reasons: [`the faulty endpoint got ${requestsTotal} requests (all 5xx) and was never ejected; predicted ejection after ${p.threshold}`], ejections, trafficAfterReturn, requestsTotal}
    }
    return {verdict: 'inconclusive', reasons: [`the faulty endpoint got only ${requestsTotal} requests, fewer than the ${p.maxRequestsBeforeEjection} that must eject it`], ejections, trafficAfterReturn, requestsTotal}
  }
  const full = ejections.some((e) => e.ejectedForMs !== undefined)
  return {verdict: full ? 'pass' : 'inconclusive', reasons: full ? reasons : [...reasons, 'the endpoint was not seen returning; raise --timeout'], ejections, trafficAfterReturn, requestsTotal}
}

export interface ResponseAnalysis {
  verdict: EjectionVerdict
  reasons: string[]
  /** faulty answers per burst (a burst ends when the endpoint goes quiet for longer than `gapMs`) */
  bursts: Array<{count: number; from: number; to: number}>
  /** quiet stretches between bursts, ms */
  gapsMs: number[]
  /** answers per healthy instance */
  instances: Record<string, number>
  faulty: number
}

/**
 * The same story from the answers alone: the faulty endpoint answers in bursts of at most
 * threshold + slack, separated by quiet stretches of about base × m (+ one interval), while the
 * healthy instances keep answering. Works without access to the proxy.
 */
export function analyzeResponses(responses: readonly ResponseRecord[], s: OutlierSettings, connections: number): ResponseAnalysis {
  const instances: Record<string, number> = {}
  for (const r of responses) if (r.instance) instances[r.instance] = (instances[r.instance] ?? 0) + 1
  const faulty = responses.filter((r) => r.faulty).sort((a, b) => a.t - b.t)
  const healthy = responses.filter((r) => !r.faulty && r.instance).map((r) => r.t)
  const gapMs = Math.max(s.intervalMs, Math.min(1000, s.baseEjectionMs / 2))
  const bursts: ResponseAnalysis['bursts'] = []
  for (const r of faulty) {
    const last = bursts[bursts.length - 1]
    if (last && r.t - last.to <= gapMs) {
      last.count++
      last.to = r.t
    } else bursts.push({count: 1, from: r.t, to: r.t})
  }
  const gapsMs = bursts.slice(1).map((b, k) => b.from - bursts[k]!.to)
  const reasons: string[] = []
  const fails: string[] = []
  if (faulty.length === 0) return {verdict: 'inconclusive', reasons: ['no answer came from the faulty endpoint'], bursts, gapsMs, instances, faulty: 0}
  bursts.forEach((b, k) => {
    const p = predictEjection(s, connections, k + 1)
    if (b.count > p.maxRequestsBeforeEjection) fails.push(`burst ${k + 1}: ${b.count} errors from the faulty endpoint in a row, predicted at most ${p.maxRequestsBeforeEjection}`)
  })
  const lastT = responses.length ? Math.max(...responses.map((r) => r.t)) : 0
  const last = bursts[bursts.length - 1]!
  const quietAfterLast = lastT - last.to
  const healthyDuringQuiet = (from: number, to: number) => healthy.some((t) => t > from && t < to)
  gapsMs.forEach((g, k) => {
    const p = predictEjection(s, connections, k + 1)
    const [lo, hi] = p.ejectedForMs
    // the first answer after the return comes a little after it; allow one second of jitter
    if (g + 1000 < lo) fails.push(`the faulty endpoint answered again after ${fmtS(g)}, before baseEjectionTime × ${p.multiplier} = ${fmtS(lo)}`)
    else if (g - 1000 > hi) reasons.push(`quiet for ${fmtS(g)}, longer than the predicted ${fmtS(hi)} (the load balancer may simply not have picked it)`)
    else reasons.push(`quiet for ${fmtS(g)} after burst ${k + 1} (predicted ${fmtS(lo)}–${fmtS(hi)})`)
    if (!healthyDuringQuiet(bursts[k]!.to, bursts[k + 1]!.from)) fails.push(`no healthy instance answered while the faulty endpoint was quiet: traffic stopped, not an ejection`)
  })
  const first = predictEjection(s, connections, 1)
  if (fails.length) return {verdict: 'fail', reasons: [...fails, ...reasons], bursts, gapsMs, instances, faulty: faulty.length}
  if (gapsMs.length === 0) {
    // one burst: ejected and never back within the load, or never ejected
    if (quietAfterLast >= Math.min(first.ejectedForMs[0], 2000) && healthyDuringQuiet(last.to, lastT)) {
      reasons.push(`${last.count} errors, then quiet for ${fmtS(quietAfterLast)} while healthy instances answered`)
      return {verdict: quietAfterLast + 1000 >= first.ejectedForMs[0] ? 'pass' : 'inconclusive', reasons, bursts, gapsMs, instances, faulty: faulty.length}
    }
    return {verdict: 'inconclusive', reasons: [...reasons, 'the answers show no quiet stretch yet'], bursts, gapsMs, instances, faulty: faulty.length}
  }
  return {verdict: 'pass', reasons, bursts, gapsMs, instances, faulty: faulty.length}
}
