import {describe, expect, it} from 'vitest'
import {lbPolicyOf} from '../../../src/local/dataplane/destination-policy.js'
import {hash32, hashKeyOf, LeastRequestLb, RandomLb, RingHashLb, RoundRobinLb, createLoadBalancer} from '../../../src/local/dataplane/lb.js'

const hosts = (n: number) => Array.from({length: n}, (_, i) => ({key: `127.0.0.${i + 2}:5000`, active: 0}))

/** A seeded generator so expectations are exact, not statistical. */
function seeded(seed = 42) {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

describe('load balancers (DR-3)', () => {
  it('defaults to LEAST_REQUEST; LEAST_CONN is its alias', () => {
    expect(lbPolicyOf(undefined)).toEqual({kind: 'LEAST_REQUEST'})
    expect(lbPolicyOf({simple: 'LEAST_CONN'})).toEqual({kind: 'LEAST_REQUEST'})
    expect(lbPolicyOf({simple: 'ROUND_ROBIN'})).toEqual({kind: 'ROUND_ROBIN'})
    expect(lbPolicyOf({consistentHash: {httpHeaderName: 'X-User'}})).toEqual({kind: 'RING_HASH', key: {kind: 'header', name: 'x-user'}, ringSize: 1024})
    expect(lbPolicyOf({consistentHash: {useSourceIp: true, ringHash: {minimumRingSize: 64}}})).toEqual({kind: 'RING_HASH', key: {kind: 'sourceIp'}, ringSize: 64})
    expect(createLoadBalancer({kind: 'LEAST_REQUEST'}, Math.random)).toBeInstanceOf(LeastRequestLb)
  })

  it('ROUND_ROBIN visits every host in turn', () => {
    const h = hosts(3)
    const lb = new RoundRobinLb(() => 0)
    expect(Array.from({length: 6}, () => lb.pick(h)!.key)).toEqual([h[0], h[1], h[2], h[0], h[1], h[2]].map((x) => x.key))
  })

  it('LEAST_REQUEST picks the less loaded of two random choices', () => {
    const h = hosts(2)
    h[0].active = 5
    // random picks h0 then h1: h1 has fewer active requests
    const seq = [0.1, 0.9]
    let i = 0
    const lb = new LeastRequestLb(() => seq[i++ % 2])
    expect(lb.pick(h)).toBe(h[1])
    // a host with many active requests is avoided most of the time
    const busy = hosts(4)
    busy[0].active = 100
    const lb2 = new LeastRequestLb(seeded())
    const counts = new Map<string, number>()
    for (let k = 0; k < 4000; k++) {
      const p = lb2.pick(busy)!
      counts.set(p.key, (counts.get(p.key) ?? 0) + 1)
    }
    // busy host wins only when both random choices land on it: (1/4)² = 6.25%
    expect(counts.get(busy[0].key)! / 4000).toBeGreaterThan(0.04)
    expect(counts.get(busy[0].key)! / 4000).toBeLessThan(0.09)
  })

  it('RANDOM spreads evenly over hosts', () => {
    const h = hosts(4)
    const lb = new RandomLb(seeded(7))
    const counts = new Map<string, number>()
    for (let k = 0; k < 8000; k++) counts.set(lb.pick(h)!.key, (counts.get(lb.pick(h)!.key) ?? 0) + 1)
    for (const v of counts.values()) expect(Math.abs(v / 8000 - 0.25)).toBeLessThan(0.03)
  })

  it('ring hash: the same key always lands on the same host, and removing a host keeps most other keys where they were', () => {
    const h = hosts(5)
    const lb = new RingHashLb(1024, Math.random)
    const keys = Array.from({length: 500}, (_, i) => `user-${i}`)
    const before = keys.map((k) => lb.pick(h, hash32(k))!.key)
    expect(keys.map((k) => lb.pick(h, hash32(k))!.key)).toEqual(before)
    const spread = new Set(before)
    expect(spread.size).toBe(5)
    const removed = h[2].key
    const fewer = h.filter((x) => x.key !== removed)
    const after = keys.map((k) => lb.pick(fewer, hash32(k))!.key)
    expect(after.includes(removed)).toBe(false)
    // like Envoy, the ring is ringSize ÷ hosts points per host, so the others gain points and a few keys move
    const kept = keys.filter((_, i) => before[i] !== removed)
    const stayed = kept.filter((k) => after[keys.indexOf(k)] === before[keys.indexOf(k)]).length
    expect(stayed / kept.length).toBeGreaterThan(0.7)
  })

  it('hash keys come from a header, a cookie, a query parameter or the source IP', () => {
    const req = {headers: {'x-user': 'jason', cookie: 'a=1; session=abc; b=2'}, sourceIp: '127.0.0.9', query: 'u=7&v=8'}
    expect(hashKeyOf({kind: 'header', name: 'x-user'}, req)).toBe('jason')
    expect(hashKeyOf({kind: 'cookie', name: 'session'}, req)).toBe('abc')
    expect(hashKeyOf({kind: 'queryParam', name: 'v'}, req)).toBe('8')
    expect(hashKeyOf({kind: 'sourceIp'}, req)).toBe('127.0.0.9')
    expect(hashKeyOf({kind: 'header', name: 'missing'}, req)).toBeUndefined()
  })
})
