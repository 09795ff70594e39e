// The SecurityProvider the proxy engine calls: PeerAuthentication for inbound ports, workload
// certificates for mTLS, AuthorizationPolicy decisions, and auto mTLS / DestinationRule TLS
// for upstream connections. State is read through getters on every call, so config pushes
// and certificate rotation take effect for the next connection or request.
import {readFileSync} from 'node:fs'
import type {ConnectionOptions, SecureContextOptions, TLSSocket} from 'node:tls'
import type {Endpoint, MeshSnapshot, ProxyIdentity, WorkloadSecret} from '../snapshot.js'
import type {AuthzDecision, AuthzRequest, MtlsMode, Peer, SecurityProvider, UpstreamClusterInfo} from '../security-provider.js'
import {DEFAULT_TRUST_DOMAIN, spiffeIdFor} from '../../pki/spiffe.js'
import {evaluate, type PolicyDecision} from './authz.js'
import {DEFAULT_ROOT_NAMESPACE, effectiveMtlsMode, upstreamTlsMode, type DestinationRuleTls, type UpstreamTlsMode} from './peer-authentication.js'
import {chainsToRoot, clientSecureContext, clientTlsOptions, identityFromCertDer, istioOutboundSni, serverContextOptions, xfccElement, type PeerIdentity} from './tls.js'

export interface SecurityProviderDeps {
  /** the proxy this provider serves */
  identity: ProxyIdentity
  /** latest pushed snapshot (undefined before the first push) */
  getSnapshot: () => MeshSnapshot | undefined
  /** current workload certificate (undefined before the first one arrives) */
  getSecret: () => WorkloadSecret | undefined
}

export interface MeshAuthzDecision extends AuthzDecision {
  reason: string
  /** Envoy response code details, e.g. rbac_access_denied_matched_policy[none] */
  details: string
  audited: string[]
}

export interface UpstreamTlsChoice {
  mode: UpstreamTlsMode
  options: ConnectionOptions | undefined
}

const EMPTY_SNAPSHOT: Pick<MeshSnapshot, 'peerAuthentications' | 'authorizationPolicies' | 'rootNamespace' | 'services' | 'trustDomain'> = {
  peerAuthentications: [],
  authorizationPolicies: [],
  rootNamespace: DEFAULT_ROOT_NAMESPACE,
  services: [],
  trustDomain: DEFAULT_TRUST_DOMAIN,
}

function readIfPresent(path: unknown): string | undefined {
  if (typeof path !== 'string' || path === '') return undefined
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return undefined
  }
}

export class MeshSecurityProvider implements SecurityProvider {
  private readonly deps: SecurityProviderDeps
  private lastSecret: WorkloadSecret | undefined
  private lastServerTls: SecureContextOptions | undefined
  private readonly peers = new WeakMap<TLSSocket, PeerIdentity | null>()
  private readonly xfcc = new WeakMap<TLSSocket, {by: string; value: string}>()

  constructor(deps: SecurityProviderDeps) {
    this.deps = deps
  }

  private snapshot() {
    return this.deps.getSnapshot() ?? EMPTY_SNAPSHOT
  }

  private trustDomain(): string {
    return this.deps.getSnapshot()?.trustDomain || DEFAULT_TRUST_DOMAIN
  }

  /** Inbound mode of a container port of this workload (PA-1, PA-2). */
  tlsPolicy(port: number): MtlsMode {
    const {namespace, labels} = this.deps.identity
    return effectiveMtlsMode(this.snapshot(), {namespace, labels}, port)
  }

  /** Server TLS material; the same object while the secret is unchanged (cheap per connection). */
  serverTls(): SecureContextOptions | undefined {
    const secret = this.deps.getSecret()
    if (!secret) return undefined
    if (secret !== this.lastSecret) {
      this.lastSecret = secret
      this.lastServerTls = serverContextOptions(secret)
    }
    return this.lastServerTls
  }

  /**
   * SPIFFE principal (full URI) and namespace of the client certificate. The certificate must
   * chain to the mesh root and carry a SPIFFE URI of our trust domain; otherwise the socket is
   * destroyed here and {} returned. This matters because a hand-built server TLSSocket
   * (`new tls.TLSSocket(sock, {isServer, requestCert, rejectUnauthorized})`) accepts a
   * certificate from any CA: only tls.Server enforces rejectUnauthorized.
   */
  peerFromTls(socket: TLSSocket): Pick<Peer, 'principal' | 'namespace'> {
    const id = this.verifiedIdentity(socket)
    if (!id) {
      socket.destroy()
      return {}
    }
    return {principal: id.spiffeId, namespace: id.namespace}
  }

  /**
   * The peer's identity when its certificate is trusted (chain to our root, our trust domain).
   * Cached per socket: the engine asks on every request and a signature check costs ~0.1 ms.
   */
  private verifiedIdentity(socket: TLSSocket): PeerIdentity | undefined {
    const known = this.peers.get(socket)
    if (known !== undefined) return known ?? undefined
    const cert = socket.getPeerX509Certificate()
    const secret = this.deps.getSecret()
    let id: PeerIdentity | undefined
    if (cert && secret && (socket.authorized === true || chainsToRoot(cert, secret.rootCaPem))) {
      id = identityFromCertDer(cert.raw, this.trustDomain())
    }
    this.peers.set(socket, id ?? null)
    return id
  }

