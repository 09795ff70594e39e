// The ejection window math against fake proxy counters and fake answer timelines.
import {describe, expect, it} from 'vitest'
import {analyzeCounters, analyzeResponses, outlierSettings, predictEjection, type HostSample, type ResponseRecord} from '../../../src/verify/ejection-math.js'
import {classifyEjectionResponse, combineVerdicts} from '../../../src/verify/ejection.js'
import {LAB_OUTLIER_DETECTION} from '../../../src/mesh/traffic.js'

const lab = outlierSettings(LAB_OUTLIER_DETECTION) // 3 errors, 1 s interval, 10 s base, 50%
const T0 = 1_000_000

/** A poll every 100 ms; `at(ms)` gives the state at that time. */
function timeline(until: number, at: (ms: number) => Omit<HostSample, 't'>): HostSample[] {
  const out: HostSample[] = []
  for (let ms = 0; ms <= until; ms += 100) out.push({t: T0 + ms, ...at(ms)})
  return out
}

/** A faulty host ejected at 300 ms after `before` requests, back at 300 + outMs, then `after` more requests. */
function ejectionStory(opts: {before: number; outMs: number; whileOut?: number; until?: number; after?: number}): HostSample[] {
  const ejectAt = 300
  const backAt = ejectAt + opts.outMs
  return timeline(opts.until ?? backAt + 1000, (ms) => {
    if (ms < ejectAt) return {rqTotal: Math.floor((opts.before * ms) / ejectAt), ejected: false}
    if (ms < backAt) return {rqTotal: opts.before + (opts.whileOut && ms > ejectAt + 500 ? opts.whileOut : 0), ejected: true, lastEjectedAt: T0 + ejectAt, ejectedUntil: T0 + ejectAt + 10_000}
    return {rqTotal: opts.before + (opts.whileOut ?? 0) + (ms > backAt + 200 ? (opts.after ?? 2) : 0), ejected: false}
  })
}

describe('outlier settings and the prediction', () => {
  it('fills Envoy defaults for unset fields (DR-6) and reads the lab values', () => {
    expect(outlierSettings(undefined)).toEqual({consecutive5xx: 5, consecutiveGateway: 0, intervalMs: 10_000, baseEjectionMs: 30_000, maxEjectionPercent: 10, maxEjectionMs: 300_000})
    expect(lab).toMatchObject({consecutive5xx: 3, intervalMs: 1000, baseEjectionMs: 10_000, maxEjectionPercent: 50})
    expect(outlierSettings({baseEjectionTime: '3m', interval: '1s', consecutive5xxErrors: 1}).maxEjectionMs).toBe(300_000)
    expect(outlierSettings({baseEjectionTime: '10m'}).maxEjectionMs).toBe(600_000)
  })

  it('bounds the errors by threshold + one in flight per connection, and the time out by base × m + interval', () => {
    expect(predictEjection(lab, 4)).toEqual({threshold: 3, inFlightSlack: 4, maxRequestsBeforeEjection: 7, multiplier: 1, ejectedForMs: [10_000, 11_000]})
    // the second ejection lasts twice as long
    expect(predictEjection(lab, 1, 2).ejectedForMs).toEqual([20_000, 21_000])
    // capped at max(300 s, base)
    expect(predictEjection(outlierSettings({baseEjectionTime: '200s', interval: '1s'}), 1, 3).ejectedForMs).toEqual([300_000, 301_000])
  })
})

describe('analyzeCounters', () => {
  it('passes an ejection after 3–7 requests, none while out, back after 10–11 s', () => {
    const a = analyzeCounters(ejectionStory({before: 4, outMs: 10_400}), lab, 4, 100)
    expect(a.verdict).toBe('pass')
    expect(a.ejections).toHaveLength(1)
    expect(a.ejections[0]).toMatchObject({requestsBefore: 4, requestsWhileEjected: 0, plannedMs: 10_000})
    expect(a.ejections[0]!.ejectedForMs![0]).toBeGreaterThanOrEqual(10_000)
    expect(a.ejections[0]!.ejectedForMs![1]).toBeLessThanOrEqual(11_000)
    expect(a.trafficAfterReturn).toBe(true)
  })

  it('fails when the endpoint got more requests than the bound before its ejection', () => {
    const a = analyzeCounters(ejectionStory({before: 12, outMs: 10_400}), lab, 4, 100)
    expect(a.verdict).toBe('fail')
    expect(a.reasons[0]).toMatch(/got 12 requests before it was ejected; predicted at most 7/)
  })

  it('fails when the proxy sent requests to the endpoint while it was ejected', () => {
    const a = analyzeCounters(ejectionStory({before: 3, outMs: 10_400, whileOut: 5}), lab, 4, 100)
    expect(a.verdict).toBe('fail')
    expect(a.reasons.join('\n')).toMatch(/sent 5 requests to the endpoint while it was ejected/)
  })

  it('fails a return well before baseEjectionTime and one well after base + interval', () => {
    expect(analyzeCounters(ejectionStory({before: 3, outMs: 4000}), lab, 4, 100).reasons[0]).toMatch(/back after at most .* before baseEjectionTime/)
    expect(analyzeCounters(ejectionStory({before: 3, outMs: 14_000}), lab, 4, 100).reasons[0]).toMatch(/still ejected after/)
  })

  it('fails an endpoint that keeps failing without ever being ejected; inconclusive when it got too little traffic', () => {
    const never = timeline(3000, (ms) => ({rqTotal: Math.floor(ms / 50), ejected: false}))
    expect(analyzeCounters(never, lab, 4, 100)).toMatchObject({verdict: 'fail'})
    const quiet = timeline(3000, (ms) => ({rqTotal: ms > 1000 ? 2 : 0, ejected: false}))
    expect(analyzeCounters(quiet, lab, 4, 100)).toMatchObject({verdict: 'inconclusive'})
  })

  it('is inconclusive when the load stopped before the return, and when it started ejected', () => {
    const cut = ejectionStory({before: 3, outMs: 10_400, until: 5000})
    const a = analyzeCounters(cut, lab, 4, 100)
    expect(a.verdict).toBe('inconclusive')
    expect(a.reasons.join('\n')).toMatch(/return was not observed/)
    const started = timeline(1000, () => ({rqTotal: 3, ejected: true}))
    expect(analyzeCounters(started, lab, 4, 100).verdict).toBe('inconclusive')
  })

  it('counts a second ejection from the return on, with the doubled time', () => {
    const s = ejectionStory({before: 3, outMs: 10_400, until: 12_000})
    // re-ejected 500 ms after the return, after 3 more requests
    const backAt = 300 + 10_400
    for (const x of s) {
      const ms = x.t - T0
      if (ms >= backAt + 500) Object.assign(x, {rqTotal: 6, ejected: true, lastEjectedAt: T0 + backAt + 500, ejectedUntil: T0 + backAt + 500 + 20_000})
    }
    const a = analyzeCounters(s, lab, 4, 100)
    expect(a.ejections.map((e) => e.requestsBefore)).toEqual([3, 3])
    expect(a.ejections[1]!.plannedMs).toBe(20_000)
    expect(a.verdict).toBe('pass')
  })
})

