import {describe, expect, it} from 'vitest'
import {MeshError} from '../../../src/lib/errors.js'
import {SplitTest, confidenceSequence, wilsonInterval, type SplitTestOptions} from '../../../src/checks/stats.js'

const split = (o: Partial<SplitTestOptions> = {}) => new SplitTest({expectedV2Share: 10, maxRequests: 20_000, ...o})

function codeOf(fn: () => unknown): {code: string; exit: number; message: string} {
  try {
    fn()
  } catch (e) {
    if (e instanceof MeshError) return {code: e.code, exit: e.exit, message: e.message}
    throw e
  }
  throw new Error('expected a MeshError')
}

describe('confidence sequence', () => {
  it('shrinks as responses accumulate and always contains the observed share', () => {
    const widths: number[] = []
    for (const n of [100, 1000, 10_000]) {
      const s = n / 10
      const [lo, hi] = confidenceSequence(s, n - s, 0.999, [1, 1])
      expect(lo).toBeLessThan(0.1)
      expect(hi).toBeGreaterThan(0.1)
      expect(lo).toBeGreaterThanOrEqual(0)
      expect(hi).toBeLessThanOrEqual(1)
      widths.push(hi - lo)
    }
    expect(widths[1]).toBeLessThan(widths[0])
    expect(widths[2]).toBeLessThan(widths[1])
  })

  it('is wider than a fixed-n Wilson interval for the same data: the price of looking at every batch', () => {
    const [clo, chi] = confidenceSequence(100, 900, 0.999)
    const [wlo, whi] = wilsonInterval(100, 1000, 0.999)
    expect(chi - clo).toBeGreaterThan(whi - wlo)
    expect(clo).toBeLessThan(wlo)
    expect(chi).toBeGreaterThan(whi)
  })

  it('starts at 0 when no v2 response has been seen and ends at 1 when only v2 has', () => {
    expect(confidenceSequence(0, 200, 0.999)[0]).toBe(0)
    expect(confidenceSequence(0, 200, 0.999)[1]).toBeLessThan(0.1)
    expect(confidenceSequence(200, 0, 0.999)[1]).toBe(1)
    expect(confidenceSequence(0, 0, 0.999)).toEqual([0, 1])
  })
})

describe('SplitTest decisions', () => {
  it('passes a clear 90/10 with the interval inside the band', () => {
    const d = split().observe(100, 900).decision()
    expect(d.verdict).toBe('pass')
    expect(d.observedShare).toBeCloseTo(10)
    expect(d.interval[0]).toBeGreaterThanOrEqual(5)
    expect(d.interval[1]).toBeLessThanOrEqual(15)
    expect(d.band).toEqual([5, 15])
    expect(d.reason).toMatch(/lies within 5%–15%/)
  })

  it('fails when the observed split is clearly off, with the expected share outside the interval', () => {
    const d = split().observe(60, 240).decision() // 20% v2 after 300 responses
    expect(d.verdict).toBe('fail')
    expect(d.interval[0]).toBeGreaterThan(10)
    expect(d.reason).toMatch(/expected 10% v2 lies outside/)
  })

  it('keeps going while the interval is still wide', () => {
    const d = split().observe(5, 45).decision()
    expect(d.verdict).toBe('continue')
    expect(d.interval[1] - d.interval[0]).toBeGreaterThan(10)
  })

  it('is inconclusive when the budget runs out before a decision', () => {
    const t = split({maxRequests: 200})
    expect(t.observe(10, 90).decision().verdict).toBe('continue')
    const d = t.observe(10, 90).decision()
    expect(d.verdict).toBe('inconclusive')
    expect(d.reason).toMatch(/request budget of 200 used up/)
  })

  it('keeps errors out of the share but counts them against the budget', () => {
    const d = split({maxRequests: 1500}).observe(100, 900, 500).decision()
    expect(d.observedShare).toBeCloseTo(10)
    expect(d.n).toBe(1000)
    expect(d.other).toBe(500)
    expect(d.requests).toBe(1500)
    const onlyErrors = split({maxRequests: 100}).observe(0, 0, 100).decision()
    expect(onlyErrors.verdict).toBe('inconclusive')
    expect(onlyErrors.observedShare).toBeNull()
    expect(onlyErrors.reason).toMatch(/100 of 100 responses were neither v1 nor v2/)
  })

  it('accepts single responses through add()', () => {
    const t = split()
    for (let i = 0; i < 1000; i++) t.add(i % 10 === 0)
    const d = t.decision()
    expect(d.v2).toBe(100)
    expect(d.v1).toBe(900)
    expect(d.verdict).toBe('pass')
  })

  it('keeps the first verdict: later responses are counted as late', () => {
    const t = split()
    expect(t.observe(100, 900).decision().verdict).toBe('pass')
    const d = t.observe(1000, 0).decision()
    expect(d.verdict).toBe('pass')
    expect(d.late).toBe(1000)
    expect(d.v2).toBe(100)
  })

  it('does not decide before minRequests', () => {
    const t = split({minRequests: 2000})
    expect(t.observe(60, 240).decision().verdict).toBe('continue')
    expect(t.observe(340, 1360).decision().verdict).toBe('fail')
  })

  it('finalize() turns a pending test into inconclusive with the reason given', () => {
    const d = split().observe(5, 45).finalize('time limit reached')
    expect(d.verdict).toBe('inconclusive')
    expect(d.reason).toMatch(/^time limit reached: /)
  })

  it('a wider tolerance passes sooner than a narrow one', () => {
    expect(split({tolerance: 10}).observe(30, 270).decision().verdict).toBe('pass')
    expect(split({tolerance: 2}).observe(30, 270).decision().verdict).toBe('continue')
  })
})

