// Discovery documents (legacy and aggregated apidiscovery.k8s.io/v2) and OpenAPI v3.
import {createHash} from 'node:crypto'
import {apiVersionOf, type ResourceInfo} from './registry.js'

export const KUBE_VERSION = {major: '1', minor: '32', gitVersion: 'v1.32.3'}

export function versionInfo(): Record<string, string> {
  return {
    major: KUBE_VERSION.major,
    minor: KUBE_VERSION.minor,
    gitVersion: KUBE_VERSION.gitVersion,
    gitCommit: '0000000000000000000000000000000000000000',
    gitTreeState: 'clean',
    buildDate: '2025-03-11T19:52:21Z',
    goVersion: 'go1.23.6',
    compiler: 'gc',
    platform: `${process.platform === 'win32' ? 'windows' : process.platform}/${process.arch === 'x64' ? 'amd64' : process.arch}`,
  }
}

export const DISCOVERY_V2_CONTENT_TYPE = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList'

/** True when the Accept header asks for the aggregated discovery document. */
export function wantsAggregated(accept: string | undefined): boolean {
  return !!accept && /as=APIGroupDiscoveryList/.test(accept) && /v=v2(?!beta)/.test(accept)
}

interface GroupVersion {
  group: string
  version: string
  types: ResourceInfo[]
}

export function groupVersions(types: readonly ResourceInfo[]): GroupVersion[] {
  const m = new Map<string, GroupVersion>()
  for (const t of types) {
    const k = apiVersionOf(t)
    if (!m.has(k)) m.set(k, {group: t.group, version: t.version, types: []})
    m.get(k)!.types.push(t)
  }
  return [...m.values()]
}

const SUB_VERBS = ['get', 'patch', 'update']

function scaleKind() {
  return {group: 'autoscaling', version: 'v1', kind: 'Scale'}
}

export function apiResourceList(gv: GroupVersion): Record<string, unknown> {
  const resources: Record<string, unknown>[] = []
  for (const t of gv.types) {
    resources.push({
      name: t.resource,
      singularName: t.singular,
      namespaced: t.namespaced,
      kind: t.kind,
      verbs: t.verbs,
      ...(t.shortNames.length ? {shortNames: t.shortNames} : {}),
      ...(t.categories.length ? {categories: t.categories} : {}),
      storageVersionHash: createHash('sha256').update(`${apiVersionOf(t)}/${t.kind}`).digest('base64').slice(0, 11),
    })
    if (t.statusSubresource) resources.push({name: `${t.resource}/status`, singularName: '', namespaced: t.namespaced, kind: t.kind, verbs: SUB_VERBS})
    if (t.scaleSubresource) {
      resources.push({name: `${t.resource}/scale`, singularName: '', namespaced: t.namespaced, group: 'autoscaling', version: 'v1', kind: 'Scale', verbs: SUB_VERBS})
    }
  }
  return {kind: 'APIResourceList', apiVersion: 'v1', groupVersion: apiVersionOf(gv), resources}
}

export function apiVersions(serverAddress: string): Record<string, unknown> {
  return {kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{clientCIDR: '0.0.0.0/0', serverAddress}]}
}

export function apiGroup(name: string, gvs: GroupVersion[]): Record<string, unknown> {
  const versions = gvs.filter((g) => g.group === name).map((g) => ({groupVersion: `${g.group}/${g.version}`, version: g.version}))
  return {kind: 'APIGroup', apiVersion: 'v1', name, versions, preferredVersion: versions[0]}
}

export function apiGroupList(gvs: GroupVersion[]): Record<string, unknown> {
  const names = [...new Set(gvs.filter((g) => g.group !== '').map((g) => g.group))]
  return {kind: 'APIGroupList', apiVersion: 'v1', groups: names.map((n) => {
    const {kind: _k, apiVersion: _a, ...rest} = apiGroup(n, gvs)
    return rest
  })}
}

function discoveryResource(t: ResourceInfo): Record<string, unknown> {
  const subresources: Record<string, unknown>[] = []
  if (t.statusSubresource) subresources.push({subresource: 'status', responseKind: {group: t.group, version: t.version, kind: t.kind}, verbs: SUB_VERBS})
  if (t.scaleSubresource) subresources.push({subresource: 'scale', responseKind: scaleKind(), verbs: SUB_VERBS})
  return {
    resource: t.resource,
    responseKind: {group: t.group, version: t.version, kind: t.kind},
    scope: t.namespaced ? 'Namespaced' : 'Cluster',
    singularResource: t.singular,
    verbs: t.verbs,
    ...(t.shortNames.length ? {shortNames: t.shortNames} : {}),
    ...(t.categories.length ? {categories: t.categories} : {}),
    ...(subresources.length ? {subresources} : {}),
  }
}

