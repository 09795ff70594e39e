import {describe, expect, it} from 'vitest'
import {ResponseParser, serializeRequest, type ResponseHandler} from '../../../src/local/dataplane/http1.js'

interface Seen {
  status?: number
  headers?: string[]
  body: Buffer[]
  complete: boolean
  error?: Error
}

function parserFor(method = 'GET', pauseOnData = false) {
  const seen: Seen = {body: [], complete: false}
  let paused = 0
  const p = new ResponseParser(
    () => paused++,
    () => paused--,
  )
  let resumeFn: (() => void) | undefined
  const h: ResponseHandler = {
    onHeaders(status, raw, resume) {
      seen.status = status
      seen.headers = raw
      resumeFn = resume
      return true
    },
    onData(c) {
      seen.body.push(Buffer.from(c))
      return !pauseOnData
    },
    onComplete() {
      seen.complete = true
    },
    onError(e) {
      seen.error = e
    },
  }
  p.begin(h, method)
  return {p, seen, resume: () => resumeFn?.(), paused: () => paused}
}

const body = (s: Seen) => Buffer.concat(s.body).toString()

/** Feeds `wire` split at every possible position (and byte by byte) and checks each run. */
function everySplit(wire: string, check: (s: Seen, p: ResponseParser) => void, method = 'GET') {
  const buf = Buffer.from(wire, 'latin1')
  for (let cut = 0; cut <= buf.length; cut++) {
    const {p, seen} = parserFor(method)
    if (cut > 0) p.feed(buf.subarray(0, cut))
    if (cut < buf.length) p.feed(buf.subarray(cut))
    check(seen, p)
  }
  const {p, seen} = parserFor(method)
  for (const b of buf) p.feed(Buffer.from([b]))
  check(seen, p)
}

describe('HTTP/1.1 response parser', () => {
  it('frames a content-length body however the bytes are split', () => {
    everySplit('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world', (s, p) => {
      expect(s.error).toBeUndefined()
      expect(s.status).toBe(200)
      expect(s.headers).toEqual(['Content-Type', 'text/plain', 'Content-Length', '11'])
      expect(body(s)).toBe('hello world')
      expect(s.complete).toBe(true)
      expect(p.keepAlive).toBe(true)
    })
  })

  it('decodes chunked bodies (with extensions and trailers) however the bytes are split', () => {
    const wire = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n'
    everySplit(wire, (s) => {
      expect(s.error).toBeUndefined()
      expect(body(s)).toBe('hello world')
      expect(s.complete).toBe(true)
    })
  })

  it('gives HEAD, 204 and 304 responses no body even with a content-length', () => {
    for (const [wire, method] of [
      ['HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n', 'HEAD'],
      ['HTTP/1.1 204 No Content\r\n\r\n', 'GET'],
      ['HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n', 'GET'],
    ] as const) {
      const {p, seen} = parserFor(method)
      p.feed(Buffer.from(wire))
      expect(seen.complete).toBe(true)
      expect(seen.body).toHaveLength(0)
      expect(p.keepAlive).toBe(true)
    }
  })

  it('skips informational responses and reports the final one', () => {
    everySplit('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok', (s) => {
      expect(s.status).toBe(201)
      expect(body(s)).toBe('ok')
      expect(s.complete).toBe(true)
    })
  })

  it('reads until close when there is no framing, and then the connection is not reusable', () => {
    const {p, seen} = parserFor()
    p.feed(Buffer.from('HTTP/1.1 200 OK\r\n\r\npart one '))
    p.feed(Buffer.from('part two'))
    expect(seen.complete).toBe(false)
    p.end()
    expect(seen.complete).toBe(true)
    expect(body(seen)).toBe('part one part two')
    expect(p.keepAlive).toBe(false)
  })

  it('honours Connection: close, HTTP/1.0 defaults and the Keep-Alive timeout hint', () => {
    const a = parserFor()
    a.p.feed(Buffer.from('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'))
    expect(a.p.keepAlive).toBe(false)
    const b = parserFor()
    b.p.feed(Buffer.from('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n'))
    expect(b.p.keepAlive).toBe(false)
    const c = parserFor()
    c.p.feed(Buffer.from('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n'))
    expect(c.p.keepAlive).toBe(true)
    const d = parserFor()
    d.p.feed(Buffer.from('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n'))
    expect(d.p.keepAliveHintMs).toBe(5000)
  })

  it('reports a response cut short by the upstream as an error, not a short body', () => {
    const {p, seen} = parserFor()
    p.feed(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'))
    p.end()
    expect(seen.complete).toBe(false)
    expect(seen.error?.message).toMatch(/before the response was complete/)
  })

  it('rejects malformed responses', () => {
    for (const wire of ['HTTP/2 200\r\n\r\n', 'HTTP/1.1 200 OK\r\nBadHeader\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n']) {
      const {p, seen} = parserFor()
      p.feed(Buffer.from(wire))
      expect(seen.error, wire).toBeDefined()
      expect(seen.complete).toBe(false)
    }
  })

  it('treats bytes after a complete response as a broken connection', () => {
    const orphan: Error[] = []
    const p = new ResponseParser(
      () => {},
      () => {},
      (e) => orphan.push(e),
    )
    let complete = false
    let err: Error | undefined
    p.begin({onHeaders: () => true, onData: () => true, onComplete: () => (complete = true), onError: (e) => (err = e)}, 'GET')
    p.feed(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n'))
    expect(complete).toBe(true)
    expect(err).toBeUndefined()
    expect(orphan.map((e) => e.message)).toEqual(['upstream sent data with no request outstanding'])
    expect(p.keepAlive).toBe(false)
  })

  it('pauses when the handler applies backpressure and resumes with the rest', () => {
    const {p, seen, resume, paused} = parserFor('GET', true)
    p.feed(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n'))
    expect(body(seen)).toBe('abc')
    expect(paused()).toBe(1)
    resume()
    expect(body(seen)).toBe('abcdef')
    resume()
    expect(seen.complete).toBe(true)
    expect(paused()).toBe(0)
  })
})

describe('request serialisation', () => {
  it('writes the request line, headers and a content-length for bodies', () => {
    expect(serializeRequest({method: 'GET', path: '/hello?x=1', headers: ['host', 'hello:5000', 'x-request-id', 'abc'], body: null})).toBe('GET /hello?x=1 HTTP/1.1\r\nhost: hello:5000\r\nx-request-id: abc\r\n\r\n')
    expect(serializeRequest({method: 'POST', path: '/', headers: ['host', 'h'], body: Buffer.from('12345'), close: true})).toBe('POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 5\r\nconnection: close\r\n\r\n')
    expect(serializeRequest({method: 'POST', path: '/', headers: ['host', 'h'], body: null})).toContain('content-length: 0\r\n')
  })
})
