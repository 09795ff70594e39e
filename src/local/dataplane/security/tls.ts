// Istio-style mutual TLS for the embedded data plane: TLS material from a WorkloadSecret,
// SPIFFE identity checks (the certificates carry a URI SAN and no DNS SAN, so the usual
// hostname check cannot apply), PERMISSIVE detection of TLS vs plaintext on one port,
// STRICT refusal of plaintext, and the X-Forwarded-Client-Cert header.
import {createHash, X509Certificate} from 'node:crypto'
import http from 'node:http'
import net from 'node:net'
import tls from 'node:tls'
import type {Duplex} from 'node:stream'
import type {WorkloadSecret} from '../snapshot.js'
import type {MtlsMode, Peer} from '../security-provider.js'
import {DEFAULT_TRUST_DOMAIN, principalOf, tryParseSpiffeId} from '../../pki/spiffe.js'

export type {MtlsMode, Peer} from '../security-provider.js'

/**
 * ALPN our client proxies offer. Real Istio clients send `istio-peer-exchange`/`istio` (TCP) or
 * `istio-http/1.1`/`istio` (HTTP) so the server's PERMISSIVE listener can tell mesh mTLS from
 * an app's own TLS; we offer `istio` plus the protocol we actually speak.
 */
export const MESH_CLIENT_ALPN = ['istio', 'http/1.1']
/** What our server accepts (a client offering none of these fails the handshake, as with Node/OpenSSL). */
export const MESH_SERVER_ALPN = ['istio-peer-exchange', 'istio', 'istio-http/1.1', 'istio-http/1.0', 'http/1.1']
export const XFCC_HEADER = 'x-forwarded-client-cert'
/** First byte of a TLS record carrying a handshake message (ClientHello). */
export const TLS_HANDSHAKE_BYTE = 0x16

/**
 * The other end of a connection as authorization sees it: the engine's `Peer` (principal is
 * the full SPIFFE URI, e.g. spiffe://cluster.local/ns/foo/sa/sleep; principal and namespace
 * only on mTLS).
 */
export type PeerInfo = Peer

export interface PeerIdentity {
  spiffeId: string
  /** AuthorizationPolicy form: the SPIFFE URI without spiffe:// */
  principal: string
  trustDomain: string
  namespace: string
  serviceAccount: string
  /** DER of the peer's leaf certificate (for the XFCC Hash) */
  certDer: Buffer
  /** the peer certificate's subject as printed in XFCC (empty for our workload certs) */
  subject: string
}

// ---------------------------------------------------------------- TLS options

/** Server-side context for a workload: its cert/key, trusting only the mesh root. */
export function serverSecureContext(secret: WorkloadSecret): tls.SecureContext {
  return tls.createSecureContext({
    key: secret.privateKeyPem,
    cert: secret.certChainPem,
    ca: secret.rootCaPem,
    minVersion: 'TLSv1.2',
  })
}

/** Options for a tls.Server that terminates mesh mTLS (client certificate required and verified). */
export function serverTlsOptions(secret: WorkloadSecret): tls.TlsOptions {
  return {
    key: secret.privateKeyPem,
    cert: secret.certChainPem,
    ca: secret.rootCaPem,
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: MESH_SERVER_ALPN,
    minVersion: 'TLSv1.2',
  }
}

/**
 * A checkServerIdentity that accepts the server only when its certificate's URI SAN is one of
 * the expected SPIFFE IDs (Envoy's match_subject_alt_names). The hostname is ignored: mesh
 * certificates have no DNS SAN.
 */
