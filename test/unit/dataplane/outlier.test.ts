// DR-6..DR-9 with a fake clock: every expectation is a number the rules in
// istio-semantics.md (and Envoy's detector) determine exactly.
import {describe, expect, it} from 'vitest'
import {Cluster, PLAIN_POLICY, emptyClusterStats, type ClusterSpec} from '../../../src/local/dataplane/cluster.js'
import {outlierConfigOf, clusterPolicy, type OutlierConfig} from '../../../src/local/dataplane/destination-policy.js'
import {OutlierDetector, type Clock} from '../../../src/local/dataplane/outlier.js'
import type {Endpoint, KubeObject} from '../../../src/local/dataplane/snapshot.js'

class FakeClock implements Clock {
  t = 0
  private timers: {fn: () => void; every: number; next: number}[] = []
  now() {
    return this.t
  }
  setInterval(fn: () => void, ms: number) {
    const h = {fn, every: ms, next: this.t + ms}
    this.timers.push(h)
    return h
  }
  clearInterval(h: unknown) {
    this.timers = this.timers.filter((x) => x !== h)
  }
  /** advance, firing interval ticks in order */
  advance(ms: number) {
    const end = this.t + ms
    for (;;) {
      const due = this.timers.filter((x) => x.next <= end).sort((a, b) => a.next - b.next)[0]
      if (!due) break
      this.t = due.next
      due.next += due.every
      due.fn()
    }
    this.t = end
  }
}

const cfg = (od: Record<string, unknown>): OutlierConfig => outlierConfigOf(od)!

function detector(od: Record<string, unknown>, hosts: number) {
  const clock = new FakeClock()
  const d = new OutlierDetector(cfg(od), clock)
  d.setHosts(Array.from({length: hosts}, (_, i) => `h${i}`))
  d.start()
  return {d, clock, m: (i: number) => d.monitor(`h${i}`)!}
}

const fail = (d: OutlierDetector, host: string, n: number, status = 503) => {
  let ejected = false
  for (let i = 0; i < n; i++) ejected = d.putResult(host, status) || ejected
  return ejected
}

describe('outlier detection defaults (DR-6)', () => {
  it('maps an outlierDetection block to Envoy settings with the documented defaults', () => {
    expect(cfg({})).toEqual({
      consecutive5xx: 5,
      enforce5xx: true,
      consecutiveGateway: 5,
      enforceGateway: false,
      intervalMs: 10_000,
      baseEjectionMs: 30_000,
      maxEjectionMs: 300_000,
      maxEjectionPercent: 10,
      panicThresholdPercent: 0,
    })
    expect(cfg({consecutive5xxErrors: 0}).enforce5xx).toBe(false)
    expect(cfg({consecutiveGatewayErrors: 2})).toMatchObject({consecutiveGateway: 2, enforceGateway: true})
    expect(cfg({maxEjectionPercent: 0}).maxEjectionPercent).toBe(10)
    expect(cfg({baseEjectionTime: '10m'}).maxEjectionMs).toBe(600_000)
    expect(outlierConfigOf(undefined)).toBeUndefined()
  })
})

describe('inline ejection at the threshold (DR-7, DR-8)', () => {
  it('ejects on exactly the consecutive5xxErrors-th 5xx, not before', () => {
    const {d, m} = detector({consecutive5xxErrors: 3, maxEjectionPercent: 100}, 2)
    expect(fail(d, 'h0', 2)).toBe(false)
    expect(m(0).ejected).toBe(false)
    expect(d.putResult('h0', 500)).toBe(true)
    expect(m(0).ejected).toBe(true)
    expect(d.stats).toMatchObject({ejections_active: 1, ejections_enforced_total: 1, ejections_enforced_consecutive_5xx: 1})
  })

  it('a non-5xx response resets the count', () => {
    const {d, m} = detector({consecutive5xxErrors: 3, maxEjectionPercent: 100}, 2)
    fail(d, 'h0', 2)
    d.putResult('h0', 404)
    fail(d, 'h0', 2)
    expect(m(0).ejected).toBe(false)
    expect(m(0).consecutive5xx).toBe(2)
  })

  it('counts per host: failures spread over hosts eject nobody', () => {
    const {d, m} = detector({consecutive5xxErrors: 2, maxEjectionPercent: 100}, 3)
    for (let i = 0; i < 3; i++) d.putResult(`h${i}`, 503)
    expect([0, 1, 2].some((i) => m(i).ejected)).toBe(false)
  })

  it('consecutiveGatewayErrors counts only 502/503/504; a 500 breaks that run', () => {
    const {d, m} = detector({consecutive5xxErrors: 0, consecutiveGatewayErrors: 3, maxEjectionPercent: 100}, 2)
    d.putResult('h0', 502)
    d.putResult('h0', 504)
    d.putResult('h0', 500)
    d.putResult('h0', 503)
    d.putResult('h0', 503)
    expect(m(0).ejected).toBe(false)
    d.putResult('h0', 503)
    expect(m(0).ejected).toBe(true)
    expect(d.stats.ejections_enforced_consecutive_gateway_failure).toBe(1)
  })

  it('consecutive5xxErrors: 0 turns the 5xx detector off', () => {
    const {d, m} = detector({consecutive5xxErrors: 0, maxEjectionPercent: 100}, 2)
    fail(d, 'h0', 50, 500)
    expect(m(0).ejected).toBe(false)
  })

  it('an ejected host keeps counting but is not ejected twice', () => {
    const {d} = detector({consecutive5xxErrors: 2, maxEjectionPercent: 100}, 2)
    fail(d, 'h0', 6)
    expect(d.stats.ejections_enforced_total).toBe(1)
    expect(d.stats.ejections_active).toBe(1)
  })
})

