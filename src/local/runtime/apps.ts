// Behaviours of the emulated images: request handlers for their listeners and the one-shot
// curl client. Used only inside the pod process (pod-main.ts).

import http from 'node:http'
import net from 'node:net'
import {parseGoDuration, type Behaviour, type CurlRequest} from './images.js'

export type RequestHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void

// ---------------------------------------------------------------------------------------------
// helloworld: Flask routes /hello and /health (GET/HEAD/OPTIONS), served by gunicorn

const HELLO_ALLOW = 'GET, HEAD, OPTIONS'

export function helloworldHandler(b: Extract<Behaviour, {kind: 'helloworld'}>): RequestHandler {
  const hello = `Hello version: ${b.version}, instance: ${b.instance}\n`
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    const body = path === '/hello' ? hello : path === '/health' ? 'Helloworld is healthy' : undefined
    res.setHeader('Server', 'gunicorn')
    if (body === undefined) {
      send(res, 404, 'text/html; charset=utf-8', '<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n', req.method === 'HEAD')
      return
    }
    if (req.method === 'OPTIONS') {
      res.setHeader('Allow', HELLO_ALLOW)
      send(res, 200, 'text/html; charset=utf-8', '', false)
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', HELLO_ALLOW)
      send(res, 405, 'text/html; charset=utf-8', '<!doctype html>\n<html lang=en>\n<title>405 Method Not Allowed</title>\n<h1>Method Not Allowed</h1>\n', false)
      return
    }
    send(res, 200, 'text/html; charset=utf-8', body, req.method === 'HEAD')
  }
}

function send(res: http.ServerResponse, status: number, contentType: string, body: string | Buffer, headOnly: boolean): void {
  const buf = typeof body === 'string' ? Buffer.from(body) : body
  res.statusCode = status
  if (contentType) res.setHeader('Content-Type', contentType)
  res.setHeader('Content-Length', buf.length)
  res.end(headOnly ? undefined : buf)
}

// ---------------------------------------------------------------------------------------------
// fortio echo: ?status=, ?delay=, ?size=, ?header=, ?close= with fortio's percentage lists

type Roll = () => number // uniform in [0, 100)

const defaultRoll: Roll = () => Math.random() * 100

interface Weighted<T> {
  entries: Array<{value: T; cumulative: number}>
}

/** `v` or `v1:p1,v2:p2` (percentages, may end in %); undefined when malformed. */
function parseWeighted<T>(input: string, parseValue: (s: string) => T | undefined): T | Weighted<T> | undefined {
  if (!input.includes(':') && !input.includes(',')) return parseValue(input)
  const entries: Array<{value: T; cumulative: number}> = []
  let sum = 0
  for (const part of input.split(',')) {
    const pieces = part.split(':')
    if (pieces.length !== 2) return undefined
    const value = parseValue(pieces[0])
    const p = Number(pieces[1].replace(/%$/, ''))
    if (value === undefined || !Number.isFinite(p) || p < 0 || p > 100) return undefined
    sum = Math.round((sum + p) * 1000) / 1000
    if (sum > 100) return undefined
    entries.push({value, cumulative: sum})
  }
  return {entries}
}

function pick<T>(w: T | Weighted<T>, otherwise: T, roll: Roll): T {
  if (typeof w !== 'object' || w === null || !('entries' in (w as object))) return w as T
  const r = roll()
  for (const e of (w as Weighted<T>).entries) if (r <= e.cumulative) return e.value
  return otherwise
}

const parseStatusCode = (s: string): number | undefined => (/^\d+$/.test(s) ? Number(s) : undefined)

/** fortio's `status` parameter: a code, or a percentage list; malformed → 400. */
export function fortioStatus(input: string, roll: Roll = defaultRoll): number {
  if (input === '') return 200
  const w = parseWeighted(input, parseStatusCode)
  if (w === undefined) return 400
  const code = pick(w, 200, roll)
  // Node refuses codes outside 100–999 (Go would panic); fortio users get a 400 for bad input
  return code >= 100 && code <= 999 ? code : 400
}

/** fortio's `delay` parameter in ms, capped at max; 0 when absent or malformed. */
export function fortioDelayMs(input: string, maxMs: number, roll: Roll = defaultRoll): number {
  if (input === '') return 0
  const w = parseWeighted(input, (s) => parseGoDuration(s))
  if (w === undefined) return 0
  return Math.min(pick(w, 0, roll), maxMs)
}