export function spiffeServerIdentityCheck(
  expected: string | readonly string[],
): (hostname: string, cert: tls.PeerCertificate) => Error | undefined {
  const want = new Set(typeof expected === 'string' ? [expected] : expected)
  return (_hostname, cert) => {
    // Node's parsed SAN string ("URI:spiffe://…, DNS:…") is enough for SPIFFE URIs (no commas);
    // parsing the DER again costs more than the rest of the check
    const uris = cert?.subjectaltname
      ? cert.subjectaltname.split(', ').filter((p) => p.startsWith('URI:')).map((p) => p.slice(4))
      : cert?.raw
        ? uriSansOf(new X509Certificate(cert.raw))
        : []
    if (uris.some((u) => want.has(u))) return undefined
    const err = new Error(
      `peer identity mismatch: server presented ${uris.length > 0 ? uris.join(', ') : 'no URI SAN'}, expected ${[...want].join(' or ')}`,
    ) as Error & {code: string}
    err.code = 'ERR_MESH_PEER_IDENTITY'
    return err
  }
}

export interface ClientTlsOptionsInput {
  /** SPIFFE IDs the server may present (the destination endpoint's service account) */
  expectedSpiffeIds: string | readonly string[]
  /** SNI; Istio sends `outbound_.<port>_.<subset>_.<fqdn>`; never an IP address */
  servername?: string
}

const clientContexts = new WeakMap<WorkloadSecret, tls.SecureContext>()

/**
 * The client SecureContext of a workload certificate, built once per secret: building one from
 * PEM costs milliseconds, which every new upstream connection would otherwise pay. A rotated
 * secret is a new object, so new connections pick up the new certificate.
 */
export function clientSecureContext(secret: WorkloadSecret): tls.SecureContext {
  let ctx = clientContexts.get(secret)
  if (!ctx) {
    ctx = tls.createSecureContext({key: secret.privateKeyPem, cert: secret.certChainPem, ca: secret.rootCaPem, minVersion: 'TLSv1.2'})
    clientContexts.set(secret, ctx)
  }
  return ctx
}

/**
 * Client options for a connection from a sidecar/gateway to a mesh server (ISTIO_MUTUAL), as
 * PEM. Proxies add `secureContext: clientSecureContext(secret)` so tls.connect skips the PEM.
 */
export function clientTlsOptions(secret: WorkloadSecret, input: ClientTlsOptionsInput): tls.ConnectionOptions {
  return {
    key: secret.privateKeyPem,
    cert: secret.certChainPem,
    ca: secret.rootCaPem,
    rejectUnauthorized: true,
    checkServerIdentity: spiffeServerIdentityCheck(input.expectedSpiffeIds),
    ALPNProtocols: MESH_CLIENT_ALPN,
    minVersion: 'TLSv1.2',
    ...(input.servername && net.isIP(input.servername) === 0 ? {servername: input.servername} : {}),
  }
}

/** Istio's SNI for an outbound cluster, e.g. `outbound_.5000_.v1_.hello.mesh-lab.svc.cluster.local`. */
export function istioOutboundSni(fqdn: string, port: number, subset = ''): string {
  return `outbound_.${port}_.${subset}_.${fqdn}`
}

// ---------------------------------------------------------------- identity

/**
 * URI SANs from node:crypto's parsed SAN string ("URI:spiffe://…, DNS:…"). Node quotes a value
 * that contains a comma or quote; such a value is no SPIFFE ID and is left out. The proxies read
 * certificates with node:crypto rather than the X.509 library: loading that library cost each
 * proxy process ~100 ms at start-up, for the two fields read here.
 */
function uriSansOf(cert: X509Certificate): string[] {
  const san = cert.subjectAltName
  if (!san) return []
  return san
    .split(', ')
    .filter((p) => p.startsWith('URI:') && !p.startsWith('URI:"'))
    .map((p) => p.slice(4))
}

/** The subject as `CN=a, O=b` (node:crypto prints one attribute per line). */
function subjectOf(cert: X509Certificate): string {
  return (cert.subject ?? '').split('\n').filter(Boolean).join(', ')
}

const identityCache = new Map<string, PeerIdentity | null>()

