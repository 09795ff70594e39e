// Load engine and split check against a local node:http server on loopback that answers
// helloworld bodies in a known, deterministic ratio.
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {MeshError} from '../../../src/lib/errors.js'
import {runLoad} from '../../../src/checks/load.js'
import {runSplitCheck, splitCheckResult, splitReportSections} from '../../../src/checks/split.js'

// per-path counters so tests don't disturb each other's ratios
const counters = new Map<string, number>()
const server = http.createServer((req, res) => {
  const path = (req.url ?? '/').split('?')[0]
  const i = counters.get(path) ?? 0
  counters.set(path, i + 1)
  if (path === '/ten') return res.end(i % 10 === 0 ? 'Hello version: v2, instance: hello-v2-1\n' : 'Hello version: v1, instance: hello-v1-1\n')
  if (path === '/v1') return res.end('Hello version: v1, instance: hello-v1-1\n')
  if (path === '/mixed') {
    // 1 in 5 answers 503; the rest alternate v1/v2
    if (i % 5 === 4) {
      res.statusCode = 503
      return res.end('no healthy upstream')
    }
    res.setHeader('x-envoy-response-flags', i % 5 === 0 ? 'UH' : '-')
    return res.end(i % 2 === 0 ? 'Hello version: v1\n' : 'Hello version: v2\n')
  }
  if (path === '/denied') {
    res.statusCode = 403
    return res.end('RBAC: access denied')
  }
  res.statusCode = 404
  res.end('not found')
})
let base = ''
let closedPort = 0

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  // a port that was just free and is now closed: connections are refused
  const probe = http.createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  closedPort = (probe.address() as AddressInfo).port
  await new Promise<void>((resolve) => probe.close(() => resolve()))
})

