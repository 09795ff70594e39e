import http from 'node:http'
import {describe, expect, it} from 'vitest'
import {fortioClose, fortioDelayMs, fortioEffectiveQuery, fortioSize, fortioStatus, helloworldHandler} from '../../../src/local/runtime/apps.js'
import {appPort} from '../../../src/local/runtime/paths.js'
import {probeTarget, probeTiming} from '../../../src/local/runtime/probe.js'
import {APP_PORT_OFFSET} from '../../../src/local/dataplane/snapshot.js'

const fixed = (v: number) => () => v

describe('fortio echo parameters', () => {
  it('uses the default params only when the request has no query string', () => {
    expect(fortioEffectiveQuery('/anything', 'status=503').get('status')).toBe('503')
    expect(fortioEffectiveQuery('/anything?status=200', 'status=503').get('status')).toBe('200')
    // a bare `?` is a query string too: no defaults, no status → 200
    expect(fortioEffectiveQuery('/x?', 'status=503').get('status')).toBeNull()
  })

  it('picks status codes from percentage lists, 200 for the remainder, 400 for bad input', () => {
    expect(fortioStatus('503')).toBe(503)
    expect(fortioStatus('')).toBe(200)
    expect(fortioStatus('503:30,429:20', fixed(10))).toBe(503)
    expect(fortioStatus('503:30,429:20', fixed(40))).toBe(429)
    expect(fortioStatus('503:30,429:20', fixed(70))).toBe(200)
    expect(fortioStatus('abc')).toBe(400)
    expect(fortioStatus('503:70,500:40')).toBe(400)
  })

  it('caps delays at -max-echo-delay and reads sizes and close', () => {
    expect(fortioDelayMs('100ms', 1500)).toBe(100)
    expect(fortioDelayMs('10s', 1500)).toBe(1500)
    expect(fortioDelayMs('1s:50', 1500, fixed(80))).toBe(0)
    expect(fortioSize('')).toBe(-1)
    expect(fortioSize('1024')).toBe(1024)
    expect(fortioClose('true')).toBe(true)
    expect(fortioClose('')).toBe(false)
  })
})

describe('helloworld handler', () => {
  const call = async (method: string, path: string) => {
    const server = http.createServer(helloworldHandler({kind: 'helloworld', version: 'v1', instance: 'hello-v1-x'}))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
    const {port} = server.address() as {port: number}
    try {
      const res = await fetch(`http://127.0.0.1:${port}${path}`, {method})
      return {status: res.status, body: await res.text()}
    } finally {
      server.close()
    }
  }

  it('answers like Istio\'s helloworld', async () => {
    expect(await call('GET', '/hello')).toEqual({status: 200, body: 'Hello version: v1, instance: hello-v1-x\n'})
    expect(await call('GET', '/hello?x=1')).toEqual({status: 200, body: 'Hello version: v1, instance: hello-v1-x\n'})
    expect(await call('GET', '/health')).toEqual({status: 200, body: 'Helloworld is healthy'})
    expect((await call('GET', '/')).status).toBe(404)
    expect((await call('GET', '/hello/')).status).toBe(404)
    expect((await call('POST', '/hello')).status).toBe(405)
  })
})

describe('probes', () => {
  it('probe the app port, shifted by the offset when a sidecar owns the container port', () => {
    expect(appPort(5000, true)).toBe(5000 + APP_PORT_OFFSET)
    expect(probeTarget({httpGet: {path: '/health', port: 5000}}, '127.9.9.9', true)).toEqual({host: '127.9.9.9', port: 35000, path: '/health'})
    expect(probeTarget({tcpSocket: {port: 5000}}, '127.9.9.9', false)).toEqual({host: '127.9.9.9', port: 5000})
    expect(probeTarget({}, '127.9.9.9', false)).toBeUndefined()
  })

  it('keep Kubernetes defaults but probe at least every 2 s', () => {
    expect(probeTiming({})).toEqual({initialDelayMs: 0, periodMs: 2000, timeoutMs: 1000, failureThreshold: 3})
    expect(probeTiming({periodSeconds: 1, initialDelaySeconds: 3, failureThreshold: 1, timeoutSeconds: 2})).toEqual({initialDelayMs: 3000, periodMs: 1000, timeoutMs: 2000, failureThreshold: 1})
    expect(probeTiming({periodSeconds: 30}).periodMs).toBe(2000)
  })
})
