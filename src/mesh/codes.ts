// The stable MESH_* codes the Istio domain model raises, each with its one-line suggestion.
// docs/errors.md lists the same table; a unit test keeps the two in step.
import type {FieldCause} from '../lib/errors.js'

export const MESH_CODES = {
  // user input to builders and commands (thrown as MeshError, exit 65)
  MESH_WEIGHTS_FORMAT: 'Give two whole numbers separated by "/", v1 first, e.g. 90/10.',
  MESH_WEIGHTS_RANGE: 'Each weight is a whole number from 0 to 100, e.g. 90/10.',
  MESH_WEIGHTS_SUM: 'The two weights must add up to 100, e.g. 90/10 or 50/50.',
  MESH_CANARY_STEPS: 'Give at least two comma-separated steps, e.g. --steps 100/0,50/50,0/100.',
  MESH_CANARY_STEPS_ORDER: 'List the steps so the v2 share grows at every step, e.g. 100/0,80/20,0/100.',
  MESH_MTLS_MODE: 'Use STRICT or PERMISSIVE (DISABLE only for a workload or a port).',
  MESH_PA_SCOPE: 'Give either a namespace or mesh-wide, not both.',
  MESH_HTTP_METHOD: 'Use one of GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, CONNECT, TRACE.',
  MESH_POLICY_NO_RULES: 'Add at least one condition (methods, paths, principals or namespaces); an ALLOW rule with none allows everything.',
  MESH_POLICY_KIND: 'Render deny-all or allow, e.g. mesh render policy deny-all.',
  MESH_SELECTOR: 'Write selectors as key=value, e.g. app=hello.',
  MESH_YAML: 'Fix the YAML syntax at the reported line; `kubectl apply --dry-run=client -f FILE` shows the same problem.',
  MESH_INVALID_RESOURCE: 'Fix the listed fields; `mesh render` prints objects that pass these checks.',
  // causes inside MESH_INVALID_RESOURCE (FieldCause.code)
  MESH_SCHEMA: 'Match the Istio API reference for this field (type, allowed values, required fields).',
  MESH_UNKNOWN_FIELD: 'Remove the field or fix its spelling; Istio ignores unknown fields silently, mesh refuses them.',
  MESH_KIND_UNKNOWN: 'Use an Istio kind such as VirtualService, DestinationRule, Gateway, PeerAuthentication or AuthorizationPolicy.',
  MESH_REQUIRED: 'Set the field; Istio rejects the object without it.',
  MESH_NAME_INVALID: 'Use lower-case letters, digits and "-" (DNS-1123), starting and ending with a letter or digit.',
  MESH_HOST_INVALID: 'Use a service name (hello), an FQDN (hello.mesh-lab.svc.cluster.local) or a wildcard prefix (*.example.com).',
  MESH_HOST_WILDCARD_MESH: 'Bind the "*" host to a gateway only, or list real service hosts for the mesh gateway.',
  MESH_GATEWAY_REF: 'Reference gateways as NAME or NAMESPACE/NAME, or "mesh" for the sidecars.',
  MESH_WEIGHT_NEGATIVE: 'Weights are whole numbers of 0 or more.',
  MESH_WEIGHT_TOTAL_ZERO: 'Give at least one destination a weight above 0.',
  MESH_SUBSET_MISSING: 'Add the subset to the DestinationRule or route to a subset it defines (v1, v2).',
  MESH_SUBSET_DUPLICATE: 'Give every subset a different name.',
  MESH_SUBSET_LABELS: 'Give the subset labels that select its pods, e.g. version: v1.',
  MESH_ROUTE_EMPTY: 'Give each HTTP route at least one destination, a redirect or a direct response.',
  MESH_PORT_RANGE: 'Use a port number from 1 to 65535.',
  MESH_PERCENT_RANGE: 'Use a percentage from 0 to 100.',
  MESH_DURATION: 'Write durations like 500ms, 1s, 3m or 1h (at least 1ms).',
  MESH_HEADER_NAME: 'Write header names in lower case.',
  MESH_GATEWAY_SERVER: 'Give each server a port (number, name, protocol) and at least one host.',
  MESH_PA_PORT_LEVEL: 'portLevelMtls needs a workload selector; add spec.selector.matchLabels.',
  MESH_PRINCIPAL: 'Write principals as TRUST_DOMAIN/ns/NAMESPACE/sa/ACCOUNT without "spiffe://"; "*" only at the start or end.',
  MESH_NAMESPACE_VALUE: 'Use a namespace name, optionally with "*" at the start or end.',
  MESH_CIDR: 'Use an IP address or CIDR such as 10.0.0.0/8 or 2001:db8::/32.',
  MESH_PATH: 'Paths start with "/" (or use "*" at the start or end), e.g. /hello or /api/*.',
  MESH_AUTHZ_PROVIDER: 'Use provider only with action CUSTOM, and always give CUSTOM a provider name.',
  MESH_WHEN_KEY: 'Use a supported condition key (e.g. request.headers[x-user], source.namespace) with values or notValues.',
  // warnings (returned, never thrown)
  MESH_EJECTION_IMPOSSIBLE: 'Raise maxEjectionPercent to at least 100 ÷ endpoints (50 for 2 endpoints) and keep consecutive5xxErrors above 0.',
} as const

export type MeshCode = keyof typeof MESH_CODES

/** A FieldCause with the stable code of the rule that failed. Assignable to FieldCause. */
export interface MeshCause extends FieldCause {
  code: MeshCode
}

/** A non-fatal finding (e.g. outlier detection that can never eject). */
export interface MeshWarning {
  code: MeshCode
  message: string
  suggestion: string
}

export const suggestionFor = (code: MeshCode): string => MESH_CODES[code]