/**
 * Identity from a peer certificate DER; undefined when it carries no Istio SPIFFE URI. A peer
 * presents the same certificate on every connection until it rotates, so results are kept for
 * recently seen certificates.
 */
export function identityFromCertDer(der: Buffer, trustDomain?: string): PeerIdentity | undefined {
  const key = `${trustDomain ?? ''}|${der.toString('base64')}`
  const hit = identityCache.get(key)
  if (hit !== undefined) return hit ? {...hit} : undefined
  const id = parseIdentity(der, trustDomain)
  if (identityCache.size >= 512) identityCache.clear()
  identityCache.set(key, id ?? null)
  return id ? {...id} : undefined
}

function parseIdentity(der: Buffer, trustDomain?: string): PeerIdentity | undefined {
  let cert: X509Certificate
  try {
    cert = new X509Certificate(der)
  } catch {
    return undefined
  }
  for (const uri of uriSansOf(cert)) {
    const id = tryParseSpiffeId(uri)
    if (!id || (trustDomain && id.trustDomain !== trustDomain)) continue
    return {
      spiffeId: uri,
      principal: principalOf(uri),
      trustDomain: id.trustDomain,
      namespace: id.namespace,
      serviceAccount: id.serviceAccount,
      certDer: Buffer.from(der),
      subject: subjectOf(cert),
    }
  }
  return undefined
}

const rootCache = new Map<string, X509Certificate>()

/**
 * True when `cert` is signed by the mesh root and valid now. Needed where a server TLSSocket is
 * built by hand: such a socket completes the handshake with ANY client certificate (Node's
 * OpenSSL verify callback accepts everything and only tls.Server acts on the result), and
 * never sets `authorized`. Our CA signs leaves directly, so leaf → root is the whole chain.
 */
export function chainsToRoot(cert: X509Certificate, rootCaPem: string, now = Date.now()): boolean {
  let root = rootCache.get(rootCaPem)
  if (!root) {
    root = new X509Certificate(rootCaPem)
    if (rootCache.size > 8) rootCache.clear()
    rootCache.set(rootCaPem, root)
  }
  if (now < Date.parse(cert.validFrom) || now > Date.parse(cert.validTo)) return false
  return cert.checkIssued(root) && cert.verify(root.publicKey)
}

/** The verified peer's SPIFFE identity on a TLS socket (undefined on plaintext or without a client cert). */
export function peerIdentity(socket: Duplex | net.Socket | tls.TLSSocket, trustDomain?: string): PeerIdentity | undefined {
  if (!(socket instanceof tls.TLSSocket) || !socket.authorized) return undefined
  const cert = socket.getPeerX509Certificate()
  if (!cert) return undefined
  return identityFromCertDer(cert.raw, trustDomain)
}

// ---------------------------------------------------------------- XFCC

