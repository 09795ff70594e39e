#!/usr/bin/env node
// Seeded simulation of `mesh verify split` (no network). Build first: npm run build
//   node bench/split-simulation.mjs [--runs 10000] [--seed 20261122] [--budget 5000] [--json]
// Prints the figures recorded in docs/statistics.md.
import {parseArgs} from 'node:util'
import {simulateSplit, createRng, binomial, clopperPearson} from '../dist/checks/simulate.js'
import {wilsonInterval, mixturePrior, logMixtureMartingale} from '../dist/checks/stats.js'

const {values: args} = parseArgs({
  options: {
    runs: {type: 'string', default: '10000'},
    seed: {type: 'string', default: '20261122'},
    budget: {type: 'string', default: '5000'},
    batch: {type: 'string', default: '50'},
    json: {type: 'boolean', default: false},
  },
})
const runs = Number(args.runs)
const seed = Number(args.seed)
const budget = Number(args.budget)
const batchSize = Number(args.batch)
const base = {tolerance: 5, confidence: 0.999, maxRequests: budget, batchSize, runs, seed}
const started = performance.now()

const pct = (x, d = 3) => `${(100 * x).toFixed(d)}%`
const ci = (r) => `[${pct(r[0])}, ${pct(r[1])}]`
const fig = (f) => (f.count === 0 ? '–' : `${f.median} / ${f.p90}`)

const scenarios = [
  {name: 'true 90/10, expect 90/10 (false-fail rate)', trueV2Share: 10, expectedV2Share: 10},
  {name: 'true 80/20, expect 90/10 (power)', trueV2Share: 20, expectedV2Share: 10},
  {name: 'true 50/50, expect 50/50', trueV2Share: 50, expectedV2Share: 50},
  {name: 'true 88/12, expect 90/10 (inside the band)', trueV2Share: 12, expectedV2Share: 10},
  {name: 'true 85/15, expect 90/10 (on the band edge)', trueV2Share: 15, expectedV2Share: 10},
  {name: 'true 90/10 with 5% errors, expect 90/10', trueV2Share: 10, expectedV2Share: 10, errorRate: 5},
  {name: 'true 100/0, expect 100/0 (exact)', trueV2Share: 0, expectedV2Share: 0},
  {name: 'true 99/1, expect 100/0 (exact)', trueV2Share: 1, expectedV2Share: 0},
  {name: 'true 90/10, expect 90/10, uniform prior Beta(1,1)', trueV2Share: 10, expectedV2Share: 10, prior: [1, 1]},
  {name: 'true 50/50, expect 50/50, uniform prior Beta(1,1)', trueV2Share: 50, expectedV2Share: 50, prior: [1, 1]},
  ...[300, 500, 1000, 2000].map((b) => ({name: `true 90/10, expect 90/10, budget ${b}`, trueV2Share: 10, expectedV2Share: 10, maxRequests: b})),
]

const results = []
for (const sc of scenarios) {
  const {name, ...o} = sc
  const r = simulateSplit({...base, ...o})
  results.push({name, ...r})
}

// Why not a fixed-n interval: the same looks with a 99.9% Wilson interval, and a fail-only
// monitor that never stops at pass (the worst case for repeated looks), vs the mixture CS.
function peeking(method, stopAtPass) {
  const rng = createRng(seed + 1)
  const e = 0.1
  const prior = mixturePrior(e, 0.05)
  const L = Math.log(1000)
  let fails = 0
  for (let i = 0; i < runs; i++) {
    let s = 0
    let n = 0
    while (n < budget) {
      const k = Math.min(batchSize, budget - n)
      s += binomial(k, e, rng)
      n += k
      let out
      let inside
      if (method === 'wilson') {
        const [lo, hi] = wilsonInterval(s, n, 0.999)
        out = e < lo || e > hi
        inside = lo >= 0.05 && hi <= 0.15
      } else {
        out = logMixtureMartingale(s, n - s, e, prior) >= L
        inside = logMixtureMartingale(s, n - s, 0.05, prior) >= L && logMixtureMartingale(s, n - s, 0.15, prior) >= L && s / n > 0.05 && s / n < 0.15
      }
      if (out) {
        fails++
        break
      }
      if (stopAtPass && inside) break
    }
  }
  return {fails, rate: fails / runs, ci: clopperPearson(fails, runs)}
}
const comparison = {
  wilsonStopAtPass: peeking('wilson', true),
  wilsonFailOnly: peeking('wilson', false),
  mixtureFailOnly: peeking('mixture', false),
}
const elapsedMs = performance.now() - started

if (args.json) {
  console.log(JSON.stringify({runs, seed, budget, batchSize, results, comparison, elapsedMs}, null, 2))
} else {
  console.log(`split simulation: ${runs} runs per scenario, seed ${seed}, budget ${budget}, look every ${batchSize}, tolerance ±5 points, confidence 99.9%\n`)
  console.log('| scenario | pass | fail | inconclusive | fail rate [95% CP] | requests to pass (median / p90) | requests to fail (median / p90) |')
  console.log('|---|---|---|---|---|---|---|')
  for (const r of results)
    console.log(`| ${r.name} | ${r.pass} | ${r.fail} | ${r.inconclusive} | ${pct(r.failRate, 2)} ${ci(r.failRateCI)} | ${fig(r.requestsToPass)} | ${fig(r.requestsToFail)} |`)
  const ff = results[0]
  console.log(`\nfalse fails on a correct 90/10: ${ff.fail} of ${ff.runs} = ${pct(ff.failRate)}; Clopper-Pearson 95% upper bound ${pct(ff.failRateCI[1])} (requirement ≤ 0.1%)`)
  console.log(`power on 80/20 vs 90/10: ${pct(results[1].failRate, 2)} fail (requirement ≥ 99%)`)
  console.log(`requests to pass 90/10 at ±5 points: median ${ff.requestsToPass.median}, p90 ${ff.requestsToPass.p90}`)
  console.log('\nrepeated looks, true 90/10, every batch up to the budget, false-fail rate [95% CP]:')
  console.log(`  fixed-n 99.9% Wilson, stop at pass: ${comparison.wilsonStopAtPass.fails} = ${pct(comparison.wilsonStopAtPass.rate)} ${ci(comparison.wilsonStopAtPass.ci)}`)
  console.log(`  fixed-n 99.9% Wilson, fail-only:    ${comparison.wilsonFailOnly.fails} = ${pct(comparison.wilsonFailOnly.rate)} ${ci(comparison.wilsonFailOnly.ci)}`)
  console.log(`  mixture CS (mesh),    fail-only:    ${comparison.mixtureFailOnly.fails} = ${pct(comparison.mixtureFailOnly.rate)} ${ci(comparison.mixtureFailOnly.ci)}`)
  console.log(`\nelapsed ${(elapsedMs / 1000).toFixed(1)} s`)
}
