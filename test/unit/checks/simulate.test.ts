import {describe, expect, it} from 'vitest'
import jstatModule from 'jstat'
import {binomial, clopperPearson, createRng, simulateSplit} from '../../../src/checks/simulate.js'

const jStat = jstatModule.jStat ?? jstatModule

/** Smallest k with P(Binomial(n, p) > k) < tail: how many false fails α can explain. */
function binomialUpperQuantile(n: number, p: number, tail: number): number {
  let k = 0
  while (1 - jStat.binomial.cdf(k, n, p) >= tail) k++
  return k
}

describe('seeded generator and binomial draws', () => {
  it('is reproducible from the seed', () => {
    const a = createRng(7)
    const b = createRng(7)
    const c = createRng(8)
    const xs = Array.from({length: 5}, () => a())
    expect(Array.from({length: 5}, () => b())).toEqual(xs)
    expect(Array.from({length: 5}, () => c())).not.toEqual(xs)
    for (const x of xs) expect(x >= 0 && x < 1).toBe(true)
  })

  it('draws binomials with the right mean and variance, small and chunked', () => {
    const rng = createRng(11)
    for (const [n, p] of [
      [50, 0.1],
      [50, 0.9],
      [5000, 0.5],
    ] as const) {
      const draws = Array.from({length: 4000}, () => binomial(n, p, rng))
      const mean = draws.reduce((s, x) => s + x, 0) / draws.length
      const variance = draws.reduce((s, x) => s + (x - mean) ** 2, 0) / draws.length
      expect(Math.abs(mean - n * p)).toBeLessThan(4 * Math.sqrt((n * p * (1 - p)) / draws.length))
      expect(variance / (n * p * (1 - p))).toBeGreaterThan(0.9)
      expect(variance / (n * p * (1 - p))).toBeLessThan(1.1)
      expect(Math.min(...draws)).toBeGreaterThanOrEqual(0)
      expect(Math.max(...draws)).toBeLessThanOrEqual(n)
    }
  })

  it('Clopper–Pearson bounds bracket the rate', () => {
    const [lo, hi] = clopperPearson(2, 10_000)
    expect(lo).toBeLessThan(2e-4)
    expect(hi).toBeGreaterThan(2e-4)
    expect(hi).toBeLessThan(1e-3)
    expect(clopperPearson(0, 100)[0]).toBe(0)
  })
})

describe('simulated split test (2,000 seeded runs)', () => {
  const base = {tolerance: 5, confidence: 0.999, maxRequests: 5000, batchSize: 50, runs: 2000, seed: 424242}

  it('a correct 90/10 split fails no more often than α = 0.1% allows, despite a look every 50 responses', () => {
    const r = simulateSplit({...base, trueV2Share: 10, expectedV2Share: 10})
    // a test whose false-fail rate were above α would put this count above the quantile
    expect(r.fail).toBeLessThanOrEqual(binomialUpperQuantile(base.runs, 0.001, 0.001))
    // and the observed rate must be statistically compatible with ≤ α
    expect(r.failRateCI[0]).toBeLessThanOrEqual(0.001)
    expect(r.pass + r.fail + r.inconclusive).toBe(base.runs)
    expect(r.passRate).toBeGreaterThan(0.99)
    expect(r.requestsToPass.median).toBeGreaterThan(0)
  })

  it('a true 80/20 split fails in at least 99% of runs when 90/10 is expected', () => {
    const r = simulateSplit({...base, trueV2Share: 20, expectedV2Share: 10})
    expect(r.failRate).toBeGreaterThanOrEqual(0.99)
    expect(r.pass).toBe(0)
  })

  it('gives the same figures for the same seed', () => {
    const a = simulateSplit({...base, runs: 300, trueV2Share: 50, expectedV2Share: 50})
    const b = simulateSplit({...base, runs: 300, trueV2Share: 50, expectedV2Share: 50})
    expect({...a, elapsedMs: 0}).toEqual({...b, elapsedMs: 0})
  })

  it('runs out of budget (inconclusive) when the budget is far too small', () => {
    const r = simulateSplit({...base, runs: 300, maxRequests: 200, trueV2Share: 10, expectedV2Share: 10})
    expect(r.inconclusiveRate).toBeGreaterThan(0.95)
    expect(r.requests.max).toBeLessThanOrEqual(200)
  })
})
