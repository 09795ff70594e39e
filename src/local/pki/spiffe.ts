// SPIFFE identities as Istio writes them: spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>.
import {invalid} from '../../lib/errors.js'

export const DEFAULT_TRUST_DOMAIN = 'cluster.local'
export const SPIFFE_PREFIX = 'spiffe://'

export interface SpiffeId {
  trustDomain: string
  namespace: string
  serviceAccount: string
}

// Trust domain: lower-case letters, digits, dots, dashes, underscores (SPIFFE spec).
const TRUST_DOMAIN_RE = /^[a-z0-9._-]+$/
// Kubernetes names for namespaces and service accounts (DNS-1123 subdomain, no slashes).
const K8S_NAME_RE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/

export function spiffeIdFor(namespace: string, serviceAccount: string, trustDomain = DEFAULT_TRUST_DOMAIN): string {
  if (!K8S_NAME_RE.test(namespace)) {
    throw invalid('MESH_SPIFFE_ID_INVALID', `namespace "${namespace}" is not a valid Kubernetes name`, 'use lower-case letters, digits and dashes', 'namespace')
  }
  if (!K8S_NAME_RE.test(serviceAccount)) {
    throw invalid('MESH_SPIFFE_ID_INVALID', `service account "${serviceAccount}" is not a valid Kubernetes name`, 'use lower-case letters, digits and dashes', 'serviceAccount')
  }
  if (!TRUST_DOMAIN_RE.test(trustDomain)) {
    throw invalid('MESH_SPIFFE_ID_INVALID', `trust domain "${trustDomain}" is not valid`, 'use a domain such as cluster.local', 'trustDomain')
  }
  return `${SPIFFE_PREFIX}${trustDomain}/ns/${namespace}/sa/${serviceAccount}`
}

/** Parses an Istio SPIFFE URI; undefined when it is not one. */
export function tryParseSpiffeId(uri: string): SpiffeId | undefined {
  if (typeof uri !== 'string' || !uri.startsWith(SPIFFE_PREFIX)) return undefined
  const parts = uri.slice(SPIFFE_PREFIX.length).split('/')
  if (parts.length !== 5 || parts[1] !== 'ns' || parts[3] !== 'sa') return undefined
  const [trustDomain, , namespace, , serviceAccount] = parts
  if (!TRUST_DOMAIN_RE.test(trustDomain) || !K8S_NAME_RE.test(namespace) || !K8S_NAME_RE.test(serviceAccount)) return undefined
  return {trustDomain, namespace, serviceAccount}
}

/** Parses an Istio SPIFFE URI or throws MESH_SPIFFE_ID_INVALID (exit 65). */
export function parseSpiffeId(uri: string): SpiffeId {
  const id = tryParseSpiffeId(uri)
  if (!id) {
    throw invalid(
      'MESH_SPIFFE_ID_INVALID',
      `"${uri}" is not a SPIFFE identity of the form spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`,
      'build identities with spiffeIdFor(namespace, serviceAccount)',
      'spiffeId',
    )
  }
  return id
}

/** The principal as AuthorizationPolicy writes it: the SPIFFE URI without `spiffe://`. */
export function principalOf(spiffeId: string): string {
  return spiffeId.startsWith(SPIFFE_PREFIX) ? spiffeId.slice(SPIFFE_PREFIX.length) : spiffeId
}
