// Names and numbers of the lab, shared by the builders, manifests/ and configs/.
import {invalid} from '../lib/errors.js'
import {MESH_CODES, type MeshCode} from './codes.js'

export const LAB = {
  namespace: 'mesh-lab',
  legacyNamespace: 'mesh-legacy',
  rootNamespace: 'istio-system',
  trustDomain: 'cluster.local',
  service: 'hello',
  port: 5000,
  portName: 'http',
  versions: ['v1', 'v2'] as const,
  versionLabel: 'version',
  appLabel: 'app',
  faultyLabel: 'mesh.lab/faulty',
  deployments: {v1: 'hello-v1', v2: 'hello-v2', faulty: 'hello-v1-faulty', client: 'curl'},
  serviceAccounts: {v1: 'hello-v1', v2: 'hello-v2', client: 'curl'},
  images: {
    v1: 'docker.io/istio/examples-helloworld-v1:1.0',
    v2: 'docker.io/istio/examples-helloworld-v2:1.0',
    faulty: 'docker.io/fortio/fortio:1.69.5',
    client: 'docker.io/curlimages/curl:8.11.1',
  },
  gateway: 'hello-gateway',
  gatewaySelector: {istio: 'ingressgateway'},
  virtualService: 'hello',
  ingressVirtualService: 'hello-ingress',
  ingressPath: '/hello',
  destinationRule: 'hello',
  telemetry: 'mesh-default',
  /** endpoints in subset v1 during the ejection lab: hello-v1 plus the faulty replica */
  v1EndpointsWithFaulty: 2,
  labels: {'app.kubernetes.io/managed-by': 'mesh', 'app.kubernetes.io/part-of': 'mesh-lab'},
} as const

export type Version = (typeof LAB.versions)[number]

/** SPIFFE principal as AuthorizationPolicy wants it (no spiffe:// prefix). */
export const principalFor = (namespace: string, serviceAccount: string): string =>
  `${LAB.trustDomain}/ns/${namespace}/sa/${serviceAccount}`

export interface ObjectMeta {
  name: string
  namespace: string
  labels: Record<string, string>
}

export const meta = (name: string, namespace: string): ObjectMeta => ({name, namespace, labels: {...LAB.labels}})

/** Throw the typed error for a code, using its catalogued suggestion. */
export const fail = (code: MeshCode, message: string, field?: string): never => {
  throw invalid(code, message, MESH_CODES[code], field)
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const DNS1123_SUBDOMAIN_PART = DNS1123_LABEL

export const isDns1123Label = (s: string): boolean => s.length <= 63 && DNS1123_LABEL.test(s)
export const isDns1123Subdomain = (s: string): boolean =>
  s.length > 0 && s.length <= 253 && s.split('.').every((p) => p.length <= 63 && DNS1123_SUBDOMAIN_PART.test(p))

/** For builder inputs: a namespace or object name must be a DNS-1123 label. */
export function requireDnsLabel(value: string, field: string): string {
  if (!isDns1123Label(value)) fail('MESH_NAME_INVALID', `${field} "${value}" is not a valid DNS-1123 label`, field)
  return value
}