  /**
   * This proxy's XFCC element for an mTLS request. Istio's sidecar uses APPEND_FORWARD: the
   * engine appends this to an incoming X-Forwarded-Client-Cert (comma-separated) on mTLS and
   * removes the header on plaintext (see applyXfcc in tls.ts).
   */
  forwardClientCert(_peer: Peer, socket: TLSSocket): string | undefined {
    const secret = this.deps.getSecret()
    const id = this.verifiedIdentity(socket)
    if (!secret || !id) return undefined
    const cached = this.xfcc.get(socket)
    if (cached && cached.by === secret.spiffeId) return cached.value
    const value = xfccElement({serverSpiffeId: secret.spiffeId, peer: id})
    this.xfcc.set(socket, {by: secret.spiffeId, value})
    return value
  }

  /** AuthorizationPolicy decision for an HTTP request (AZ-1..AZ-8). */
  authorize(req: AuthzRequest, peer: Peer): MeshAuthzDecision {
    const d = this.decide(
      {namespace: req.destination.namespace, labels: req.destination.labels},
      {
        method: req.method,
        path: req.path,
        host: req.host,
        port: req.port,
        headers: req.headers,
        peer,
        protocol: 'http',
        destinationIp: req.destination.address,
      },
    )
    return {allowed: d.decision === 'ALLOW', policy: d.policy, reason: d.reason, details: d.details, audited: d.audited}
  }

  /**
   * Decision for a TCP connection (AZ-7): HTTP-only fields drop the whole ALLOW rule and only
   * the field in DENY. Not part of the SecurityProvider interface yet; a denied TCP connection
   * is closed without data.
   */
  authorizeConnection(port: number, peer: Peer, sni?: string): MeshAuthzDecision {
    const {namespace, labels, address} = this.deps.identity
    const d = this.decide({namespace, labels}, {port, peer, protocol: 'tcp', destinationIp: address, sni})
    return {allowed: d.decision === 'ALLOW', policy: d.policy, reason: d.reason, details: d.details, audited: d.audited}
  }

  private decide(workload: {namespace: string; labels: Record<string, string>}, request: Parameters<typeof evaluate>[2]): PolicyDecision {
    const snap = this.snapshot()
    return evaluate(snap.authorizationPolicies ?? [], workload, request, {rootNamespace: snap.rootNamespace || DEFAULT_ROOT_NAMESPACE})
  }

  /** Container port an endpoint receives for a service port (port-level PeerAuthentication is keyed by it). */
  private targetPortFor(cluster: UpstreamClusterInfo, endpoint: Endpoint): number {
    const snap = this.snapshot()
    const svc = snap.services?.find(
      (s) =>
        s.namespace === endpoint.namespace &&
        (cluster.host === s.name || cluster.host === `${s.name}.${s.namespace}` || cluster.host.startsWith(`${s.name}.${s.namespace}.svc`)),
    )
    return svc?.ports.find((p) => p.port === cluster.port)?.targetPort ?? cluster.port
  }

  /** Mode and options toward one endpoint; exposed for telemetry and tests. */
  upstreamTlsChoice(endpoint: Endpoint, cluster: UpstreamClusterInfo): UpstreamTlsChoice {
    const drTls = cluster.tls as DestinationRuleTls | undefined
    const mode = upstreamTlsMode(this.snapshot(), this.deps.identity.namespace, endpoint, drTls, this.targetPortFor(cluster, endpoint))
    switch (mode) {
      case 'DISABLE':
        return {mode, options: undefined}
      case 'ISTIO_MUTUAL': {
        const secret = this.deps.getSecret()
        // Without a certificate this proxy cannot speak mTLS; Istio would not mark it ready.
        if (!secret) return {mode, options: undefined}
        const expected =
          drTls?.subjectAltNames && drTls.subjectAltNames.length > 0
            ? drTls.subjectAltNames
            : spiffeIdFor(endpoint.namespace, endpoint.serviceAccount, this.trustDomain())
        return {
          mode,
          options: {
            ...clientTlsOptions(secret, {
              expectedSpiffeIds: expected,
              servername: drTls?.sni ?? istioOutboundSni(cluster.host, cluster.port, cluster.subset ?? ''),
            }),
            // built once per certificate; tls.connect then ignores the PEM fields
            secureContext: clientSecureContext(secret),
          },
        }
      }
      case 'SIMPLE':
      case 'MUTUAL': {
        // Files named in the DestinationRule are read from this machine; credentialName
        // (a Kubernetes secret) is not supported by the embedded cluster.
        const ca = readIfPresent(drTls?.caCertificates)
        const options: ConnectionOptions = {
          rejectUnauthorized: drTls?.insecureSkipVerify !== true,
          servername: drTls?.sni ?? cluster.host,
          ALPNProtocols: ['http/1.1'],
          ...(ca ? {ca} : {}),
        }
        if (mode === 'MUTUAL') {
          const cert = readIfPresent(drTls?.clientCertificate)
          const key = readIfPresent(drTls?.privateKey)
          if (cert && key) Object.assign(options, {cert, key})
        }
        return {mode, options}
      }
    }
  }

  upstreamTls(endpoint: Endpoint, cluster: UpstreamClusterInfo): ConnectionOptions | undefined {
    return this.upstreamTlsChoice(endpoint, cluster).options
  }

  ownPrincipal(): string | undefined {
    return this.deps.getSecret()?.spiffeId
  }
}

/** The mesh's SecurityProvider for one proxy. */
export function createSecurityProvider(deps: SecurityProviderDeps): MeshSecurityProvider {
  return new MeshSecurityProvider(deps)
}