/** apidiscovery.k8s.io/v2 APIGroupDiscoveryList for `/api` (core) or `/apis` (named groups). */
export function aggregatedDiscovery(gvs: GroupVersion[], core: boolean): Record<string, unknown> {
  const selected = gvs.filter((g) => (g.group === '') === core)
  const groups = new Map<string, GroupVersion[]>()
  for (const g of selected) groups.set(g.group, [...(groups.get(g.group) ?? []), g])
  return {
    kind: 'APIGroupDiscoveryList',
    apiVersion: 'apidiscovery.k8s.io/v2',
    metadata: {},
    items: [...groups.entries()].map(([name, list]) => ({
      metadata: name ? {name} : {},
      versions: list.map((g) => ({version: g.version, resources: g.types.map(discoveryResource), freshness: 'Current'})),
    })),
  }
}

// ---------------------------------------------------------------- OpenAPI v3

const META = 'io.k8s.apimachinery.pkg.apis.meta.v1'

const str = {type: 'string'}
const strMap = {type: 'object', additionalProperties: {type: 'string'}}

function metaSchemas(): Record<string, unknown> {
  return {
    [`${META}.ObjectMeta`]: {
      type: 'object',
      description: 'Standard object metadata.',
      properties: {
        name: str,
        generateName: str,
        namespace: str,
        uid: str,
        resourceVersion: str,
        generation: {type: 'integer', format: 'int64'},
        creationTimestamp: {type: 'string', format: 'date-time'},
        deletionTimestamp: {type: 'string', format: 'date-time'},
        deletionGracePeriodSeconds: {type: 'integer', format: 'int64'},
        labels: strMap,
        annotations: strMap,
        finalizers: {type: 'array', items: str, 'x-kubernetes-list-type': 'set'},
        ownerReferences: {
          type: 'array',
          items: {$ref: `#/components/schemas/${META}.OwnerReference`},
          'x-kubernetes-list-type': 'map',
          'x-kubernetes-list-map-keys': ['uid'],
          'x-kubernetes-patch-merge-key': 'uid',
          'x-kubernetes-patch-strategy': 'merge',
        },
        managedFields: {type: 'array', items: {$ref: `#/components/schemas/${META}.ManagedFieldsEntry`}},
        selfLink: str,
      },
    },
    [`${META}.OwnerReference`]: {
      type: 'object',
      required: ['apiVersion', 'kind', 'name', 'uid'],
      properties: {apiVersion: str, kind: str, name: str, uid: str, controller: {type: 'boolean'}, blockOwnerDeletion: {type: 'boolean'}},
      'x-kubernetes-map-type': 'atomic',
    },
    [`${META}.ManagedFieldsEntry`]: {
      type: 'object',
      properties: {
        apiVersion: str,
        fieldsType: str,
        fieldsV1: {type: 'object'},
        manager: str,
        operation: str,
        subresource: str,
        time: {type: 'string', format: 'date-time'},
      },
    },
    [`${META}.Status`]: {
      type: 'object',
      properties: {apiVersion: str, kind: str, code: {type: 'integer'}, message: str, reason: str, status: str, details: {type: 'object', 'x-kubernetes-preserve-unknown-fields': true}},
      'x-kubernetes-group-version-kind': [{group: '', version: 'v1', kind: 'Status'}],
    },
    [`${META}.Patch`]: {type: 'object', description: 'a patch document'},
    [`${META}.DeleteOptions`]: {type: 'object', 'x-kubernetes-preserve-unknown-fields': true},
  }
}

/** OpenAPI schema name for a type: io.k8s.api.apps.v1.Deployment, io.istio.networking.v1.VirtualService… */
export function schemaName(t: ResourceInfo): string {
  if (t.group === '') return `io.k8s.api.core.v1.${t.kind}`
  if (t.group.endsWith('.k8s.io')) return `io.k8s.${t.group.replace('.k8s.io', '')}.pkg.apis.${t.group.split('.')[0]}.${t.version}.${t.kind}`
  if (t.group.endsWith('.istio.io')) return `io.istio.${t.group.split('.')[0]}.${t.version}.${t.kind}`
  return `io.k8s.api.${t.group}.${t.version}.${t.kind}`
}

function kindSchema(t: ResourceInfo): Record<string, unknown> {
  const open = {type: 'object', 'x-kubernetes-preserve-unknown-fields': true}
  return {
    type: 'object',
    description: `${t.kind} (served by the embedded mesh cluster)`,
    properties: {
      apiVersion: str,
      kind: str,
      metadata: {allOf: [{$ref: `#/components/schemas/${META}.ObjectMeta`}], default: {}},
      spec: open,
      status: open,
      // ConfigMaps, Secrets, Endpoints and Events keep their payload outside spec
      data: open,
      binaryData: open,
      stringData: open,
      type: str,
      immutable: {type: 'boolean'},
      subsets: {type: 'array', items: open},
      secrets: {type: 'array', items: open},
      imagePullSecrets: {type: 'array', items: open},
      automountServiceAccountToken: {type: 'boolean'},
    },
    'x-kubernetes-preserve-unknown-fields': true,
    'x-kubernetes-group-version-kind': [{group: t.group, version: t.version, kind: t.kind}],
  }
}

