import {describe, expect, it} from 'vitest'
import {CanaryPlan, DEFAULT_STEPS, formatWeights, parseWeights} from '../../../src/mesh/index.js'
import {expectMeshError} from './helpers.js'

const w = parseWeights
const fmt = (x: {v1: number; v2: number} | undefined) => (x ? formatWeights(x) : undefined)

describe('CanaryPlan', () => {
  const plan = new CanaryPlan()

  it('defaults to 100/0 → 90/10 → 50/50 → 0/100', () => {
    expect(plan.steps.map(formatWeights)).toEqual(['100/0', '90/10', '50/50', '0/100'])
    expect(DEFAULT_STEPS).toHaveLength(4)
    expect(plan.toString()).toBe('100/0 → 90/10 → 50/50 → 0/100')
  })

  it('walks forward and back from each step', () => {
    expect(fmt(plan.next(w('100/0')))).toBe('90/10')
    expect(fmt(plan.next(w('90/10')))).toBe('50/50')
    expect(fmt(plan.next(w('50/50')))).toBe('0/100')
    expect(plan.next(w('0/100'))).toBeUndefined()
    expect(fmt(plan.previous(w('0/100')))).toBe('50/50')
    expect(fmt(plan.previous(w('90/10')))).toBe('100/0')
    expect(plan.previous(w('100/0'))).toBeUndefined()
  })

  it('finds the position of the current weights', () => {
    expect(plan.position(w('50/50'))).toMatchObject({index: 2, step: 3, total: 4, onPlan: true})
    const off = plan.position(w('70/30'))
    expect(off).toMatchObject({index: -1, onPlan: false, total: 4})
    expect(off.step).toBeUndefined()
    // between 90/10 and 50/50: the neighbours are those steps
    expect(fmt(off.previous)).toBe('90/10')
    expect(fmt(off.next)).toBe('50/50')
  })

  it('rolls back to all-v1 whatever the plan', () => {
    expect(plan.rollback()).toEqual({v1: 100, v2: 0})
    expect(CanaryPlan.parse('80/20,0/100').rollback()).toEqual({v1: 100, v2: 0})
  })

  it('parses --steps', () => {
    const p = CanaryPlan.parse('100/0, 80/20 ,0/100')
    expect(p.steps.map(formatWeights)).toEqual(['100/0', '80/20', '0/100'])
    expect(fmt(p.next(w('90/10')))).toBe('80/20')
    expect(fmt(p.first)).toBe('100/0')
    expect(fmt(p.last)).toBe('0/100')
  })

  it('rejects plans with fewer than two steps', () => {
    expectMeshError(() => CanaryPlan.parse('100/0'), 'MESH_CANARY_STEPS', 'steps')
    expectMeshError(() => CanaryPlan.parse(''), 'MESH_CANARY_STEPS', 'steps')
    expectMeshError(() => new CanaryPlan([]), 'MESH_CANARY_STEPS')
  })

  it('rejects a plan whose v2 share does not grow, naming the step', () => {
    const e = expectMeshError(() => CanaryPlan.parse('100/0,50/50,80/20'), 'MESH_CANARY_STEPS_ORDER', 'steps[2]')
    expect(e.message).toContain('80/20')
    expectMeshError(() => CanaryPlan.parse('100/0,50/50,50/50'), 'MESH_CANARY_STEPS_ORDER', 'steps[2]')
  })

  it('rejects a bad step with the weight codes and the step index', () => {
    expectMeshError(() => CanaryPlan.parse('100/0,80/30,0/100'), 'MESH_WEIGHTS_SUM', 'steps[1]')
    expectMeshError(() => CanaryPlan.parse('100/0,x,0/100'), 'MESH_WEIGHTS_FORMAT', 'steps[1]')
    expectMeshError(() => new CanaryPlan([{v1: 100, v2: 0}, {v1: -1, v2: 101}]), 'MESH_WEIGHTS_RANGE', 'steps[1]')
  })
})