describe('the maxEjectionPercent cap (DR-8)', () => {
  it('at the default 10%, two hosts never eject: 100 × 1 ÷ 2 = 50 > 10', () => {
    const {d, m} = detector({consecutive5xxErrors: 1}, 2)
    fail(d, 'h0', 20, 500)
    expect(m(0).ejected).toBe(false)
    expect(d.stats.ejections_enforced_total).toBe(0)
    expect(d.stats.ejections_overflow).toBe(20) // every detection hit the cap
    // 503s also feed the (unenforced) gateway-error detector, whose every 5th detection hits the cap too
    fail(d, 'h1', 10, 503)
    expect(d.stats.ejections_overflow).toBe(32)
  })

  it('at the default 10%, nine hosts never eject and ten hosts eject exactly one', () => {
    const nine = detector({consecutive5xxErrors: 1}, 9)
    fail(nine.d, 'h0', 1)
    expect(nine.m(0).ejected).toBe(false)
    const ten = detector({consecutive5xxErrors: 1}, 10)
    fail(ten.d, 'h0', 1)
    fail(ten.d, 'h1', 1)
    expect(ten.m(0).ejected).toBe(true)
    expect(ten.m(1).ejected).toBe(false) // 100 × 2 ÷ 10 = 20 > 10
  })

  it('50% of three hosts allows one ejection (33%) but not a second (67%)', () => {
    const {d, m} = detector({consecutive5xxErrors: 1, maxEjectionPercent: 50}, 3)
    fail(d, 'h0', 1)
    fail(d, 'h1', 1)
    expect([m(0).ejected, m(1).ejected]).toEqual([true, false])
  })

  it('100% lets every host go', () => {
    const {d, m} = detector({consecutive5xxErrors: 1, maxEjectionPercent: 100}, 3)
    for (let i = 0; i < 3; i++) fail(d, `h${i}`, 1)
    expect([0, 1, 2].every((i) => m(i).ejected)).toBe(true)
  })
})

describe('ejection time and return (DR-8)', () => {
  it('returns on the first interval tick at or after base ejection time, with counters reset', () => {
    // ticks at 10s, 20s, …; ejected at t = 12s for 30s → eligible at 42s → back at the 50s tick
    const {d, m, clock} = detector({consecutive5xxErrors: 2, interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 100}, 2)
    clock.advance(12_000)
    fail(d, 'h0', 2)
    expect(m(0).ejected).toBe(true)
    expect(d.ejectedUntil(m(0))).toBe(42_000)
    clock.advance(40_000 - 12_000)
    expect(m(0).ejected).toBe(true)
    clock.advance(9_999)
    expect(m(0).ejected).toBe(true)
    clock.advance(1)
    expect(m(0).ejected).toBe(false)
    expect(m(0).lastUnejection).toBe(50_000)
    expect(m(0).consecutive5xx).toBe(0)
    expect(d.stats.ejections_active).toBe(0)
  })

  it('the multiplier grows with each ejection: the second lasts base × 2', () => {
    const {d, m, clock} = detector({consecutive5xxErrors: 1, interval: '1s', baseEjectionTime: '3s', maxEjectionPercent: 100}, 2)
    fail(d, 'h0', 1) // t=0, backoff 1 → 3s
    clock.advance(3_000)
    expect(m(0).ejected).toBe(false)
    fail(d, 'h0', 1) // t=3s, backoff 2 → 6s
    expect(m(0).backoff).toBe(2)
    clock.advance(5_000)
    expect(m(0).ejected).toBe(true)
    clock.advance(1_000)
    expect(m(0).ejected).toBe(false)
  })

  it('the multiplier decays by one per healthy interval', () => {
    const {d, m, clock} = detector({consecutive5xxErrors: 1, interval: '1s', baseEjectionTime: '1s', maxEjectionPercent: 100}, 2)
    fail(d, 'h0', 1)
    clock.advance(1_000) // back at t=1s
    fail(d, 'h0', 1)
    clock.advance(2_000) // back at t=3s, backoff 2
    expect(m(0).ejected).toBe(false)
    expect(m(0).backoff).toBe(2)
    clock.advance(1_000) // healthy for one interval
    expect(m(0).backoff).toBe(1)
    clock.advance(1_000)
    expect(m(0).backoff).toBe(0)
    clock.advance(5_000)
    expect(m(0).backoff).toBe(0)
  })

  it('caps the ejection time at max(300s, base)', () => {
    const {d, m, clock} = detector({consecutive5xxErrors: 1, interval: '1s', baseEjectionTime: '100s', maxEjectionPercent: 100}, 2)
    const durations: number[] = []
    for (let k = 0; k < 5; k++) {
      fail(d, 'h0', 1) // re-ejected right after each return, so the multiplier has no time to decay
      durations.push(d.ejectionDuration(m(0)))
      const start = clock.now()
      while (m(0).ejected) clock.advance(1_000)
      expect(clock.now() - start).toBe(durations[k])
    }
    expect(durations).toEqual([100_000, 200_000, 300_000, 300_000, 300_000])
  })

  it('a host removed while ejected no longer counts as ejected', () => {
    const {d} = detector({consecutive5xxErrors: 1, maxEjectionPercent: 100}, 3)
    fail(d, 'h0', 1)
    d.setHosts(['h1', 'h2'])
    expect(d.stats.ejections_active).toBe(0)
  })
})