const MAX_PAYLOAD = 256 * 1024

/** fortio's `size` parameter: bytes of payload, or -1 to echo the request body. */
export function fortioSize(input: string, roll: Roll = defaultRoll): number {
  if (input === '') return -1
  const w = parseWeighted(input, parseStatusCode)
  if (w === undefined) return -1
  const n = pick(w, -1, roll)
  return n < 0 ? -1 : Math.min(n, MAX_PAYLOAD)
}

/** fortio's `close`: "true", or a percentage. */
export function fortioClose(input: string, roll: Roll = defaultRoll): boolean {
  if (input === '' || input === 'false') return false
  if (input === 'true') return true
  const p = Number(input)
  return Number.isFinite(p) ? roll() <= p : true
}

/** The query fortio's echo handler uses: the request's own, or the default params when it has no `?`. */
export function fortioEffectiveQuery(url: string, defaultParams: string): URLSearchParams {
  const q = url.indexOf('?')
  if (q >= 0) return new URLSearchParams(url.slice(q + 1))
  return new URLSearchParams(defaultParams)
}

const PAYLOAD = Buffer.alloc(MAX_PAYLOAD, 'fortio-payload-emulated-by-mesh-')

export function fortioHandler(b: Extract<Behaviour, {kind: 'fortio-echo'}>, hostname: string, roll: Roll = defaultRoll): RequestHandler {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (path === b.uiPath || (b.uiPath.endsWith('/') && path.startsWith(b.uiPath))) {
      send(res, 501, 'text/plain; charset=utf-8', 'the fortio web UI is not emulated by mesh\n', req.method === 'HEAD')
      return
    }
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      if (path === b.debugPath) {
        send(res, 200, 'text/plain; charset=UTF-8', debugText(req, body, hostname), false)
        return
      }
      const q = fortioEffectiveQuery(req.url ?? '/', b.defaultParams)
      const delay = fortioDelayMs(q.get('delay') ?? '', b.maxDelayMs, roll)
      const reply = (): void => {
        if (res.destroyed) return
        const status = fortioStatus(q.get('status') ?? '', roll)
        if (fortioClose(q.get('close') ?? '', roll)) res.setHeader('Connection', 'close')
        for (const h of q.getAll('header')) {
          const c = h.indexOf(':')
          if (c > 0) res.appendHeader(h.slice(0, c), h.slice(c + 1))
        }
        const size = fortioSize(q.get('size') ?? '', roll)
        if (size >= 0) {
          send(res, status, 'application/octet-stream', PAYLOAD.subarray(0, size), false)
          return
        }
        // echo back the body with the request's own Content-Type
        res.statusCode = status
        const ct = req.headers['content-type']
        if (ct) res.setHeader('Content-Type', ct)
        res.setHeader('Content-Length', body.length)
        res.end(body)
      }
      if (delay > 0) setTimeout(reply, delay)
      else reply()
    })
  }
}

function debugText(req: http.IncomingMessage, body: Buffer, hostname: string): string {
  const lines = [
    `fortio echo debug server (emulated by mesh) on ${hostname} - request from ${req.socket.remoteAddress}:${req.socket.remotePort}`,
    '',
    `${req.method} ${req.url} HTTP/${req.httpVersion}`,
    '',
    'headers:',
    '',
    `Host: ${req.headers.host ?? ''}`,
  ]
  const names = Object.keys(req.headers).filter((h) => h !== 'host').sort()
  for (const n of names) {
    const v = req.headers[n]
    lines.push(`${n.replace(/(^|-)([a-z])/g, (_m, d: string, c: string) => d + c.toUpperCase())}: ${Array.isArray(v) ? v.join(',') : v}`)
  }
  lines.push('', 'body:', '', body.subarray(0, 512).toString('utf8'), '')
  return lines.join('\n')
}

export function handlerFor(b: Behaviour, hostname: string): RequestHandler | undefined {
  switch (b.kind) {
    case 'helloworld': return helloworldHandler(b)
    case 'fortio-echo': return fortioHandler(b, hostname)
    case 'tcp-echo': return undefined
  }
}

/** fortio's TCP echo: whatever arrives goes back. */
export const tcpEcho = (socket: net.Socket): void => {
  socket.on('error', () => socket.destroy())
  socket.pipe(socket)
}

