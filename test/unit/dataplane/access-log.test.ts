import {afterEach, describe, expect, it, vi} from 'vitest'
import {AccessLogger, type AccessLogEntry} from '../../../src/local/dataplane/telemetry.js'

const entry = (path: string): AccessLogEntry => ({
  startTime: Date.UTC(2026, 10, 22, 12, 0, 0),
  method: 'GET',
  path,
  protocol: 'HTTP/1.1',
  code: 200,
  flags: 0,
  details: 'via_upstream',
  bytesReceived: 0,
  bytesSent: 44,
  durationMs: 1,
  downstreamLocalAddress: '127.0.0.1:8080',
  downstreamRemoteAddress: '127.0.0.1:50000',
})

function sink() {
  const writes: string[] = []
  return {writes, stream: {write: (s: string) => (writes.push(s), true)} as never}
}

afterEach(() => vi.useRealTimers())

describe('access log', () => {
  it('without a flush interval every request is written as it finishes', () => {
    const s = sink()
    const log = new AccessLogger({stream: s.stream})
    log.log(entry('/a'))
    log.log(entry('/b'))
    expect(s.writes).toHaveLength(2)
    expect(s.writes[0]).toMatch(/^\[2026-11-22T12:00:00.000Z\] "GET \/a HTTP\/1.1" 200 - via_upstream /)
  })

  it('with a flush interval, lines are held and written together once the interval has passed', () => {
    vi.useFakeTimers()
    const s = sink()
    const log = new AccessLogger({stream: s.stream, flushIntervalMs: 100})
    for (let i = 0; i < 50; i++) log.log(entry(`/r${i}`))
    expect(s.writes).toHaveLength(0)
    vi.advanceTimersByTime(99)
    expect(s.writes).toHaveLength(0)
    vi.advanceTimersByTime(1)
    expect(s.writes).toHaveLength(1)
    const lines = s.writes[0].trimEnd().split('\n')
    expect(lines).toHaveLength(50)
    expect(lines.map((l) => / "GET (\S+) /.exec(l)?.[1])).toEqual(Array.from({length: 50}, (_, i) => `/r${i}`))
  })

  it('writes at once when 64 KiB are held, and flush() writes what is left (as the proxy does on close)', () => {
    vi.useFakeTimers()
    const s = sink()
    const log = new AccessLogger({stream: s.stream, flushIntervalMs: 60_000})
    const long = `/${'x'.repeat(1000)}`
    let n = 0
    while (s.writes.length === 0) {
      log.log(entry(long))
      n++
    }
    expect(s.writes[0].length).toBeGreaterThanOrEqual(64 * 1024)
    expect(s.writes[0].split('\n').length - 1).toBe(n)
    log.log(entry('/last'))
    log.flush()
    expect(s.writes).toHaveLength(2)
    expect(s.writes[1]).toContain('"GET /last HTTP/1.1"')
    log.flush()
    expect(s.writes).toHaveLength(2) // nothing held, nothing written
  })
})
