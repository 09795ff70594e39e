// The default canary gate against a local HTTP server standing in for the ingress.
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {splitGate} from '../../../src/lab/canary-run.js'
import {fakeLab} from './fake-cluster.js'

let server: http.Server
let base = ''
let mode: 'v1' | 'errors' | 'slow' = 'v1'
let n = 0

beforeAll(async () => {
  server = http.createServer((req, res) => {
    n++
    if (mode === 'errors' && n % 5 === 0) {
      res.statusCode = 503
      res.end('no healthy upstream')
      return
    }
    const reply = () => res.end(`Hello version: v1, instance: hello-v1-x\n`)
    if (mode === 'slow') setTimeout(reply, 20)
    else reply()
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(() => new Promise((r) => server.close(r)))

describe('splitGate', () => {
  it('passes an exact 100/0 split measured through the ingress /hello', async () => {
    mode = 'v1'
    const {lab, target} = fakeLab()
    target.ingress = base
    const g = await splitGate(lab, {v1: 100, v2: 0}, {maxRequests: 400})
    expect(g.verdict).toBe('pass')
    expect(g.observedV2Share).toBe(0)
    expect(g.errors).toBe(0)
  })

  it('fails on an error rate above the limit, and on a p99 above the limit', async () => {
    const {lab, target} = fakeLab()
    target.ingress = base
    mode = 'errors'
    const e = await splitGate(lab, {v1: 100, v2: 0}, {maxRequests: 300, maxErrorRate: 0.05})
    expect(e.verdict).toBe('fail')
    expect(e.reason).toMatch(/were errors/)
    expect(e.errorRate).toBeGreaterThan(0.15)
    mode = 'slow'
    const s = await splitGate(lab, {v1: 100, v2: 0}, {maxRequests: 250, maxP99Ms: 1})
    expect(s.verdict).toBe('fail')
    expect(s.reason).toMatch(/p99 latency .* above the limit 1 ms/)
  })
})