describe('exact checks (100/0 and 0/100)', () => {
  it('0% v2: one stray v2 response fails at once', () => {
    const t = split({expectedV2Share: 0})
    expect(t.observe(0, 150).decision().verdict).toBe('continue')
    const d = t.add(true).decision()
    expect(d.verdict).toBe('fail')
    expect(d.exact).toBe(true)
    expect(d.reason).toMatch(/1 of 151 came from v2/)
  })

  it('0% v2: passes after 200 clean responses by default', () => {
    const t = split({expectedV2Share: 0})
    expect(t.observe(0, 199).decision().verdict).toBe('continue')
    const d = t.add(false).decision()
    expect(d.verdict).toBe('pass')
    expect(d.interval[0]).toBe(0)
    expect(d.interval[1]).toBeLessThan(10)
  })

  it('100% v2: one v1 response fails; exactPassAfter is configurable', () => {
    expect(split({expectedV2Share: 100}).observe(499, 1).decision().verdict).toBe('fail')
    const t = split({expectedV2Share: 100, exactPassAfter: 50})
    expect(t.observe(50, 0).decision().verdict).toBe('pass')
  })

  it('errors do not count as strays, and a budget below exactPassAfter is inconclusive', () => {
    const d = split({expectedV2Share: 100, maxRequests: 100}).observe(90, 0, 10).decision()
    expect(d.verdict).toBe('inconclusive')
  })
})

describe('input validation', () => {
  it.each([0, -1, 50.5, Number.NaN])('tolerance %s → MESH_INVALID_TOLERANCE (exit 65)', (tolerance) => {
    const e = codeOf(() => split({tolerance}))
    expect(e.code).toBe('MESH_INVALID_TOLERANCE')
    expect(e.exit).toBe(65)
    expect(e.message).toContain(String(tolerance))
  })

  it('accepts tolerance 50', () => {
    expect(split({tolerance: 50}).options.tolerance).toBe(50)
  })

  it.each([2, 1, 0.5, 0, Number.NaN])('confidence %s → MESH_INVALID_CONFIDENCE', (confidence) => {
    const e = codeOf(() => split({confidence}))
    expect(e.code).toBe('MESH_INVALID_CONFIDENCE')
    expect(e.exit).toBe(65)
  })

  it.each([0, -5, 1.5])('budget %s → MESH_INVALID_BUDGET', (maxRequests) => {
    expect(codeOf(() => split({maxRequests})).code).toBe('MESH_INVALID_BUDGET')
  })

  it.each([-1, 101, Number.POSITIVE_INFINITY])('expected share %s → MESH_INVALID_EXPECTED_SHARE', (expectedV2Share) => {
    expect(codeOf(() => split({expectedV2Share})).code).toBe('MESH_INVALID_EXPECTED_SHARE')
  })

  it('rejects minRequests above the budget and negative counts', () => {
    expect(codeOf(() => split({maxRequests: 10, minRequests: 20})).code).toBe('MESH_INVALID_MIN_REQUESTS')
    expect(codeOf(() => split().observe(-1, 3)).code).toBe('MESH_INVALID_COUNT')
    expect(codeOf(() => split().observe(1.5, 3)).code).toBe('MESH_INVALID_COUNT')
  })
})