/** One XFCC element as Envoy writes it with Subject, URI and DNS enabled (our certs have no DNS SAN). */
export function xfccElement(input: {serverSpiffeId: string; peer: Pick<PeerIdentity, 'certDer' | 'subject' | 'spiffeId'>}): string {
  const hash = createHash('sha256').update(input.peer.certDer).digest('hex')
  const subject = input.peer.subject.replace(/"/g, '\\"')
  return `By=${input.serverSpiffeId};Hash=${hash};Subject="${subject}";URI=${input.peer.spiffeId}`
}

/**
 * How the server proxy treats an incoming XFCC header. Istio's sidecar inbound uses Envoy's
 * APPEND_FORWARD: on mTLS, append our element to what arrived; on plaintext, remove it.
 * SANITIZE_SET replaces instead of appending. (See docs/adr/0061.)
 */
export type XfccMode = 'APPEND_FORWARD' | 'SANITIZE_SET'

/** Applies XFCC to request headers in place (both `headers` and `rawHeaders` when given). */
export function applyXfcc(
  req: {headers: http.IncomingHttpHeaders; rawHeaders?: string[]},
  element: string | undefined,
  mode: XfccMode = 'APPEND_FORWARD',
): void {
  const incoming = req.headers[XFCC_HEADER]
  const prior = Array.isArray(incoming) ? incoming.join(',') : incoming
  if (req.rawHeaders) {
    for (let i = req.rawHeaders.length - 2; i >= 0; i -= 2) {
      if (req.rawHeaders[i].toLowerCase() === XFCC_HEADER) req.rawHeaders.splice(i, 2)
    }
  }
  if (element === undefined) {
    delete req.headers[XFCC_HEADER]
    return
  }
  const value = mode === 'APPEND_FORWARD' && prior ? `${prior},${element}` : element
  req.headers[XFCC_HEADER] = value
  req.rawHeaders?.push('x-forwarded-client-cert', value)
}

// ---------------------------------------------------------------- detection

export type Transport = 'tls' | 'plaintext' | 'closed'

/**
 * Looks at the first byte a client sends without consuming it (it is pushed back with
 * unshift): 0x16 starts a TLS handshake record. Resolves 'closed' if the peer goes away or
 * nothing arrives within timeoutMs.
 */
export function detectTransport(socket: net.Socket, timeoutMs = 10_000): Promise<Transport> {
  return new Promise((resolve) => {
    let done = false
    const finish = (t: Transport) => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.removeListener('readable', onReadable)
      socket.removeListener('close', onClose)
      socket.removeListener('end', onClose)
      socket.removeListener('error', onClose)
      // Let the stream leave paused mode before the next owner attaches 'data' listeners.
      process.nextTick(() => resolve(t))
    }
    const onReadable = () => {
      const chunk: Buffer | null = socket.read()
      if (chunk === null || chunk.length === 0) return
      socket.unshift(chunk)
      finish(chunk[0] === TLS_HANDSHAKE_BYTE ? 'tls' : 'plaintext')
    }
    const onClose = () => finish('closed')
    const timer = setTimeout(() => finish('closed'), timeoutMs)
    timer.unref()
    socket.on('readable', onReadable)
    socket.once('close', onClose)
    socket.once('end', onClose)
    socket.once('error', onClose)
  })
}

/** True when the client opened with a TLS handshake (the byte is left in the stream). */
export async function sniffTls(socket: net.Socket, timeoutMs?: number): Promise<boolean> {
  return (await detectTransport(socket, timeoutMs)) === 'tls'
}

// ---------------------------------------------------------------- server

export interface ConnectionInfo {
  mode: MtlsMode
  mtls: boolean
  peer: PeerInfo
  /** full identity of an mTLS peer */
  identity?: PeerIdentity
  localAddress: string
  localPort: number
  /** this connection's XFCC element (computed once per connection) */
  xfcc?: string
}

export type RejectReason =
  | 'plaintext-in-strict'
  | 'no-server-certificate'
  | 'tls-handshake-failed'
  | 'untrusted-client-cert'
  | 'no-spiffe-identity'
  | 'closed-before-data'

export interface MtlsAwareServerOptions {
  /** effective PeerAuthentication mode for a local (container) port; read per connection */
  tlsPolicy(port: number): MtlsMode
  /**
   * The workload's current TLS material (see serverContextOptions); read per TLS connection
   * and applied when it changes, so rotation needs no restart and open connections stay up.
   * undefined = no certificate yet: TLS connections are refused.
   */
  secureContext(): tls.SecureContextOptions | undefined
  /** the workload's own SPIFFE ID (XFCC `By=`) */
  identity(): string
  trustDomain?: string
  /** HTTP handler; XFCC is already applied to req */
  onRequest?(req: http.IncomingMessage, res: http.ServerResponse, info: ConnectionInfo): void
  /** raw TCP handler for ports where protocol(port) is 'tcp' */
  onTcp?(socket: Duplex, info: ConnectionInfo): void
  protocol?(port: number): 'http' | 'tcp'
  xfccMode?: XfccMode
  /** how long to wait for a client's first byte (ms) */
  sniffTimeoutMs?: number
  handshakeTimeoutMs?: number
  /** observes refused connections (tests, telemetry, debugging) */
  onReject?(reason: RejectReason, detail: {localPort: number; remoteAddress: string; error?: string}): void
}

