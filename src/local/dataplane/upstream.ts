// One upstream HTTP/1.1 connection, owned by a host pool. We open the TCP (or TLS) socket
// ourselves so the pool knows exactly when a connection is established (DR-5), then carry one
// request at a time with the codec in http1.ts. A closed connection is gone for good: the pool
// opens a new one.
import net from 'node:net'
import tls from 'node:tls'
import type {HostPool, PoolConnection} from './pool.js'
import {ResponseParser, serializeRequest, type RequestHead, type ResponseHandler} from './http1.js'

export interface ConnectOptions {
  address: string
  port: number
  /** bind upstream sockets to this local address (the proxy's pod IP) */
  localAddress?: string
  connectTimeoutMs: number
  /** close connections idle this long; 0 = 4 s or (server keep-alive hint − 1 s), whichever is smaller */
  idleTimeoutMs: number
  /** TLS client options from the security provider; undefined = plaintext */
  tls?: tls.ConnectionOptions
  /** hears each TLS session (ticket) the server hands out, for resumption by the next connection */
  onSession?: (session: Buffer) => void
}

/** A request handler that can also be told how to abort. */
export interface UpstreamHandler extends ResponseHandler {
  onConnect?(abort: (err?: Error) => void): void
}

const DEFAULT_IDLE_MS = 4000

export class UpstreamConnection implements PoolConnection {
  served = 0
  connected = false
  closed = false
  readonly socket: net.Socket
  readonly tls: boolean
  private parser: ResponseParser
  private connectTimer: NodeJS.Timeout | undefined
  private idleSince = 0
  private current: UpstreamHandler | undefined

  constructor(
    private pool: HostPool<UpstreamConnection>,
    private opts: ConnectOptions,
  ) {
    const o = opts
    const base = {host: o.address, port: o.port, localAddress: o.localAddress}
    this.tls = o.tls !== undefined
    if (o.tls) {
      this.socket = tls.connect({...o.tls, ...base})
      this.socket.once('secureConnect', () => this.onConnect())
      if (o.onSession) this.socket.on('session', o.onSession)
    } else {
      this.socket = net.connect(base)
      this.socket.once('connect', () => this.onConnect())
    }
    const s = this.socket
    s.setNoDelay(true)
    this.parser = new ResponseParser(
      () => s.pause(),
      () => s.resume(),
      (err) => this.drop(err),
    )
    s.on('data', (d: Buffer) => this.parser.feed(d))
    s.on('end', () => this.onEnd())
    s.on('error', (err) => this.onSocketError(err))
    s.once('close', () => this.onSocketClose())
    if (o.connectTimeoutMs > 0) {
      this.connectTimer = setTimeout(() => {
        if (this.connected || this.closed) return
        this.closed = true
        s.destroy()
        this.pool.onConnectFailed(this, 'connect_timeout', new Error(`connect timeout after ${o.connectTimeoutMs}ms`))
      }, o.connectTimeoutMs)
    }
  }

  private onConnect(): void {
    if (this.connectTimer) clearTimeout(this.connectTimer)
    if (this.closed) return
    this.connected = true
    this.idleSince = performance.now()
    this.pool.onConnected(this)
  }

  private onSocketError(err: Error): void {
    if (this.connectTimer) clearTimeout(this.connectTimer)
    if (!this.connected) {
      if (!this.closed) {
        this.closed = true
        this.pool.onConnectFailed(this, 'connection_failure', err)
      }
      return
    }
    this.drop(err)
  }

  private onEnd(): void {
    // a response framed by connection close completes here; anything else in flight was cut
    this.parser.end()
    this.closed = true
    this.socket.destroy()
  }

  private onSocketClose(): void {
    if (this.connectTimer) clearTimeout(this.connectTimer)
    if (!this.connected) {
      if (!this.closed) {
        this.closed = true
        this.pool.onConnectFailed(this, 'connection_failure', new Error('connection closed before it was established'))
      }
      return
    }
    this.drop(new Error('upstream connection closed'))
  }

  /** The socket is gone: fail the request on it, or tell the pool an idle connection closed. */
  private drop(err: Error): void {
    const wasClosed = this.closed
    this.closed = true
    if (this.current) {
      this.current = undefined
      this.parser.fail(err)
    } else if (!wasClosed || !this.released) {
      this.released = true
      this.pool.onClosed(this)
    }
    this.socket.destroy()
  }

  private released = false

  /** Sends one request; the handler hears the response (the pool attached this connection). */
  dispatch(req: RequestHead, handler: UpstreamHandler): void {
    if (this.closed) {
      queueMicrotask(() => handler.onError(new Error('upstream connection closed')))
      return
    }
    this.current = handler
    const self = this
    const wrapped: ResponseHandler = {
      onHeaders: (s, h, r, t) => handler.onHeaders(s, h, r, t),
      onData: (c, f) => handler.onData(c, f),
      onComplete() {
        self.current = undefined
        self.idleSince = performance.now()
        if (!self.parser.keepAlive) self.closed = true
        handler.onComplete()
      },
      onError(err) {
        self.current = undefined
        self.closed = true
        self.socket.destroy()
        handler.onError(err)
      },
    }
    this.parser.begin(wrapped, req.method)
    handler.onConnect?.((err) => {
      if (this.current !== handler) return
      this.current = undefined
      this.closed = true
      this.socket.destroy()
      this.parser.fail(err ?? new Error('request aborted'))
    })
    if (req.close) this.closed = true // not reusable after this response
    const head = serializeRequest(req)
    if (req.body && req.body.length > 0) {
      this.socket.cork()
      this.socket.write(head, 'latin1')
      this.socket.write(req.body)
      this.socket.uncork()
    } else {
      this.socket.write(head, 'latin1')
    }
  }

  /**
   * An idle connection the server may be about to close is not reused (keep-alive race): past
   * the server's `Keep-Alive: timeout` hint minus 1 s, or 4 s when it gave none (ADR 0041). A
   * server that says how long it keeps connections (our sidecars say 65 s) keeps them that long,
   * so traffic with pauses does not pay a new mTLS handshake after every 4 s of quiet.
   */
  expired(now: number): boolean {
    if (this.closed) return true
    const hint = this.parser.keepAliveHintMs
    let limit = hint !== undefined ? Math.max(0, hint - 1000) : DEFAULT_IDLE_MS
    if (this.opts.idleTimeoutMs > 0) limit = Math.min(limit, this.opts.idleTimeoutMs)
    return now - this.idleSince > limit
  }

  get reusable(): boolean {
    return !this.closed
  }

  get localAddress(): string {
    return this.socket.localAddress ? `${this.socket.localAddress}:${this.socket.localPort}` : '-'
  }

  destroy(): void {
    this.closed = true
    this.released = true
    if (this.connectTimer) clearTimeout(this.connectTimer)
    this.socket.destroy()
  }
}
