import {existsSync} from 'node:fs'
import {describe, expect, it} from 'vitest'
import type {KubeObject} from '../../../src/cluster/client.js'
import {buildHelloDestinationRule, buildHelloVirtualServices} from '../../../src/mesh/traffic.js'
import {formatWeights, type Weights} from '../../../src/mesh/weights.js'
import {readRunProgress, runProgressPath} from '../../../src/lab/canary-progress.js'
import {runCanary, type Analyzer, type CanaryRunEvent, type GateResult} from '../../../src/lab/canary-run.js'
import {readWeights} from '../../../src/lab/state.js'
import {FakeClient, fakeLab, ns} from './fake-cluster.js'

const seedLab = (c: FakeClient, weights = {v1: 100, v2: 0}) =>
  c.seed(ns('mesh-lab'), buildHelloDestinationRule() as unknown as KubeObject, ...(buildHelloVirtualServices(weights) as unknown as KubeObject[]))

const gate = (expected: Weights, verdict: GateResult['verdict'], reason = verdict): GateResult => ({
  verdict,
  reason,
  expected,
  observedV2Share: expected.v2,
  interval: [expected.v2, expected.v2],
  requests: 100,
  errors: 0,
  errorRate: 0,
  p99Ms: 1,
})

/** An analyzer that records what it was asked to check and answers from a script keyed by "v1/v2". */
function scripted(script: Record<string, GateResult['verdict']> = {}, onCall?: (w: Weights) => void) {
  const asked: string[] = []
  const analyze: Analyzer = async (lab, expected) => {
    asked.push(formatWeights(expected))
    // the gate runs with the step's weights already applied
    expect((await readWeights(lab.target.client)).weights).toEqual(expected)
    onCall?.(expected)
    return gate(expected, script[formatWeights(expected)] ?? 'pass')
  }
  return {analyze, asked}
}

describe('canary run', () => {
  it('walks every step with a gate after each, and records completion', async () => {
    const {lab, client} = fakeLab()
    seedLab(client)
    const {analyze, asked} = scripted()
    const events: CanaryRunEvent['type'][] = []
    const r = await runCanary(lab, {analyze, intervalMs: 0, onEvent: (e) => events.push(e.type)})
    expect(r.status).toBe('completed')
    expect(r.exitCode).toBe(0)
    expect(asked).toEqual(['100/0', '90/10', '50/50', '0/100'])
    expect(r.steps.map((s) => [formatWeights(s.weights), s.applied])).toEqual([
      ['100/0', false],
      ['90/10', true],
      ['50/50', true],
      ['0/100', true],
    ])
    expect((await readWeights(client)).weights).toEqual({v1: 0, v2: 100})
    expect(events.filter((e) => e === 'step')).toHaveLength(3)
    expect(readRunProgress(lab.home)).toMatchObject({status: 'completed', lastApplied: {index: 3}})
  })

  it.each([
    ['fail', 1],
    ['inconclusive', 2],
  ] as const)('a %s gate rolls back to 100/0 and exits %i', async (verdict, exit) => {
    const {lab, client} = fakeLab()
    seedLab(client)
    const {analyze, asked} = scripted({'50/50': verdict})
    const r = await runCanary(lab, {analyze, intervalMs: 0})
    expect(r.status).toBe('rolled-back')
    expect(r.exitCode).toBe(exit)
    expect(asked).toEqual(['100/0', '90/10', '50/50'])
    expect(r.rollback?.reason).toMatch(new RegExp(`step 3 \\(50/50\\): analysis ${verdict}`))
    expect(r.final).toEqual({v1: 100, v2: 0})
    expect((await readWeights(client)).weights).toEqual({v1: 100, v2: 0})
    expect(readRunProgress(lab.home)?.status).toBe('rolled-back')
  })

  it('an abort during a gate keeps the applied step (no rollback) and a second run resumes after it', async () => {
    const {lab, client} = fakeLab()
    seedLab(client)
    const ac = new AbortController()
    const first = scripted({}, (w) => {
      if (formatWeights(w) === '50/50') ac.abort()
    })
    const r = await runCanary(lab, {analyze: first.analyze, intervalMs: 0, signal: ac.signal})
    expect(r.status).toBe('interrupted')
    expect(r.exitCode).toBe(130)
    expect(r.lastApplied).toEqual({index: 2, weights: {v1: 50, v2: 50}})
    expect((await readWeights(client)).weights).toEqual({v1: 50, v2: 50})
    expect(readRunProgress(lab.home)?.status).toBe('interrupted')

    const second = scripted()
    const r2 = await runCanary(lab, {analyze: second.analyze, intervalMs: 0})
    expect(r2.resumed).toBe(true)
    // the 50/50 gate was interrupted, so it runs again; passed gates are not repeated
    expect(second.asked).toEqual(['50/50', '0/100'])
    expect(r2.status).toBe('completed')
  })

  it('an abort while waiting between steps stops before the next step', async () => {
    const {lab, client} = fakeLab()
    seedLab(client, {v1: 90, v2: 10})
    const ac = new AbortController()
    const r = await runCanary(lab, {
      analysis: 'none',
      intervalMs: 60_000,
      signal: ac.signal,
      onEvent: (e) => {
        if (e.type === 'wait' && formatWeights(e.next) === '50/50') setTimeout(() => ac.abort(), 20)
      },
    })
    expect(r.status).toBe('interrupted')
    expect(r.final).toEqual({v1: 90, v2: 10})
    expect((await readWeights(client)).weights).toEqual({v1: 90, v2: 10})
  })

  it('at the last step there is nothing to do; a different plan does not resume an old run', async () => {
    const {lab, client} = fakeLab()
    seedLab(client, {v1: 0, v2: 100})
    const {analyze, asked} = scripted()
    const r = await runCanary(lab, {analyze})
    expect(r.status).toBe('already-complete')
    expect(r.exitCode).toBe(0)
    expect(asked).toEqual([])
    expect(client.applyCalls).toHaveLength(0)
    expect(existsSync(runProgressPath(lab.home))).toBe(false)
  })

  it('analysis none checks nothing and still walks the plan', async () => {
    const {lab, client} = fakeLab()
    seedLab(client, {v1: 90, v2: 10})
    const r = await runCanary(lab, {analysis: 'none', intervalMs: 0})
    expect(r.status).toBe('completed')
    expect(r.steps.map((s) => s.gate?.verdict)).toEqual(['skipped', 'skipped', 'skipped'])
  })

  it('refuses bad run options before touching the lab', async () => {
    const {lab, client} = fakeLab()
    seedLab(client)
    await expect(runCanary(lab, {intervalMs: -1})).rejects.toMatchObject({code: 'MESH_CANARY_INTERVAL', exit: 65})
    await expect(runCanary(lab, {maxErrorRate: 2})).rejects.toMatchObject({code: 'MESH_CANARY_ERROR_RATE', exit: 65})
    expect(client.applyCalls).toHaveLength(0)
  })
})