export interface MtlsAwareServer {
  readonly server: net.Server
  readonly httpServer: http.Server
  listen(port: number, host: string): Promise<net.AddressInfo>
  close(): Promise<void>
}

/** TLS material of a workload for a server, in the shape tls.Server#setSecureContext takes. */
export function serverContextOptions(secret: WorkloadSecret): tls.SecureContextOptions {
  return {key: secret.privateKeyPem, cert: secret.certChainPem, ca: secret.rootCaPem, minVersion: 'TLSv1.2'}
}

const infoBySocket = new WeakMap<object, ConnectionInfo>()
interface PendingTls {
  mode: MtlsMode
  localPort: number
  localAddress: string
  remoteAddress: string
  settled: boolean
}
/** A live connection is identified by its 4-tuple, which the TLSSocket shares with its socket. */
const tupleOf = (s: net.Socket) => `${s.remoteAddress}:${s.remotePort}>${s.localAddress}:${s.localPort}`

/**
 * One listener that behaves like an Istio sidecar's inbound port:
 * STRICT - plaintext is reset with no bytes written (curl: 000, exit 56); TLS must present a
 * client certificate from the mesh CA with a SPIFFE URI. PERMISSIVE - both. DISABLE -
 * plaintext only (a TLS ClientHello reaches the HTTP parser and the handshake fails).
 * TLS itself is a tls.Server (never listening) fed with the sniffed sockets, so Node does the
 * certificate verification.
 */