afterAll(async () => {
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

describe('runLoad', () => {
  it('classifies every response by version and counts them exactly', async () => {
    const r = await runLoad({url: `${base}/ten`, connections: 4, amount: 400})
    expect(r.classes).toEqual({v1: 360, v2: 40})
    expect(r.statuses).toEqual({'200': 400})
    expect(r.completed).toBe(400)
    expect(r.errors).toBe(0)
    expect(r.stopReason).toBe('complete')
    expect(r.requestsPerSec).toBeGreaterThan(0)
  })

  it('measures latency with sub-millisecond resolution', async () => {
    const r = await runLoad({url: `${base}/ten`, connections: 2, amount: 300})
    const l = r.latencyMs
    expect(l.count).toBe(300)
    expect(l.p50).toBeGreaterThan(0)
    expect(l.p50).toBeLessThanOrEqual(l.p90)
    expect(l.p90).toBeLessThanOrEqual(l.p99)
    expect(l.p99).toBeLessThanOrEqual(l.p999)
    // not whole milliseconds, as autocannon's own histogram would give
    expect([l.min, l.p50, l.p90, l.p99].some((v) => !Number.isInteger(v))).toBe(true)
    expect(r.latencyHistogram.reduce((s, b) => s + b.count, 0)).toBe(300)
    for (const b of r.latencyHistogram) expect(b.hiMs).toBeGreaterThan(b.loMs)
  })

  it('counts 5xx, other statuses and response flags separately', async () => {
    const r = await runLoad({url: `${base}/mixed`, connections: 1, amount: 100})
    expect(r.classes['5xx']).toBe(20)
    expect((r.classes.v1 ?? 0) + (r.classes.v2 ?? 0)).toBe(80)
    expect(r.statuses).toEqual({'200': 80, '503': 20})
    expect(r.responseFlags.UH).toBe(20)
    const denied = await runLoad({url: `${base}/denied`, connections: 1, amount: 10})
    expect(denied.classes).toEqual({'4xx': 10})
  })

  it('uses a custom classifier with status, body and headers', async () => {
    const seen: string[] = []
    const r = await runLoad({
      url: `${base}/mixed`,
      connections: 1,
      amount: 10,
      classify: (status, body, headers) => {
        seen.push(String(headers['content-length']))
        return status === 200 ? body.trim().slice(-2) : 'down'
      },
    })
    expect(Object.keys(r.classes).sort()).toEqual(['down', 'v1', 'v2'])
    expect(seen.every((s) => Number(s) > 0)).toBe(true)
  })

  it('counts refused connections as errors instead of throwing', async () => {
    const r = await runLoad({url: `http://127.0.0.1:${closedPort}/`, connections: 2, amount: 10})
    expect(r.completed).toBe(0)
    expect(r.errors).toBeGreaterThan(0)
    expect(r.classes.error).toBe(r.errors)
    expect(r.firstError).toMatch(/ECONNREFUSED/)
  })

  it('stops as soon as stopWhen says so', async () => {
    const r = await runLoad({
      url: `${base}/ten`,
      connections: 4,
      amount: 50_000,
      checkEvery: 100,
      stopWhen: (c) => c.completed >= 300,
    })
    expect(r.stopReason).toBe('stopWhen')
    expect(r.completed).toBeGreaterThanOrEqual(300)
    expect(r.completed).toBeLessThan(50_000)
  })

  it('stops on an abort signal and reports progress', async () => {
    const ac = new AbortController()
    const snapshots: number[] = []
    const r = await runLoad({
      url: `${base}/ten`,
      connections: 2,
      durationSec: 30,
      progressIntervalMs: 50,
      onProgress: (s) => {
        snapshots.push(s.completed)
        if (s.completed > 0) ac.abort()
      },
      signal: ac.signal,
    })
    expect(r.stopReason).toBe('aborted')
    expect(snapshots.length).toBeGreaterThan(0)
    expect(r.durationSec).toBeLessThan(30)
  })

  it('rejects unbounded or malformed options with codes', async () => {
    await expect(runLoad({url: `${base}/ten`})).rejects.toMatchObject({code: 'MESH_LOAD_UNBOUNDED', exit: 65})
    await expect(runLoad({url: 'not a url', amount: 1})).rejects.toMatchObject({code: 'MESH_INVALID_URL'})
    await expect(runLoad({url: `${base}/ten`, amount: 10, connections: 0})).rejects.toMatchObject({code: 'MESH_INVALID_CONNECTIONS'})
    await expect(runLoad({url: `${base}/ten`, durationSec: -1})).rejects.toBeInstanceOf(MeshError)
  })
})

describe('runSplitCheck against a local server', () => {
  it('passes a 90/10 server when 90/10 is expected and stops early', async () => {
    const o = await runSplitCheck({url: `${base}/ten`, expectedV2Share: 10, maxRequests: 20_000, connections: 4})
    expect(o.decision.verdict).toBe('pass')
    expect(o.decision.requests).toBeLessThan(20_000)
    expect(o.load.stopReason).toBe('stopWhen')
    expect(o.history.length).toBeGreaterThan(1)
    expect(o.history.at(-1)?.interval).toEqual(o.decision.interval)
    const check = splitCheckResult(o)
    expect(check.status).toBe('pass')
    expect(check.description).toBe('traffic split matches v1/v2 90/10')
    const sections = splitReportSections(o)
    expect(sections.split?.points.length).toBe(o.history.length)
    expect(sections.latency?.buckets.length).toBeGreaterThan(0)
  })

  it('fails when the weights differ from the expectation', async () => {
    const o = await runSplitCheck({url: `${base}/ten`, expectedV2Share: 30, maxRequests: 20_000, connections: 4})
    expect(o.decision.verdict).toBe('fail')
    expect(o.decision.interval[1]).toBeLessThan(30)
    expect(splitCheckResult(o).status).toBe('fail')
  })

  it('is inconclusive with a tiny budget', async () => {
    const o = await runSplitCheck({url: `${base}/ten`, expectedV2Share: 10, maxRequests: 100, connections: 2})
    expect(o.decision.verdict).toBe('inconclusive')
    expect(o.decision.requests).toBe(100)
  })

  it('runs the exact 100/0 check', async () => {
    const o = await runSplitCheck({url: `${base}/v1`, expectedV2Share: 0, maxRequests: 1000, connections: 2})
    expect(o.decision.verdict).toBe('pass')
    expect(o.decision.v2).toBe(0)
    const wrong = await runSplitCheck({url: `${base}/ten`, expectedV2Share: 0, maxRequests: 1000, connections: 2})
    expect(wrong.decision.verdict).toBe('fail')
  })

  it('validates the test before sending any traffic', async () => {
    const before = counters.get('/ten') ?? 0
    await expect(runSplitCheck({url: `${base}/ten`, expectedV2Share: 10, tolerance: 0, maxRequests: 100})).rejects.toMatchObject({
      code: 'MESH_INVALID_TOLERANCE',
    })
    expect(counters.get('/ten') ?? 0).toBe(before)
  })
})