// ---------------------------------------------------------------------------------------------
// curl: one request, curl's output and exit codes

export interface CurlIO {
  stdout(text: string): void
  stderr(text: string): void
}

export interface CurlRoute {
  /** the sidecar's outbound listener, when the pod has one that captures its traffic */
  outbound?: {address: string; port: number}
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/

function expandWriteOut(fmt: string, code: number): string {
  return fmt
    .replace(/%\{(http_code|response_code)\}/g, String(code).padStart(3, '0'))
    .replace(/\\n/g, '\n')
    .replace(/\\t/g, '\t')
}

/** Run one request the way curl would; resolves to curl's exit code. */
export function runCurl(r: CurlRequest, route: CurlRoute, io: CurlIO): Promise<number> {
  return new Promise((resolve) => {
    let done = false
    let code = 0
    const finish = (exit: number, error?: string): void => {
      if (done) return
      done = true
      if (r.writeOut !== undefined) io.stdout(expandWriteOut(r.writeOut, code))
      if (error !== undefined && (!r.silent || r.showError)) io.stderr(`curl: (${exit}) ${error}`)
      resolve(exit)
    }
    const url = new URL(r.url)
    const port = Number(url.port || 80)
    let target: {host: string; port: number}
    if (route.outbound) target = {host: route.outbound.address, port: route.outbound.port}
    else if (IPV4.test(url.hostname)) target = {host: url.hostname, port}
    else {
      // pods without a sidecar have no cluster DNS in the embedded cluster
      finish(6, `Could not resolve host: ${url.hostname}`)
      return
    }
    const headers: Record<string, string> = {Host: url.host, 'User-Agent': 'curl/8.11.1', Accept: '*/*'}
    for (const [k, v] of r.headers) {
      const existing = Object.keys(headers).find((h) => h.toLowerCase() === k.toLowerCase())
      if (existing) delete headers[existing]
      if (v !== '') headers[k] = v
    }
    if (r.body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
      headers['Content-Type'] = 'application/x-www-form-urlencoded'
    }
    const req = http.request({host: target.host, port: target.port, method: r.method, path: url.pathname + url.search, headers, agent: false, setHost: false})
    let connectTimer: NodeJS.Timeout | undefined
    const maxTimer = r.maxTimeMs === undefined ? undefined : setTimeout(() => {
      req.destroy()
      finish(28, `Operation timed out after ${r.maxTimeMs} milliseconds`)
    }, r.maxTimeMs)
    req.on('socket', (s) => {
      if (r.connectTimeoutMs !== undefined) {
        connectTimer = setTimeout(() => {
          req.destroy()
          finish(28, `Connection timed out after ${r.connectTimeoutMs} milliseconds`)
        }, r.connectTimeoutMs)
        s.once('connect', () => clearTimeout(connectTimer))
      }
    })
    req.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(maxTimer)
      clearTimeout(connectTimer)
      if (err.code === 'ECONNREFUSED') finish(7, `Failed to connect to ${url.hostname} port ${port}: Connection refused`)
      else if (err.code === 'ECONNRESET' || err.code === 'EPIPE') finish(56, 'Recv failure: Connection reset by peer')
      else if (err.message.includes('socket hang up')) finish(52, 'Empty reply from server')
      else finish(56, `Failure when receiving data from the peer (${err.code ?? err.message})`)
    })
    req.on('response', (res) => {
      code = res.statusCode ?? 0
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', () => finish(56, 'Failure when receiving data from the peer'))
      res.on('end', () => {
        clearTimeout(maxTimer)
        if (r.fail && code >= 400) {
          finish(22, `The requested URL returned error: ${code}`)
          return
        }
        let out = ''
        if (r.includeHeaders || r.headOnly) {
          out += `HTTP/${res.httpVersion} ${code} ${res.statusMessage ?? ''}\r\n`
          for (let i = 0; i < res.rawHeaders.length; i += 2) out += `${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}\r\n`
          out += '\r\n'
        }
        if (r.printBody && !r.headOnly) out += Buffer.concat(chunks).toString('utf8')
        if (out !== '') io.stdout(out)
        finish(0)
      })
    })
    if (r.body !== undefined) req.end(r.body)
    else req.end()
  })
}