export function createMtlsAwareServer(opts: MtlsAwareServerOptions): MtlsAwareServer {
  const trustDomain = opts.trustDomain ?? DEFAULT_TRUST_DOMAIN
  const xfccMode = opts.xfccMode ?? 'APPEND_FORWARD'
  const sockets = new Set<net.Socket>()

  const httpServer = http.createServer((req, res) => {
    const info = infoBySocket.get(req.socket)
    if (!info) {
      res.destroy()
      return
    }
    if (info.identity && info.xfcc === undefined) info.xfcc = xfccElement({serverSpiffeId: opts.identity(), peer: info.identity})
    applyXfcc(req, info.xfcc, xfccMode)
    if (opts.onRequest) opts.onRequest(req, res, info)
    else {
      res.statusCode = 404
      res.end()
    }
  })

  const report = (reason: RejectReason, localPort: number, remoteAddress: string, error?: string) =>
    opts.onReject?.(reason, {localPort, remoteAddress, error})

  const handOff = (stream: net.Socket | tls.TLSSocket, info: ConnectionInfo) => {
    infoBySocket.set(stream, info)
    const proto = opts.protocol?.(info.localPort) ?? 'http'
    if (proto === 'tcp' && opts.onTcp) opts.onTcp(stream, info)
    else httpServer.emit('connection', stream)
  }

  // requestCert + rejectUnauthorized: a client without a certificate fails the handshake
  // (TLS alert); a certificate that does not chain to the mesh root is dropped by Node right
  // after the handshake, before 'secureConnection'.
  const tlsServer = new tls.Server({
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: MESH_SERVER_ALPN,
    handshakeTimeout: opts.handshakeTimeoutMs ?? 10_000,
  })
  let appliedContext: tls.SecureContextOptions | undefined
  const pendingTls = new Map<string, PendingTls>()

  tlsServer.on('tlsClientError', (error: Error, tlsSocket: tls.TLSSocket) => {
    const p = pendingTls.get(tupleOf(tlsSocket))
    if (p && !p.settled) {
      p.settled = true
      report('tls-handshake-failed', p.localPort, p.remoteAddress, error.message)
    }
  })

  tlsServer.on('secureConnection', (tlsSocket: tls.TLSSocket) => {
    const p = pendingTls.get(tupleOf(tlsSocket))
    if (!p) {
      tlsSocket.destroy()
      return
    }
    p.settled = true
    tlsSocket.on('error', () => {})
    const identity = peerIdentity(tlsSocket, trustDomain)
    if (!identity) {
      report('no-spiffe-identity', p.localPort, p.remoteAddress, `client certificate has no spiffe://${trustDomain}/ URI SAN`)
      tlsSocket.destroy()
      return
    }
    handOff(tlsSocket, {
      mode: p.mode,
      mtls: true,
      peer: {ip: p.remoteAddress, mtls: true, principal: identity.spiffeId, namespace: identity.namespace},
      identity,
      localAddress: p.localAddress,
      localPort: p.localPort,
    })
  })

  // noDelay as node:http sets it for its own sockets: responses are written in pieces
  const server = net.createServer({noDelay: true}, async (socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    socket.on('error', () => {}) // resets from clients are normal here
    const localPort = socket.localPort ?? 0
    const localAddress = socket.localAddress ?? ''
    const remoteAddress = (socket.remoteAddress ?? '').replace(/^::ffff:/, '')
    const mode = opts.tlsPolicy(localPort)
    const plainInfo: ConnectionInfo = {mode, mtls: false, peer: {ip: remoteAddress, mtls: false}, localAddress, localPort}
    // A reset, not a FIN: Envoy's STRICT listener has no filter chain for plaintext, and curl
    // reports "Recv failure: Connection reset by peer" (exit 56) rather than an empty reply (52).
    const refuse = (reason: RejectReason, error?: string) => {
      report(reason, localPort, remoteAddress, error)
      if (!socket.destroyed) socket.resetAndDestroy()
    }

    if (mode === 'DISABLE') {
      handOff(socket, plainInfo)
      return
    }
    const transport = await detectTransport(socket, opts.sniffTimeoutMs)
    if (transport === 'closed') {
      if (mode === 'STRICT' || socket.destroyed) refuse('closed-before-data')
      else handOff(socket, plainInfo) // server-first protocols on PERMISSIVE ports
      return
    }
    if (transport === 'plaintext') {
      if (mode === 'STRICT') refuse('plaintext-in-strict')
      else handOff(socket, plainInfo)
      return
    }

    let ctx: tls.SecureContextOptions | undefined
    try {
      ctx = opts.secureContext()
    } catch (error) {
      refuse('no-server-certificate', (error as Error).message)
      return
    }
    if (!ctx) {
      refuse('no-server-certificate', 'the workload has no certificate yet')
      return
    }
    if (ctx !== appliedContext) {
      tlsServer.setSecureContext(ctx) // new connections only; open ones keep their session
      appliedContext = ctx
    }
    const pending: PendingTls = {mode, localPort, localAddress, remoteAddress, settled: false}
    const key = tupleOf(socket)
    pendingTls.set(key, pending)
    socket.once('close', () => {
      pendingTls.delete(key)
      if (!pending.settled) {
        pending.settled = true
        // Node drops a client whose certificate fails verification without an error event
        report('untrusted-client-cert', localPort, remoteAddress, 'connection closed before the TLS session was accepted')
      }
    })
    tlsServer.emit('connection', socket)
  })

  return {
    server,
    httpServer,
    listen(port, host) {
      return new Promise((resolve, reject) => {
        server.once('error', reject)
        server.listen(port, host, () => {
          server.removeListener('error', reject)
          resolve(server.address() as net.AddressInfo)
        })
      })
    },
    close() {
      return new Promise((resolve) => {
        for (const s of sockets) s.destroy()
        httpServer.closeAllConnections()
        if (!server.listening) {
          resolve()
          return
        }
        server.close(() => resolve())
      })
    },
  }
}
