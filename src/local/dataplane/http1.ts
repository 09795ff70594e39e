// A small HTTP/1.1 client codec for upstream connections: serialises one request at a time and
// parses the response (status line, headers, body framed by content-length, chunked encoding or
// connection close; no body for HEAD, 1xx, 204, 304). It exists for speed: on this project's
// 2-core machines undici's client cost about twice the CPU per proxied request (ADR-0041).
// Pure over a byte stream: feed() takes whatever the socket delivered; callbacks report events.

export interface ResponseHandler {
  /** status and headers; rawHeaders is a flat [name, value, …] list in wire case. Return false to pause. */
  onHeaders(status: number, rawHeaders: string[], resume: () => void, statusText: string): boolean
  /** a piece of the (de-chunked) body; `final` when it completes the body (onComplete follows at once). Return false to pause until resume(). */
  onData(chunk: Buffer, final: boolean): boolean
  onComplete(): void
  onError(err: Error): void
}

export interface RequestHead {
  method: string
  /** origin-form target: /path?query */
  path: string
  /** flat [name, value, …]; must include host */
  headers: string[]
  body: Buffer | null
  /** ask the server to close after this response (Connection: close) */
  close?: boolean
}

export class ProtocolError extends Error {
  readonly code = 'UPSTREAM_PROTOCOL_ERROR'
}

const MAX_HEAD = 64 * 1024
const CRLF = Buffer.from('\r\n')

