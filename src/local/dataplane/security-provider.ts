// The seam between the proxy engine and mesh security (mTLS, PeerAuthentication,
// AuthorizationPolicy). The engine owns sockets and calls these hooks; the security
// implementation (src/local/dataplane/security/) decides. The defaults here are what a
// mesh without certificates or policies does: plaintext everywhere, every request allowed.
import type {TLSSocket, ConnectionOptions, SecureContextOptions} from 'node:tls'
import type {Endpoint, MeshSnapshot, ProxyIdentity, WorkloadSecret} from './snapshot.js'

export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE'

/** The caller as the server-side proxy sees it. */
export interface Peer {
  /** verified SPIFFE id of the client certificate, e.g. spiffe://cluster.local/ns/foo/sa/sleep (mTLS only) */
  principal?: string
  /** namespace from the principal (mTLS only) */
  namespace?: string
  /** source IP of the connection */
  ip: string
  /** true when the request arrived over mutual TLS */
  mtls: boolean
}

/** What authorization sees of an inbound HTTP request. */
export interface AuthzRequest {
  method: string
  /** path as sent, including the query string */
  path: string
  /** Host/:authority header */
  host: string
  /** lower-cased header names; duplicated headers joined by ", " */
  headers: Record<string, string | string[] | undefined>
  /** the container port the request arrived on (destination.port) */
  port: number
  /** the workload receiving the request */
  destination: ProxyIdentity
}

export interface AuthzDecision {
  allowed: boolean
  /** `ns[<ns>]-policy[<name>]-rule[<i>]`; absent when denied by default (no ALLOW matched) */
  policy?: string
}

/** Facts about the upstream cluster an outbound connection is for. */
export interface UpstreamClusterInfo {
  /** e.g. outbound|5000|v1|hello.mesh-lab.svc.cluster.local */
  name: string
  /** service FQDN */
  host: string
  port: number
  subset?: string
  /** the DestinationRule `tls` block that applies to this cluster after DR-2 merging, if any */
  tls?: Record<string, unknown>
}

export interface SecurityProvider {
  /** Called on every config push (before routes switch), with the proxy's identity. */
  onSnapshot?(snapshot: MeshSnapshot, self: ProxyIdentity): void
  /** Called when meshd pushes a new workload certificate. */
  onSecret?(secret: WorkloadSecret): void

  /** Inbound: effective PeerAuthentication mode for one container port (PA-1, PA-2). */
  tlsPolicy(port: number): MtlsMode
  /**
   * Inbound: TLS server material for mutual TLS on this port; undefined while the workload has
   * no certificate (then only plaintext is possible). The engine requests and verifies the
   * client certificate with these options (requestCert/rejectUnauthorized are forced on).
   */
  serverTls?(port: number): SecureContextOptions | undefined
  /** Inbound: the peer of an mTLS connection; the default reads the URI SAN of the client certificate. */
  peerFromTls?(socket: TLSSocket): Pick<Peer, 'principal' | 'namespace'>
  /** Inbound: value of X-Forwarded-Client-Cert to set on mTLS requests (PA-5); undefined = none. */
  forwardClientCert?(peer: Peer, socket: TLSSocket): string | undefined
  /** Inbound: AuthorizationPolicy decision (AZ-1..AZ-8). */
  authorize(req: AuthzRequest, peer: Peer): AuthzDecision

  /**
   * Outbound and gateway: TLS options for a new upstream connection to `endpoint`, or undefined
   * for plaintext (auto mTLS and DR `tls` live behind this, DR-10). Called once per new connection.
   */
  upstreamTls(endpoint: Endpoint, cluster: UpstreamClusterInfo): ConnectionOptions | undefined
  /** Outbound: the principal this proxy presents upstream when upstreamTls returned options (telemetry source_principal). */
  ownPrincipal?(): string | undefined
}

/** Plaintext everywhere, everything allowed: a mesh with no certificates and no policies. */
export class PlaintextAllowAll implements SecurityProvider {
  tlsPolicy(): MtlsMode {
    return 'PERMISSIVE'
  }

  authorize(): AuthzDecision {
    return {allowed: true}
  }

  upstreamTls(): undefined {
    return undefined
  }
}

/** Reads `URI:spiffe://td/ns/<ns>/sa/<sa>` from a verified client certificate. */
export function peerFromCertificate(socket: TLSSocket): Pick<Peer, 'principal' | 'namespace'> {
  const cert = socket.getPeerCertificate()
  const san = cert?.subjectaltname ?? ''
  for (const part of san.split(/,\s*/)) {
    if (part.startsWith('URI:spiffe://')) {
      const principal = part.slice(4)
      const m = /\/ns\/([^/]+)\/sa\//.exec(principal)
      return {principal, namespace: m?.[1]}
    }
  }
  return {}
}
