import {describe, expect, it} from 'vitest'
import {checkWeights, formatWeights, parseWeights} from '../../../src/mesh/index.js'
import {expectMeshError} from './helpers.js'

describe('parseWeights', () => {
  it.each([
    ['90/10', 90, 10],
    ['100/0', 100, 0],
    ['0/100', 0, 100],
    [' 50 / 50 ', 50, 50],
    ['37/63', 37, 63],
  ])('parses %j', (text, v1, v2) => {
    expect(parseWeights(text)).toEqual({v1, v2})
  })

  it.each(['abc', '90', '90/10/0', '90.5/9.5', '90-10', '', '/'])('rejects the shape of %j with MESH_WEIGHTS_FORMAT', (text) => {
    const e = expectMeshError(() => parseWeights(text), 'MESH_WEIGHTS_FORMAT', 'weights')
    expect(e.exit).toBe(65)
    expect(e.message).toContain(`"${text}"`)
    expect(e.suggestion).toMatch(/90\/10/)
  })

  it.each([
    ['-5/105', '-5'],
    ['105/-5', '105'],
    ['101/-1', '101'],
  ])('rejects %j with MESH_WEIGHTS_RANGE naming the weight', (text, bad) => {
    const e = expectMeshError(() => parseWeights(text), 'MESH_WEIGHTS_RANGE', 'weights')
    expect(e.message).toContain(bad)
    expect(e.message).toContain(text)
  })

  it.each([
    ['90/20', 110],
    ['40/40', 80],
    ['0/0', 0],
  ])('rejects %j with MESH_WEIGHTS_SUM and says what it adds up to', (text, sum) => {
    const e = expectMeshError(() => parseWeights(text), 'MESH_WEIGHTS_SUM', 'weights')
    expect(e.message).toContain(`add up to ${sum}`)
  })

  it('names a caller-chosen field, e.g. a plan step', () => {
    expectMeshError(() => parseWeights('1/2', 'steps[2]'), 'MESH_WEIGHTS_SUM', 'steps[2]')
  })

  it('checks weights given as numbers the same way', () => {
    expect(checkWeights({v1: 10, v2: 90})).toEqual({v1: 10, v2: 90})
    expectMeshError(() => checkWeights({v1: 0.5, v2: 99.5}), 'MESH_WEIGHTS_FORMAT')
    expectMeshError(() => checkWeights({v1: 150, v2: -50}), 'MESH_WEIGHTS_RANGE')
    expectMeshError(() => checkWeights({v1: 60, v2: 60}), 'MESH_WEIGHTS_SUM')
  })

  it('formats back to the typed form', () => {
    expect(formatWeights(parseWeights(' 90 /10'))).toBe('90/10')
  })
})