/** Serialises a request head (latin1 string) — the body, if any, is written after it. */
export function serializeRequest(req: RequestHead): string {
  let s = `${req.method} ${req.path} HTTP/1.1\r\n`
  const h = req.headers
  for (let i = 0; i < h.length; i += 2) s += `${h[i]}: ${h[i + 1]}\r\n`
  if (req.body !== null && req.body !== undefined) s += `content-length: ${req.body.length}\r\n`
  else if (req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH') s += 'content-length: 0\r\n'
  if (req.close) s += 'connection: close\r\n'
  return s + '\r\n'
}

type State = 'idle' | 'head' | 'length' | 'chunk-size' | 'chunk-data' | 'chunk-data-crlf' | 'trailers' | 'until-close' | 'done'

/**
 * Response parser for one connection. Call begin() before each request, feed() with socket
 * data, end() when the socket reports EOF.
 */
export class ResponseParser {
  private state: State = 'idle'
  private handler: ResponseHandler | undefined
  private remaining = 0
  private noBody = false
  private paused = false
  private backlog: Buffer | undefined
  /** the connection may carry another request after this response */
  keepAlive = true
  /** server's Keep-Alive timeout hint in ms, if it sent one */
  keepAliveHintMs: number | undefined

  constructor(
    private pause: () => void,
    private unpause: () => void,
    /** a protocol error with no request to blame (bytes after a complete response): drop the connection */
    private onOrphanError: (err: Error) => void = () => {},
  ) {}

  get busy(): boolean {
    return this.state !== 'idle' && this.state !== 'done'
  }

  begin(handler: ResponseHandler, method: string): void {
    this.handler = handler
    this.state = 'head'
    this.prefix = undefined
    this.noBody = method === 'HEAD'
    this.keepAlive = true
  }

  private resume = (): void => {
    if (!this.paused) return
    this.paused = false
    this.unpause()
    const b = this.backlog
    this.backlog = undefined
    if (b && b.length > 0) this.feed(b)
  }

  /** Bytes of an incomplete framing token (head, chunk-size line, CRLF, trailer line) kept for the next read. */
  private prefix: Buffer | undefined

  /** Takes whatever the socket delivered. */
  feed(data: Buffer): void {
    if (this.paused) {
      this.backlog = this.backlog ? Buffer.concat([this.backlog, data]) : data
      return
    }
    let buf = data
    if (this.prefix) {
      buf = Buffer.concat([this.prefix, data])
      this.prefix = undefined
    }
    while (buf.length > 0) {
      switch (this.state) {
        case 'idle':
        case 'done':
          this.fail(new ProtocolError('upstream sent data with no request outstanding'))
          return
        case 'head': {
          const end = buf.indexOf('\r\n\r\n')
          if (end < 0) {
            if (buf.length > MAX_HEAD) return this.fail(new ProtocolError('upstream response head too large'))
            this.prefix = buf
            return
          }
          const text = buf.toString('latin1', 0, end)
          buf = buf.subarray(end + 4)
          if (!this.onHead(text)) return
          if (this.paused) return this.stash(buf)
          continue
        }
        case 'length': {
          const n = Math.min(this.remaining, buf.length)
          const piece = n === buf.length ? buf : buf.subarray(0, n)
          buf = n === buf.length ? EMPTY : buf.subarray(n)
          this.remaining -= n
          const more = this.handler!.onData(piece, this.remaining === 0)
          if (this.remaining === 0) this.complete()
          else if (more === false) return this.doPause(buf)
          continue
        }
        case 'until-close': {
          if (this.handler!.onData(buf, false) === false) this.doPause(EMPTY)
          return
        }
        case 'chunk-size': {
          const nl = buf.indexOf(CRLF)
          if (nl < 0) {
            if (buf.length > 1024) return this.fail(new ProtocolError('chunk size line too long'))
            this.prefix = buf
            return
          }
          const line = buf.toString('latin1', 0, nl)
          buf = buf.subarray(nl + 2)
          const semi = line.indexOf(';')
          const hex = (semi < 0 ? line : line.slice(0, semi)).trim()
          if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) return this.fail(new ProtocolError(`bad chunk size ${JSON.stringify(hex)}`))
          const size = parseInt(hex, 16)
          if (size === 0) this.state = 'trailers'
          else {
            this.remaining = size
            this.state = 'chunk-data'
          }
          continue
        }
        case 'chunk-data': {
          const n = Math.min(this.remaining, buf.length)
          const piece = n === buf.length ? buf : buf.subarray(0, n)
          buf = n === buf.length ? EMPTY : buf.subarray(n)
          this.remaining -= n
          if (this.remaining === 0) this.state = 'chunk-data-crlf'
          if (this.handler!.onData(piece, false) === false) return this.doPause(buf)
          continue
        }
        case 'chunk-data-crlf': {
          if (buf.length < 2) {
            if (buf[0] !== 13) return this.fail(new ProtocolError('missing CRLF after chunk data'))
            this.prefix = buf
            return
          }
          if (buf[0] !== 13 || buf[1] !== 10) return this.fail(new ProtocolError('missing CRLF after chunk data'))
          buf = buf.subarray(2)
          this.state = 'chunk-size'
          continue
        }
        case 'trailers': {
          // trailer fields end with an empty line; they are dropped (HTTP/1.1 clients downstream get none)
          const nl = buf.indexOf(CRLF)
          if (nl < 0) {
            if (buf.length > MAX_HEAD) return this.fail(new ProtocolError('trailers too large'))
            this.prefix = buf
            return
          }
          buf = buf.subarray(nl + 2)
          if (nl === 0) this.complete()
          continue
        }
      }
    }
  }

  private stash(rest: Buffer): void {
    if (rest.length > 0) this.backlog = this.backlog ? Buffer.concat([rest, this.backlog]) : rest
  }

  private doPause(rest: Buffer): void {
    this.paused = true
    this.stash(rest)
    this.pause()
  }

  /** Parses the status line and headers; returns false when the response was rejected. */
  private onHead(text: string): boolean {
    let eol = text.indexOf('\r\n')
    const sl = eol < 0 ? text : text.slice(0, eol)
    // HTTP/1.x DDD[ reason]
    const ok = sl.length >= 12 && sl.startsWith('HTTP/1.') && (sl[7] === '0' || sl[7] === '1') && sl[8] === ' ' && (sl.length === 12 || sl[12] === ' ') && isDigit(sl, 9) && isDigit(sl, 10) && isDigit(sl, 11)
    const status = ok ? Number(sl.slice(9, 12)) : 0
    if (status < 100) {
      this.fail(new ProtocolError(`bad status line ${JSON.stringify(sl.slice(0, 80))}`))
      return false
    }
    const http10 = sl[7] === '0'
    const reason = sl.length > 13 ? sl.slice(13) : ''
    const raw: string[] = []
    let length = -1
    let chunked = false
    let connClose = http10
    while (eol >= 0) {
      const start = eol + 2
      eol = text.indexOf('\r\n', start)
      const end = eol < 0 ? text.length : eol
      const c = text.indexOf(':', start)
      if (c <= start || c >= end) {
        this.fail(new ProtocolError(`bad header line ${JSON.stringify(text.slice(start, Math.min(end, start + 80)))}`))
        return false
      }
      const name = text.slice(start, c)
      let vs = c + 1
      while (vs < end && (text.charCodeAt(vs) === 32 || text.charCodeAt(vs) === 9)) vs++
      let ve = end
      while (ve > vs && (text.charCodeAt(ve - 1) === 32 || text.charCodeAt(ve - 1) === 9)) ve--
      const value = text.slice(vs, ve)
      raw.push(name, value)
      switch (name.length) {
        case 10:
          if (name.toLowerCase() === 'connection') {
            const v = value.toLowerCase()
            if (v.includes('close')) connClose = true
            else if (http10 && v.includes('keep-alive')) connClose = false
          } else if (name.toLowerCase() === 'keep-alive') {
            const t = /timeout=(\d+)/i.exec(value)
            if (t) this.keepAliveHintMs = Number(t[1]) * 1000
          }
          break
        case 14:
          if (name.toLowerCase() === 'content-length') {
            const n = Number(value)
            if (value === '' || !Number.isSafeInteger(n) || n < 0 || (length >= 0 && n !== length)) {
              this.fail(new ProtocolError(`bad content-length ${JSON.stringify(value)}`))
              return false
            }
            length = n
          }
          break
        case 17:
          if (name.toLowerCase() === 'transfer-encoding') chunked = value.toLowerCase().split(',').pop()!.trim() === 'chunked'
          break
      }
    }
    if (status >= 100 && status < 200) {
      // informational (100 Continue, 103 Early Hints): the real response follows
      this.state = 'head'
      return true
    }
    this.keepAlive = !connClose
    const h = this.handler!
    const more = h.onHeaders(status, raw, this.resume, reason)
    if (this.noBody || status === 204 || status === 304) {
      this.complete()
      return true
    }
    if (chunked) this.state = 'chunk-size'
    else if (length >= 0) {
      this.remaining = length
      this.state = 'length'
      if (length === 0) {
        this.complete()
        return true
      }
    } else {
      this.state = 'until-close'
      this.keepAlive = false
    }
    if (more === false) {
      this.paused = true
      this.pause()
    }
    return true
  }

  private complete(): void {
    this.state = 'done'
    const h = this.handler!
    this.handler = undefined
    h.onComplete()
  }

  /** The socket reached EOF: completes a read-until-close body, otherwise the response was cut. */
  end(): void {
    if (this.state === 'until-close') {
      this.keepAlive = false
      this.complete()
      return
    }
    if (this.busy) this.fail(new ProtocolError('upstream closed the connection before the response was complete'))
  }

  /** Reports an error to the current handler (once). */
  fail(err: Error): void {
    const h = this.handler
    this.handler = undefined
    this.state = 'done'
    this.keepAlive = false
    if (h) h.onError(err)
    else this.onOrphanError(err)
  }
}

const EMPTY = Buffer.alloc(0)

const isDigit = (s: string, i: number): boolean => {
  const c = s.charCodeAt(i)
  return c >= 48 && c <= 57
}
