// The resource types the embedded API serves, with what discovery needs to describe them.
import type {ResourceType} from './types.js'

export interface ResourceInfo extends ResourceType {
  singular: string
  listKind: string
  shortNames: string[]
  categories: string[]
  verbs: string[]
  /** has a /status subresource: the main resource ignores status writes and vice versa */
  statusSubresource: boolean
  /** has a /scale subresource (spec.replicas) */
  scaleSubresource: boolean
  /** served but not writable (the built-in CRD objects) */
  readOnly?: boolean
}

const RW = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch']
const RO = ['get', 'list', 'watch']

function info(
  group: string,
  version: string,
  resource: string,
  kind: string,
  namespaced: boolean,
  extra: Partial<Omit<ResourceInfo, 'group' | 'version' | 'resource' | 'kind' | 'namespaced'>> = {},
): ResourceInfo {
  return {
    group,
    version,
    resource,
    kind,
    namespaced,
    singular: kind.toLowerCase(),
    listKind: `${kind}List`,
    shortNames: [],
    categories: [],
    verbs: RW,
    statusSubresource: false,
    scaleSubresource: false,
    ...extra,
  }
}

// Istio's own CRD names (shortNames and categories as its charts declare them).
const istioCategories = (g: string): string[] => ['istio-io', `${g.split('.')[0]}-istio-io`]

export const RESOURCE_TYPES: readonly ResourceInfo[] = [
  info('', 'v1', 'namespaces', 'Namespace', false, {shortNames: ['ns'], statusSubresource: true}),
  info('', 'v1', 'pods', 'Pod', true, {shortNames: ['po'], categories: ['all'], statusSubresource: true}),
  info('', 'v1', 'services', 'Service', true, {shortNames: ['svc'], categories: ['all'], statusSubresource: true}),
  info('', 'v1', 'endpoints', 'Endpoints', true, {shortNames: ['ep'], singular: 'endpoints'}),
  info('', 'v1', 'serviceaccounts', 'ServiceAccount', true, {shortNames: ['sa']}),
  info('', 'v1', 'configmaps', 'ConfigMap', true, {shortNames: ['cm']}),
  info('', 'v1', 'secrets', 'Secret', true),
  info('', 'v1', 'events', 'Event', true, {shortNames: ['ev']}),
  info('apps', 'v1', 'deployments', 'Deployment', true, {
    shortNames: ['deploy'],
    categories: ['all'],
    statusSubresource: true,
    scaleSubresource: true,
  }),
  info('networking.istio.io', 'v1', 'virtualservices', 'VirtualService', true, {
    shortNames: ['vs'],
    categories: istioCategories('networking.istio.io'),
    statusSubresource: true,
  }),
  info('networking.istio.io', 'v1', 'destinationrules', 'DestinationRule', true, {
    shortNames: ['dr'],
    categories: istioCategories('networking.istio.io'),
    statusSubresource: true,
  }),
  info('networking.istio.io', 'v1', 'gateways', 'Gateway', true, {
    shortNames: ['gw'],
    categories: istioCategories('networking.istio.io'),
    statusSubresource: true,
  }),
  info('security.istio.io', 'v1', 'peerauthentications', 'PeerAuthentication', true, {
    shortNames: ['pa'],
    categories: istioCategories('security.istio.io'),
    statusSubresource: true,
  }),
  info('security.istio.io', 'v1', 'authorizationpolicies', 'AuthorizationPolicy', true, {
    // recent Istio releases (1.22+) declare `ap`
    shortNames: ['ap'],
    categories: istioCategories('security.istio.io'),
    statusSubresource: true,
  }),
  info('telemetry.istio.io', 'v1', 'telemetries', 'Telemetry', true, {
    singular: 'telemetry',
    shortNames: ['telemetry'],
    categories: istioCategories('telemetry.istio.io'),
    statusSubresource: true,
  }),
  info('apiextensions.k8s.io', 'v1', 'customresourcedefinitions', 'CustomResourceDefinition', false, {
    shortNames: ['crd', 'crds'],
    categories: ['api-extensions'],
    verbs: RO,
    readOnly: true,
  }),
]

export const typeKey = (t: {group: string; resource: string}): string => `${t.group || 'core'}/${t.resource}`

export const apiVersionOf = (t: {group: string; version: string}): string => (t.group ? `${t.group}/${t.version}` : t.version)

/** Istio-style CRD objects for every type outside the built-in Kubernetes groups. */
export function crdObjects(types: readonly ResourceInfo[], created: string): Array<Record<string, unknown>> {
  return types
    .filter((t) => t.group.endsWith('.istio.io'))
    .map((t) => ({
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: {
        name: `${t.resource}.${t.group}`,
        labels: {app: 'istio-pilot', 'app.kubernetes.io/part-of': 'istio'},
        creationTimestamp: created,
        generation: 1,
      },
      spec: {
        group: t.group,
        names: {
          kind: t.kind,
          listKind: t.listKind,
          plural: t.resource,
          singular: t.singular,
          ...(t.shortNames.length ? {shortNames: t.shortNames} : {}),
          categories: t.categories,
        },
        scope: t.namespaced ? 'Namespaced' : 'Cluster',
        versions: [
          {
            name: t.version,
            served: true,
            storage: true,
            subresources: t.statusSubresource ? {status: {}} : undefined,
            schema: {openAPIV3Schema: {type: 'object', 'x-kubernetes-preserve-unknown-fields': true}},
          },
        ],
      },
      status: {
        acceptedNames: {kind: t.kind, plural: t.resource},
        conditions: [{type: 'Established', status: 'True', reason: 'InitialNamesAccepted'}],
        storedVersions: [t.version],
      },
    }))
}
