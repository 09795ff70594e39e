// A canary plan: an ordered list of splits whose v2 share grows at every step.
import {fail} from './lab.js'
import {checkWeights, formatWeights, parseWeights, type Weights} from './weights.js'

export const DEFAULT_STEPS: readonly Weights[] = Object.freeze([
  {v1: 100, v2: 0},
  {v1: 90, v2: 10},
  {v1: 50, v2: 50},
  {v1: 0, v2: 100},
])

/** The v1-only route every rollback returns to (section 7 of istio-semantics.md). */
export const ROLLBACK_WEIGHTS: Weights = Object.freeze({v1: 100, v2: 0})

export interface PlanPosition {
  /** index of the matching step, or -1 when the weights are between steps */
  index: number
  /** 1-based step number when on the plan */
  step?: number
  total: number
  onPlan: boolean
  /** the nearest steps around the weights (undefined at either end) */
  previous?: Weights
  next?: Weights
}

export class CanaryPlan {
  readonly steps: readonly Weights[]

  constructor(steps: readonly Weights[] = DEFAULT_STEPS) {
    if (steps.length < 2) fail('MESH_CANARY_STEPS', `steps has ${steps.length} step(s); a plan needs at least 2`, 'steps')
    const checked = steps.map((s, i) => checkWeights(s, `steps[${i}]`))
    for (let i = 1; i < checked.length; i++) {
      if (checked[i]!.v2 <= checked[i - 1]!.v2) {
        fail(
          'MESH_CANARY_STEPS_ORDER',
          `steps[${i}] ${formatWeights(checked[i]!)} does not send more to v2 than steps[${i - 1}] ${formatWeights(checked[i - 1]!)}`,
          `steps[${i}]`,
        )
      }
    }
    this.steps = Object.freeze(checked)
  }

  /** "100/0,80/20,0/100" → a plan. */
  static parse(text: string): CanaryPlan {
    const parts = text.split(',').map((s) => s.trim())
    if (parts.length === 1 && parts[0] === '') fail('MESH_CANARY_STEPS', 'steps is empty; a plan needs at least 2', 'steps')
    return new CanaryPlan(parts.map((p, i) => parseWeights(p, `steps[${i}]`)))
  }

  get first(): Weights {
    return this.steps[0]!
  }

  get last(): Weights {
    return this.steps.at(-1)!
  }

  /** Where the current weights sit on the plan. Steps are ordered by v2 share, so off-plan weights still have neighbours. */
  position(current: Weights): PlanPosition {
    const index = this.steps.findIndex((s) => s.v1 === current.v1 && s.v2 === current.v2)
    const next = this.steps.find((s) => s.v2 > current.v2)
    const previous = [...this.steps].reverse().find((s) => s.v2 < current.v2)
    return {
      index,
      ...(index >= 0 ? {step: index + 1} : {}),
      total: this.steps.length,
      onPlan: index >= 0,
      ...(previous ? {previous} : {}),
      ...(next ? {next} : {}),
    }
  }

  /** The step after the current weights, or undefined when v2 already has the last step's share or more. */
  next(current: Weights): Weights | undefined {
    return this.position(current).next
  }

  /** The step before the current weights, or undefined at (or before) the first step. */
  previous(current: Weights): Weights | undefined {
    return this.position(current).previous
  }

  /** Roll back: every request to v1. */
  rollback(): Weights {
    return {...ROLLBACK_WEIGHTS}
  }

  toString(): string {
    return this.steps.map(formatWeights).join(' → ')
  }
}