const QUERY = (name: string, description: string) => ({name, in: 'query', description, schema: {type: 'string'}, uniqueItems: true})
const WRITE_PARAMS = [
  QUERY('dryRun', 'When present, indicates that modifications should not be persisted.'),
  QUERY('fieldManager', 'The name of the actor or entity making these changes.'),
  QUERY('fieldValidation', 'Ignore, Warn or Strict: how to treat unknown or duplicate fields.'),
]

function op(t: ResourceInfo, action: string, verb: string, ref: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    description: `${verb} ${t.kind}`,
    operationId: `${verb}${t.namespaced ? 'Namespaced' : ''}${t.kind}`,
    tags: [apiVersionOf(t)],
    responses: {'200': {description: 'OK', content: {'application/json': {schema: {$ref: ref}}}}, '401': {description: 'Unauthorized'}},
    'x-kubernetes-action': action,
    'x-kubernetes-group-version-kind': {group: t.group, version: t.version, kind: t.kind},
    ...extra,
  }
}

/** The OpenAPI v3 document of one group-version. */
export function openApiDocument(gv: GroupVersion): Record<string, unknown> {
  const schemas: Record<string, unknown> = metaSchemas()
  const paths: Record<string, unknown> = {}
  const prefix = gv.group ? `/apis/${gv.group}/${gv.version}` : `/api/${gv.version}`
  for (const t of gv.types) {
    const name = schemaName(t)
    schemas[name] = kindSchema(t)
    schemas[`${name}List`] = {
      type: 'object',
      properties: {apiVersion: str, kind: str, items: {type: 'array', items: {$ref: `#/components/schemas/${name}`}}, metadata: {type: 'object'}},
      'x-kubernetes-group-version-kind': [{group: t.group, version: t.version, kind: t.listKind}],
    }
    const ref = `#/components/schemas/${name}`
    const coll = t.namespaced ? `${prefix}/namespaces/{namespace}/${t.resource}` : `${prefix}/${t.resource}`
    const nsParam = t.namespaced ? [{name: 'namespace', in: 'path', required: true, schema: str}] : []
    const writes = !t.readOnly
    const body = (types: string[]) => ({
      requestBody: {content: Object.fromEntries(types.map((c) => [c, {schema: {$ref: c.includes('patch') ? `#/components/schemas/${META}.Patch` : ref}}])), required: true},
    })
    paths[coll] = {
      get: op(t, 'list', 'list', `#/components/schemas/${name}List`),
      ...(writes ? {post: op(t, 'post', 'create', ref, {parameters: WRITE_PARAMS, ...body(['application/json', 'application/yaml'])})} : {}),
      parameters: nsParam,
    }
    const one = {
      get: op(t, 'get', 'read', ref),
      ...(writes
        ? {
            put: op(t, 'put', 'replace', ref, {parameters: WRITE_PARAMS, ...body(['application/json', 'application/yaml'])}),
            patch: op(t, 'patch', 'patch', ref, {
              parameters: [...WRITE_PARAMS, QUERY('force', 'Force is going to "force" Apply requests.')],
              // no strategic-merge-patch+json here: kubectl would then build the patch from these
              // permissive schemas; without it, it uses its compiled-in types (built-ins) or merge patch (CRDs)
              ...body(['application/apply-patch+yaml', 'application/json-patch+json', 'application/merge-patch+json']),
            }),
            delete: op(t, 'delete', 'delete', `#/components/schemas/${META}.Status`, {parameters: [QUERY('dryRun', ''), QUERY('propagationPolicy', '')]}),
          }
        : {}),
      parameters: [{name: 'name', in: 'path', required: true, schema: str}, ...nsParam],
    }
    paths[`${coll}/{name}`] = one
    if (t.statusSubresource && writes) paths[`${coll}/{name}/status`] = {...one, delete: undefined}
  }
  return {
    openapi: '3.0.0',
    info: {title: 'Kubernetes', version: KUBE_VERSION.gitVersion},
    paths,
    components: {schemas},
  }
}

/** `/openapi/v3`: one entry per group-version with a content hash, as kubectl expects. */
export function openApiIndex(gvs: GroupVersion[]): Record<string, unknown> {
  const paths: Record<string, unknown> = {}
  for (const gv of gvs) {
    const rel = gv.group ? `apis/${gv.group}/${gv.version}` : `api/${gv.version}`
    const hash = createHash('sha512').update(JSON.stringify(openApiDocument(gv))).digest('hex').slice(0, 64).toUpperCase()
    paths[rel] = {serverRelativeURL: `/openapi/v3/${rel}?hash=${hash}`}
  }
  return {paths}
}
