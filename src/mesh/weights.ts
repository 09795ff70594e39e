// Canary weights as users type them: "90/10" = 90% to v1, 10% to v2.
import {fail} from './lab.js'

export interface Weights {
  v1: number
  v2: number
}

const SHAPE = /^\s*(-?\d+)\s*\/\s*(-?\d+)\s*$/

/** Parse "V1/V2": exactly two whole numbers, each 0–100, summing to 100. */
export function parseWeights(text: string, field = 'weights'): Weights {
  const m = SHAPE.exec(text)
  if (!m) fail('MESH_WEIGHTS_FORMAT', `${field} "${text}" is not two whole numbers written V1/V2`, field)
  return checkWeights({v1: Number(m![1]), v2: Number(m![2])}, field, text)
}

/** The same rules for weights given as numbers (builders call this). */
export function checkWeights(w: Weights, field = 'weights', text = formatWeights(w)): Weights {
  for (const which of ['v1', 'v2'] as const) {
    const n = w[which]
    if (!Number.isInteger(n)) fail('MESH_WEIGHTS_FORMAT', `${field} "${text}": the ${which} weight ${n} is not a whole number`, field)
    if (n < 0 || n > 100) fail('MESH_WEIGHTS_RANGE', `${field} "${text}": the ${which} weight ${n} is outside 0–100`, field)
  }
  if (w.v1 + w.v2 !== 100) fail('MESH_WEIGHTS_SUM', `${field} "${text}" add up to ${w.v1 + w.v2}, not 100`, field)
  return {v1: w.v1, v2: w.v2}
}

export const formatWeights = (w: Weights): string => `${w.v1}/${w.v2}`

export const sameWeights = (a: Weights, b: Weights): boolean => a.v1 === b.v1 && a.v2 === b.v2
