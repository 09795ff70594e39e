import {expect} from 'vitest'
import {MeshError} from '../../../src/lib/errors.js'

/** Run fn, expect a MeshError with this code (and field, when given); return it for more checks. */
export function expectMeshError(fn: () => unknown, code: string, field?: string): MeshError {
  let caught: unknown
  try {
    fn()
  } catch (err) {
    caught = err
  }
  expect(caught, `expected ${code} to be thrown`).toBeInstanceOf(MeshError)
  const e = caught as MeshError
  expect(e.code).toBe(code)
  if (field !== undefined) expect(e.field).toBe(field)
  expect(e.suggestion).not.toBe('')
  return e
}
