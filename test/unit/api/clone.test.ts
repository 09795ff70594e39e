// The store's deep copy: the same result as a JSON round trip (which it replaced for speed).
import {describe, expect, it} from 'vitest'
import {clone} from '../../../src/local/api/util.js'

const viaJson = (v: unknown) => JSON.parse(JSON.stringify(v)) as unknown

describe('clone', () => {
  it('copies like JSON.parse(JSON.stringify(x)): undefined, functions, NaN, -0, dates, buffers, class instances', () => {
    class Thing {
      kept = 1
      method() {
        return 2
      }
    }
    const cases: unknown[] = [
      {apiVersion: 'v1', kind: 'Pod', metadata: {name: 'p', labels: {a: 'b'}, annotations: undefined}, spec: {containers: [{name: 'c', ports: [{containerPort: 80}]}]}},
      {a: undefined, b: [undefined, () => 1, Symbol('s'), NaN, -0, Infinity, null], c: new Date(0), d: Buffer.from('x'), e: new Thing(), f: new Map([[1, 2]])},
      Object.assign(Object.create(null) as object, {z: {y: [1, 'two', false]}}),
      [[{}], [], 'x', 3],
      'text',
      7,
      null,
      true,
    ]
    for (const c of cases) expect(JSON.stringify(clone(c))).toBe(JSON.stringify(viaJson(c)))
    expect(clone(undefined)).toBeUndefined()
  })

  it('shares nothing with the original', () => {
    const o = {metadata: {labels: {a: 'b'}}, items: [{n: 1}]}
    const c = clone(o)
    c.metadata.labels.a = 'changed'
    c.items[0]!.n = 2
    expect(o).toEqual({metadata: {labels: {a: 'b'}}, items: [{n: 1}]})
  })

  it('keeps a "__proto__" key as data, as JSON.parse does, without touching prototypes', () => {
    const c = clone(JSON.parse('{"__proto__": {"polluted": true}, "x": 1}')) as Record<string, unknown>
    expect(Object.getPrototypeOf(c)).toBe(Object.prototype)
    expect(Object.hasOwn(c, '__proto__')).toBe(true)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect(JSON.stringify(c)).toBe('{"__proto__":{"polluted":true},"x":1}')
  })
})