describe('analyzeResponses', () => {
  /** healthy answers every 20 ms; faulty ones at the given times */
  function answers(faultyAt: number[], until: number): ResponseRecord[] {
    const out: ResponseRecord[] = []
    for (let t = 0; t <= until; t += 20) out.push({t: T0 + t, status: 200, faulty: false, instance: 'hello-v1-a'})
    for (const t of faultyAt) out.push({t: T0 + t, status: 503, faulty: true})
    return out.sort((a, b) => a.t - b.t)
  }

  it('reads bursts of at most threshold + slack separated by base-long quiet stretches as ejections', () => {
    const r = analyzeResponses(answers([10, 30, 50, 10_600, 10_620, 10_640], 11_000), lab, 4)
    expect(r.bursts.map((b) => b.count)).toEqual([3, 3])
    expect(r.gapsMs[0]).toBeGreaterThan(10_000)
    expect(r.verdict).toBe('pass')
    expect(r.instances).toEqual({'hello-v1-a': 551})
  })

  it('fails a burst longer than the bound and an endpoint back too early', () => {
    const long = analyzeResponses(answers(Array.from({length: 20}, (_, i) => i * 30), 3000), lab, 4)
    expect(long.verdict).toBe('fail')
    expect(long.reasons[0]).toMatch(/20 errors from the faulty endpoint in a row, predicted at most 7/)
    const early = analyzeResponses(answers([10, 30, 50, 3000, 3020, 3040], 4000), lab, 4)
    expect(early.verdict).toBe('fail')
    expect(early.reasons[0]).toMatch(/answered again after .* before baseEjectionTime/)
  })

  it('fails a quiet stretch in which nobody answered (the traffic stopped, nothing was ejected)', () => {
    const rs = answers([10, 30, 50, 10_600], 11_000).filter((r) => r.faulty || r.t - T0 < 50 || r.t - T0 > 10_700)
    const a = analyzeResponses(rs, lab, 4)
    expect(a.verdict).toBe('fail')
    expect(a.reasons.join('\n')).toMatch(/no healthy instance answered/)
  })

  it('is inconclusive without any faulty answer or before the quiet stretch is long enough', () => {
    expect(analyzeResponses(answers([], 2000), lab, 4).verdict).toBe('inconclusive')
    expect(analyzeResponses(answers([10, 30, 50], 1500), lab, 4).verdict).toBe('inconclusive')
  })
})

describe('answer classification and the combined verdict', () => {
  it('tells the faulty replica\'s own 503 from a proxy-made one and reads the instance', () => {
    expect(classifyEjectionResponse(503, '', 5)).toEqual({t: 5, status: 503, faulty: true})
    expect(classifyEjectionResponse(503, 'no healthy upstream', 5).faulty).toBe(false)
    expect(classifyEjectionResponse(503, 'upstream connect error or disconnect/reset before headers. reset reason: overflow', 5).faulty).toBe(false)
    expect(classifyEjectionResponse(200, 'Hello version: v1, instance: hello-v1-7d9-abc\n', 5)).toEqual({t: 5, status: 200, faulty: false, instance: 'hello-v1-7d9-abc'})
  })

  it('fails when either source contradicts the prediction; counters decide otherwise', () => {
    const resp = (verdict: 'pass' | 'fail' | 'inconclusive') => ({verdict, reasons: [], bursts: [], gapsMs: [], instances: {}, faulty: 0})
    const cnt = (verdict: 'pass' | 'fail' | 'inconclusive') => ({verdict, reasons: [], ejections: [], trafficAfterReturn: false, requestsTotal: 0})
    expect(combineVerdicts(cnt('pass'), resp('fail'))).toBe('fail')
    expect(combineVerdicts(cnt('pass'), resp('inconclusive'))).toBe('pass')
    expect(combineVerdicts(cnt('inconclusive'), resp('pass'))).toBe('inconclusive')
    expect(combineVerdicts(undefined, resp('pass'))).toBe('pass')
  })
})