describe('UH and panic at the cluster (DR-9)', () => {
  const ep = (i: number): Endpoint => ({address: `127.50.0.${i + 2}`, podName: `p${i}`, namespace: 'mesh-lab', labels: {app: 'hello'}, serviceAccount: 'hello', sidecar: true, ready: true, ports: [5000]})
  function cluster(od: Record<string, unknown>, n: number) {
    const dr: KubeObject = {apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: {name: 'x', namespace: 'mesh-lab'}, spec: {host: 'hello', trafficPolicy: {outlierDetection: od}}}
    const clock = new FakeClock()
    const spec: ClusterSpec = {name: 'outbound|5000||hello.mesh-lab.svc.cluster.local', kind: 'outbound', host: 'hello.mesh-lab.svc.cluster.local', port: 5000, policy: clusterPolicy(dr, 5000), endpoints: Array.from({length: n}, (_, i) => ({endpoint: ep(i), address: ep(i).address, port: 5000}))}
    const stats = emptyClusterStats()
    let r = 0
    const c = new Cluster(spec, {clock, random: () => (r = (r + 0.37) % 1), stats: () => stats})
    return {c, clock}
  }

  it('no healthy upstream when every host is ejected and minHealthPercent is 0', () => {
    const {c} = cluster({consecutive5xxErrors: 1, maxEjectionPercent: 100}, 2)
    for (const h of c.hosts) c.outlier!.putResult(h.key, 503)
    expect(c.pick(undefined)).toBeUndefined()
    c.close()
  })

  it('ejected hosts get no picks while others are healthy', () => {
    const {c} = cluster({consecutive5xxErrors: 1, maxEjectionPercent: 100}, 3)
    c.outlier!.putResult(c.hosts[0].key, 503)
    const picks = new Set(Array.from({length: 60}, () => c.pick(undefined)!.key))
    expect(picks.has(c.hosts[0].key)).toBe(false)
    expect(picks.size).toBe(2)
    c.close()
  })

  it('panics below minHealthPercent: ejected hosts get traffic again', () => {
    const {c} = cluster({consecutive5xxErrors: 1, maxEjectionPercent: 100, minHealthPercent: 50}, 3)
    c.outlier!.putResult(c.hosts[0].key, 503) // 67% healthy ≥ 50: no panic
    expect(c.panic).toBe(false)
    c.outlier!.putResult(c.hosts[1].key, 503) // 33% healthy < 50: panic, all hosts eligible
    expect(c.panic).toBe(true)
    const picks = new Set(Array.from({length: 90}, () => c.pick(undefined)!.key))
    expect(picks.size).toBe(3)
    c.close()
  })

  it('keeps a host’s outlier state across an endpoint update that keeps the host', () => {
    const {c} = cluster({consecutive5xxErrors: 1, maxEjectionPercent: 100}, 3)
    c.outlier!.putResult(c.hosts[0].key, 503)
    c.updateEndpoints({...c.spec, endpoints: c.spec.endpoints.slice(0, 2)})
    expect(c.hosts[0].monitor!.ejected).toBe(true)
    expect(c.hosts).toHaveLength(2)
    c.close()
  })

  it('a cluster without outlierDetection never ejects', () => {
    const spec: ClusterSpec = {name: 'c', kind: 'outbound', host: 'h', port: 1, policy: PLAIN_POLICY, endpoints: [{endpoint: ep(0), address: ep(0).address, port: 1}]}
    const c = new Cluster(spec, {clock: new FakeClock(), random: Math.random, stats: emptyClusterStats})
    expect(c.outlier).toBeUndefined()
    expect(c.pick(undefined)?.key).toBe(`${ep(0).address}:1`)
  })
})
