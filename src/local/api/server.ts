// The embedded cluster's Kubernetes-compatible HTTPS API: discovery, OpenAPI v3, CRUD, watch,
// patch (merge, JSON, strategic, server-side apply) over a Store. The caller listens
// (127.0.0.1 only). See docs/adr/0021-api-server-surface.md.
import {timingSafeEqual} from 'node:crypto'
import type {IncomingMessage, ServerResponse} from 'node:http'
import https from 'node:https'
import fjp from 'fast-json-patch'
import {load} from 'js-yaml'
import type {FieldCause} from '../../lib/errors.js'
import {
  apiGroup,
  apiGroupList,
  apiResourceList,
  apiVersions,
  aggregatedDiscovery,
  DISCOVERY_V2_CONTENT_TYPE,
  groupVersions,
  openApiDocument,
  openApiIndex,
  versionInfo,
  wantsAggregated,
} from './discovery.js'
import {
  badRequest,
  conflict,
  invalidObject,
  isMeshApiError,
  MeshApiError,
  methodNotAllowed,
  notFound,
  unsupportedMediaType,
  internalError,
  type StatusCause,
} from './errors.js'
import {mergePatch, strategicMergePatch} from './patch.js'
import {apiVersionOf, RESOURCE_TYPES, typeKey, type ResourceInfo} from './registry.js'
import {fieldMatcher, labelMatcher, matchesLabelSelector} from './selectors.js'
import {recordUpdate, serverSideApply, type TypeTraits} from './ssa.js'
import type {DeleteOptions, WriteOptions} from './store.js'
import {toTable, wantsTable} from './table.js'
import type {KubeObject, ListOptions, ResourceType, Store} from './types.js'
import {canonical, clone, isPlainObject} from './util.js'

/** A Store whose writes accept dry-run and delete options (FileStore is one). */
export interface ApiStore extends Store {
  create(type: ResourceType, obj: KubeObject, opts?: WriteOptions): Promise<KubeObject>
  update(type: ResourceType, obj: KubeObject, opts?: WriteOptions): Promise<KubeObject>
  updateStatus(type: ResourceType, obj: KubeObject, opts?: WriteOptions): Promise<KubeObject>
  delete(type: ResourceType, namespace: string | undefined, name: string, opts?: DeleteOptions): Promise<KubeObject>
}

export type ObjectValidator = (obj: KubeObject) => FieldCause[]

export interface ApiServerOptions {
  store: ApiStore
  /** bearer token every request except /healthz, /readyz, /livez and /version must carry */
  token: string
  tlsKey: string | Buffer
  tlsCert: string | Buffer
  /** checks run on the final object of every create/update/patch/apply; causes → 422 Invalid */
  validators?: ObjectValidator | ObjectValidator[]
  /** non-Kubernetes paths (e.g. /mesh/v1/...), consulted after authentication; return true when handled */
  extraRoutes?: (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>
  /** request bodies above this size are refused (default 3 MiB, like the apiserver) */
  maxBodyBytes?: number
}

const ANONYMOUS = new Set(['/healthz', '/readyz', '/livez', '/version'])
const JSON_CT = 'application/json'

export function createApiServer(opts: ApiServerOptions): https.Server {
  const api = new ApiHandler(opts)
  const server = https.createServer({key: opts.tlsKey, cert: opts.tlsCert}, (req, res) => {
    api.handle(req, res).catch((e) => api.fail(res, e))
  })
  // watches are long-lived; keep idle sockets from piling up
  server.keepAliveTimeout = 30_000
  return server
}

interface Route {
  type: ResourceInfo
  namespace?: string
  name?: string
  sub?: string
  watch: boolean
}

class ApiHandler {
  private readonly store: ApiStore
  private readonly token: Buffer
  private readonly validators: ObjectValidator[]
  private readonly types: ResourceInfo[]
  private readonly gvs: ReturnType<typeof groupVersions>
  private readonly maxBody: number
  private openapiCache = new Map<string, string>()

  constructor(private readonly opts: ApiServerOptions) {
    this.store = opts.store
    this.token = Buffer.from(opts.token)
    this.validators = opts.validators ? (Array.isArray(opts.validators) ? opts.validators : [opts.validators]) : []
    const known = new Map(RESOURCE_TYPES.map((t) => [typeKey(t), t]))
    this.types = opts.store.types().map((t) => ({...(known.get(typeKey(t)) ?? defaults(t)), ...t}) as ResourceInfo)
    this.gvs = groupVersions(this.types)
    this.maxBody = opts.maxBodyBytes ?? 3 * 1024 * 1024
  }

  fail(res: ServerResponse, e: unknown): void {
    const err = isMeshApiError(e) ? e : internalError(e instanceof Error ? e.message : String(e))
    if (res.headersSent) {
      res.end()
      return
    }
    sendJson(res, err.status, err.toStatus())
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1')
    const path = url.pathname.replace(/\/+$/, '') || '/'
    if (!ANONYMOUS.has(path) && !this.authorized(req)) {
      sendJson(res, 401, {kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401})
      return
    }
    if (path === '/healthz' || path === '/readyz' || path === '/livez') {
      res.writeHead(200, {'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff'})
      res.end('ok')
      return
    }
    if (path === '/version') return sendJson(res, 200, versionInfo())
    if (this.opts.extraRoutes && (await this.opts.extraRoutes(req, res))) return

    const seg = path.split('/').filter(Boolean).map(decodeURIComponent)
    const accept = req.headers.accept
    if (seg[0] === 'openapi') return this.openapi(res, seg)
    const discoveryPath = (seg[0] === 'api' && seg.length <= 2) || (seg[0] === 'apis' && seg.length <= 3)
    if (discoveryPath && req.method !== 'GET') throw methodNotAllowed('the server does not allow this method on the requested resource')
    if (seg[0] === 'api' && seg.length === 1) {
      if (wantsAggregated(accept)) return sendJson(res, 200, aggregatedDiscovery(this.gvs, true), DISCOVERY_V2_CONTENT_TYPE)
      return sendJson(res, 200, apiVersions(req.socket.localAddress ? `${req.socket.localAddress}:${req.socket.localPort}` : '127.0.0.1'))
    }
    if (seg[0] === 'apis' && seg.length === 1) {
      if (wantsAggregated(accept)) return sendJson(res, 200, aggregatedDiscovery(this.gvs, false), DISCOVERY_V2_CONTENT_TYPE)
      return sendJson(res, 200, apiGroupList(this.gvs))
    }
    if (seg[0] === 'api' && seg.length === 2) {
      const gv = this.gvs.find((g) => g.group === '' && g.version === seg[1])
      if (!gv) throw pathNotFound(path)
      return sendJson(res, 200, apiResourceList(gv))
    }
    if (seg[0] === 'apis' && seg.length === 2) {
      if (!this.gvs.some((g) => g.group === seg[1])) throw pathNotFound(path)
      return sendJson(res, 200, apiGroup(seg[1], this.gvs))
    }
    if (seg[0] === 'apis' && seg.length === 3) {
      const gv = this.gvs.find((g) => g.group === seg[1] && g.version === seg[2])
      if (!gv) throw pathNotFound(path)
      return sendJson(res, 200, apiResourceList(gv))
    }
    if (seg[0] !== 'api' && seg[0] !== 'apis') throw pathNotFound(path)
    const group = seg[0] === 'api' ? '' : seg[1]
    const version = seg[0] === 'api' ? seg[1] : seg[2]
    const route = this.route(group, version, seg.slice(seg[0] === 'api' ? 2 : 3), path)
    return this.resource(req, res, url, route)
  }

  private authorized(req: IncomingMessage): boolean {
    const h = req.headers.authorization
    if (!h || !h.startsWith('Bearer ')) return false
    const given = Buffer.from(h.slice(7).trim())
    return given.length === this.token.length && timingSafeEqual(given, this.token)
  }

  private route(group: string, version: string, rest: string[], path: string): Route {
    let watch = false
    if (rest[0] === 'watch') {
      watch = true
      rest = rest.slice(1)
    }
    const find = (resource: string) => this.types.find((t) => t.group === group && t.version === version && t.resource === resource)
    let r: Route | undefined
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      const t = find(rest[2])
      if (!t || !t.namespaced || rest.length > 5) throw pathNotFound(path)
      r = {type: t, namespace: rest[1], name: rest[3], sub: rest[4], watch}
    } else if (rest.length >= 1 && rest.length <= 3) {
      const t = find(rest[0])
      if (!t) throw pathNotFound(path)
      if (t.namespaced && rest.length > 1) throw pathNotFound(path)
      r = {type: t, name: rest[1], sub: rest[2], watch}
    }
    if (!r) throw pathNotFound(path)
    if (r.sub !== undefined) {
      const ok = (r.sub === 'status' && r.type.statusSubresource) || (r.sub === 'scale' && r.type.scaleSubresource)
      if (!ok) throw pathNotFound(path)
    }
    return r
  }

  // ------------------------------------------------------------------ verbs

  private async resource(req: IncomingMessage, res: ServerResponse, url: URL, r: Route): Promise<void> {
    const q = url.searchParams
    const method = req.method ?? 'GET'
    if (method === 'GET') {
      if (r.watch || isTrue(q.get('watch'))) return this.watch(req, res, q, r)
      if (!r.name) return this.list(req, res, q, r)
      const o = this.mustGet(r)
      if (r.sub === 'scale') return sendJson(res, 200, scaleOf(o))
      return sendJson(res, 200, o)
    }
    if (r.type.readOnly && method !== 'GET') throw methodNotAllowed(`${r.type.resource}.${r.type.group} are read-only in the embedded cluster`)
    const dryRun = parseDryRun(q)
    const manager = fieldManager(req, q)
    switch (method) {
      case 'POST': {
        if (r.name) throw methodNotAllowed('POST is not supported on a named resource')
        if (r.type.namespaced && !r.namespace) throw methodNotAllowed(`create ${r.type.resource} in a namespace: POST /…/namespaces/<ns>/${r.type.resource}`)
        const body = parseObject(await readBody(req, this.maxBody), req.headers['content-type'], false)
        const obj = this.checkBody(r, body, false)
        this.admit(r.type, obj, undefined)
        obj.metadata.managedFields = recordUpdate(undefined, obj, manager, apiVersionOf(r.type), traits(r.type))
        return sendJson(res, 201, await this.store.create(r.type, obj, {dryRun}))
      }
      case 'PUT': {
        if (!r.name) throw methodNotAllowed('PUT needs a resource name')
        const body = parseObject(await readBody(req, this.maxBody), req.headers['content-type'], false)
        if (r.sub === 'scale') return sendJson(res, 200, await this.writeScale(r, body, dryRun, manager))
        const obj = this.checkBody(r, body, true)
        const old = this.mustGet(r)
        if (r.sub === 'status') return sendJson(res, 200, await this.store.updateStatus(r.type, obj, {dryRun}))
        this.admit(r.type, obj, old)
        obj.metadata.managedFields = recordUpdate(old, obj, manager, apiVersionOf(r.type), traits(r.type))
        return sendJson(res, 200, await this.store.update(r.type, obj, {dryRun}))
      }
      case 'PATCH':
        if (!r.name) throw methodNotAllowed('PATCH needs a resource name')
        return this.patch(req, res, q, r, dryRun, manager)
      case 'DELETE': {
        const raw = await readBody(req, this.maxBody)
        const delOpts = parseDeleteOptions(raw, q, dryRun)
        if (!r.name) return this.deleteCollection(res, q, r, delOpts)
        if (r.sub) throw methodNotAllowed(`DELETE is not supported on ${r.sub}`)
        const gone = await this.store.delete(r.type, r.namespace, r.name, delOpts)
        return sendJson(res, 200, {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Success',
          details: {name: r.name, group: r.type.group, kind: r.type.resource, uid: gone.metadata.uid},
        })
      }
      default:
        throw methodNotAllowed(`${method} is not supported`)
    }
  }

  private mustGet(r: Route): KubeObject {
    const o = this.store.get(r.type, r.namespace, r.name!)
    if (!o) throw notFound(r.type, r.name!)
    return o
  }

  private list(req: IncomingMessage, res: ServerResponse, q: URLSearchParams, r: Route): void {
    const lo = listOptions(q)
    const result = this.store.list(r.type, r.namespace, lo)
    const meta = {resourceVersion: result.resourceVersion, ...(result.continue ? {continue: result.continue} : {})}
    if (wantsTable(req.headers.accept)) {
      return sendJson(res, 200, toTable(r.type, result.items, meta, q.get('includeObject')), 'application/json;as=Table;v=v1;g=meta.k8s.io')
    }
    sendJson(res, 200, {kind: r.type.listKind, apiVersion: apiVersionOf(r.type), metadata: meta, items: result.items})
  }

  private watch(req: IncomingMessage, res: ServerResponse, q: URLSearchParams, r: Route): void {
    const labels = labelMatcher(q.get('labelSelector') ?? undefined)
    const fields = fieldMatcher(q.get('fieldSelector') ?? undefined)
    const byName = r.name
    const match = (o: KubeObject) =>
      (!r.namespace || o.metadata.namespace === r.namespace) &&
      (!byName || o.metadata.name === byName) &&
      labels(o.metadata.labels) &&
      fields(o as Record<string, unknown>)
    const table = wantsTable(req.headers.accept)
    const includeObject = q.get('includeObject')
    let first = true
    const render = (o: KubeObject) => {
      if (!table) return o
      const t = toTable(r.type, [o], {resourceVersion: o.metadata.resourceVersion}, includeObject, first)
      first = false
      return t
    }
    res.writeHead(200, {'Content-Type': table ? 'application/json;as=Table;v=v1;g=meta.k8s.io' : JSON_CT, 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked'})
    res.flushHeaders()
    const send = (type: string, object: unknown) => res.write(`${JSON.stringify({type, object})}\n`)
    let rv = q.get('resourceVersion') ?? ''
    if (rv === '' || rv === '0') {
      // "start at most recent": the current state as ADDED events, then changes
      const cur = this.store.list(r.type, r.namespace, {})
      for (const o of cur.items) if (match(o)) send('ADDED', render(o))
      rv = cur.resourceVersion
    }
    let unwatch: (() => void) | undefined
    let timer: NodeJS.Timeout | undefined
    const stop = () => {
      unwatch?.()
      unwatch = undefined
      if (timer) clearTimeout(timer)
    }
    try {
      unwatch = this.store.watch(r.type, rv, (_t, ev) => {
        if (match(ev.object)) send(ev.type, render(ev.object))
      })
    } catch (e) {
      // like the apiserver's watch cache: the stream opens, carries one ERROR event (410 Expired), ends
      const err = isMeshApiError(e) ? e : internalError(String(e))
      send('ERROR', err.toStatus())
      res.end()
      return
    }
    const timeout = Number(q.get('timeoutSeconds') ?? '')
    const secs = Number.isFinite(timeout) && timeout > 0 ? timeout : 1800
    timer = setTimeout(() => {
      stop()
      res.end()
    }, secs * 1000)
    timer.unref()
    req.on('close', stop)
    res.on('close', stop)
  }

  private async deleteCollection(res: ServerResponse, q: URLSearchParams, r: Route, opts: DeleteOptions): Promise<void> {
    const items = this.store.list(r.type, r.namespace, listOptions(q)).items
    const deleted: KubeObject[] = []
    for (const o of items) {
      try {
        deleted.push(await this.store.delete(r.type, o.metadata.namespace, o.metadata.name, opts))
      } catch (e) {
        if (!(isMeshApiError(e) && e.status === 404)) throw e
      }
    }
    sendJson(res, 200, {kind: r.type.listKind, apiVersion: apiVersionOf(r.type), metadata: {resourceVersion: this.store.currentResourceVersion()}, items: deleted})
  }

  private async patch(req: IncomingMessage, res: ServerResponse, q: URLSearchParams, r: Route, dryRun: boolean, manager: string): Promise<void> {
    const ct = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase()
    const raw = await readBody(req, this.maxBody)
    const t = r.type
    if (ct === 'application/apply-patch+yaml') {
      if (!q.get('fieldManager')) {
        throw invalidObject({group: 'meta.k8s.io', resource: 'patchoptions', kind: 'PatchOptions'}, '', [{field: 'fieldManager', message: 'Required value: is required for apply patch'}])
      }
      if (r.sub) throw unsupportedMediaType(`${ct} on the ${r.sub} subresource`)
      const body = parseObject(raw, ct, true)
      const applied = this.checkBody(r, body, true)
      const live = this.store.get(t, r.namespace, r.name!)
      const force = isTrue(q.get('force'))
      const {object, conflicts} = serverSideApply({live, applied, manager, force, apiVersion: apiVersionOf(t), traits: traits(t)})
      if (conflicts.length) {
        const msg = `Apply failed with ${conflicts.length} conflict${conflicts.length > 1 ? 's' : ''}: ${conflicts.map((c) => `conflict with "${c.manager}": ${c.field}`).join('\n')}`
        throw new MeshApiError(409, 'Conflict', msg, {
          name: r.name,
          group: t.group,
          kind: t.resource,
          causes: conflicts.map((c) => ({reason: 'FieldManagerConflict', message: `conflict with "${c.manager}" using ${c.apiVersion}`, field: c.field})),
        }, 'rerun with --force-conflicts to take the fields over')
      }
      this.admit(t, object, live)
      if (!live) {
        return sendJson(res, 201, await this.store.create(t, {...object, metadata: {...object.metadata, resourceVersion: undefined}}, {dryRun}))
      }
      object.metadata.resourceVersion = live.metadata.resourceVersion
      return sendJson(res, 200, await this.store.update(t, object, {dryRun}))
    }

    const old = this.mustGet(r)
    const patchDoc = parsePatchBody(raw, ct)
    const apply = (doc: KubeObject): unknown => {
      switch (ct) {
        case 'application/merge-patch+json':
          return mergePatch(doc, patchDoc)
        case 'application/json-patch+json': {
          if (!Array.isArray(patchDoc)) throw badRequest('a JSON patch must be an array of operations')
          try {
            return fjp.applyPatch(clone(doc), patchDoc as fjp.Operation[], true, true).newDocument
          } catch (e) {
            throw new MeshApiError(422, 'Invalid', `the JSON patch could not be applied: ${(e as Error).message.split('\n')[0]}`)
          }
        }
        case 'application/strategic-merge-patch+json':
          if (!t.group.endsWith('k8s.io') && t.group !== '' && t.group !== 'apps' && r.sub !== 'scale') {
            throw new MeshApiError(415, 'UnsupportedMediaType', `strategic merge patch is not supported for ${t.resource}.${t.group}; use application/merge-patch+json or application/json-patch+json`)
          }
          return strategicMergePatch(doc, patchDoc)
        default:
          throw unsupportedMediaType(ct)
      }
    }
    if (r.sub === 'scale') {
      const scale = apply(scaleOf(old))
      if (!isPlainObject(scale)) throw badRequest('the patched Scale is not an object')
      return sendJson(res, 200, await this.writeScale(r, scale as KubeObject, dryRun, manager))
    }
    const patched = apply(old)
    if (!isPlainObject(patched) || !isPlainObject(patched.metadata)) throw badRequest('the patched object is not a Kubernetes object')
    const next = patched as KubeObject
    if (next.metadata.name !== old.metadata.name || (t.namespaced && next.metadata.namespace !== old.metadata.namespace)) {
      throw badRequest('a patch cannot change metadata.name or metadata.namespace')
    }
    if (next.metadata.uid !== old.metadata.uid) {
      throw conflict(t, r.name!, `Precondition failed: UID in precondition: ${String(next.metadata.uid)}, UID in object meta: ${old.metadata.uid}`)
    }
    if (r.sub === 'status') return sendJson(res, 200, await this.store.updateStatus(t, next, {dryRun}))
    this.admit(t, next, old)
    next.metadata.managedFields = recordUpdate(old, next, manager, apiVersionOf(t), traits(t))
    return sendJson(res, 200, await this.store.update(t, next, {dryRun}))
  }

  private async writeScale(r: Route, scale: Record<string, unknown>, dryRun: boolean, manager: string): Promise<KubeObject> {
    const old = this.mustGet(r)
    const replicas = (scale.spec as Record<string, unknown> | undefined)?.replicas
    if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0) {
      throw invalidObject({group: 'autoscaling', resource: 'scales', kind: 'Scale'}, r.name!, [{field: 'spec.replicas', message: `Invalid value: ${JSON.stringify(replicas)}: must be greater than or equal to 0`}])
    }
    const rv = (scale.metadata as Record<string, unknown> | undefined)?.resourceVersion
    const next = clone(old)
    next.spec = {...(next.spec ?? {}), replicas}
    if (typeof rv === 'string' && rv !== '') next.metadata.resourceVersion = rv
    next.metadata.managedFields = recordUpdate(old, next, manager, apiVersionOf(r.type), traits(r.type))
    return scaleOf(await this.store.update(r.type, next, {dryRun}))
  }

  /** The body of a create/update/apply: kind and apiVersion match the URL, names match, namespace set. */
  private checkBody(r: Route, body: Record<string, unknown>, named: boolean): KubeObject {
    const t = r.type
    const want = apiVersionOf(t)
    if (body.apiVersion !== undefined && body.apiVersion !== want) {
      throw badRequest(`the API version in the data (${String(body.apiVersion)}) does not match the expected API version (${want})`)
    }
    if (body.kind !== undefined && body.kind !== t.kind) {
      throw badRequest(`the kind in the data (${String(body.kind)}) does not match the expected kind (${t.kind})`)
    }
    const obj = clone(body) as KubeObject
    obj.apiVersion = want
    obj.kind = t.kind
    if (!isPlainObject(obj.metadata)) obj.metadata = {name: ''} as KubeObject['metadata']
    if (named) {
      if (obj.metadata.name === undefined || obj.metadata.name === '') obj.metadata.name = r.name!
      if (obj.metadata.name !== r.name) {
        throw badRequest(`the name of the object (${String(obj.metadata.name)}) does not match the name on the URL (${r.name})`)
      }
    }
    if (t.namespaced) {
      if (obj.metadata.namespace && obj.metadata.namespace !== r.namespace) {
        throw badRequest('the namespace of the provided object does not match the namespace sent on the request')
      }
      obj.metadata.namespace = r.namespace
    }
    return obj
  }

  /** Defaulting and validation (built-in rules, then the configured validators). */
  private admit(t: ResourceInfo, obj: KubeObject, old: KubeObject | undefined): void {
    applyDefaults(t, obj, old)
    const causes: StatusCause[] = builtinCauses(t, obj, old)
    if (causes.length === 0) {
      for (const v of this.validators) {
        for (const c of v(clone(obj))) {
          causes.push({field: c.field, message: c.value !== undefined ? `Invalid value: ${formatValue(c.value)}: ${c.message}` : c.message, reason: 'FieldValueInvalid'})
        }
      }
    }
    if (causes.length) throw invalidObject(t, obj.metadata.name, causes)
  }

  private openapi(res: ServerResponse, seg: string[]): void {
    if (seg[1] !== 'v3') throw pathNotFound(`/${seg.join('/')}`)
    if (seg.length === 2) return sendJson(res, 200, openApiIndex(this.gvs))
    const rel = seg.slice(2).join('/')
    const gv = this.gvs.find((g) => (g.group ? `apis/${g.group}/${g.version}` : `api/${g.version}`) === rel)
    if (!gv) throw pathNotFound(`/${seg.join('/')}`)
    let body = this.openapiCache.get(rel)
    if (!body) {
      body = JSON.stringify(openApiDocument(gv))
      this.openapiCache.set(rel, body)
    }
    res.writeHead(200, {'Content-Type': JSON_CT, 'Cache-Control': 'public, immutable', 'Content-Length': Buffer.byteLength(body)})
    res.end(body)
  }
}

// ------------------------------------------------------------------ helpers

function defaults(t: ResourceType): ResourceInfo {
  return {
    ...t,
    singular: t.kind.toLowerCase(),
    listKind: `${t.kind}List`,
    shortNames: [],
    categories: [],
    verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'],
    statusSubresource: false,
    scaleSubresource: false,
  }
}

function traits(t: ResourceInfo): TypeTraits {
  const builtin = t.group === '' || t.group === 'apps' || t.group.endsWith('.k8s.io')
  return {keyedLists: builtin, statusSubresource: t.statusSubresource}
}

function sendJson(res: ServerResponse, code: number, body: unknown, contentType = JSON_CT): void {
  const text = JSON.stringify(body)
  res.writeHead(code, {'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-cache, private'})
  res.end(text)
}

const pathNotFound = (path: string): MeshApiError =>
  new MeshApiError(404, 'NotFound', `the server could not find the requested resource (${path})`, {causes: [{reason: 'UnexpectedServerResponse', message: '404 page not found'}]})

const isTrue = (v: string | null): boolean => v === 'true' || v === '1'

function parseDryRun(q: URLSearchParams): boolean {
  const v = q.getAll('dryRun')
  if (v.length === 0) return false
  if (v.every((x) => x === 'All')) return true
  throw badRequest(`Invalid dry run value: ${v.join(',')}: valid values are "All"`)
}

function fieldManager(req: IncomingMessage, q: URLSearchParams): string {
  const m = q.get('fieldManager')
  if (m) {
    if (m.length > 128) throw badRequest('fieldManager: Too long: may not be longer than 128')
    return m
  }
  const ua = req.headers['user-agent'] ?? ''
  return ua.split('/')[0] || 'unknown'
}

function listOptions(q: URLSearchParams): ListOptions {
  const limit = Number(q.get('limit') ?? '')
  return {
    labelSelector: q.get('labelSelector') ?? undefined,
    fieldSelector: q.get('fieldSelector') ?? undefined,
    limit: Number.isInteger(limit) && limit > 0 ? limit : undefined,
    continue: q.get('continue') ?? undefined,
  }
}

function readBody(req: IncomingMessage, max: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > max) {
        reject(new MeshApiError(413, 'BadRequest', `the request body is larger than ${max} bytes`))
        req.destroy()
        return
      }
      chunks.push(c)
    })
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

/** Parses a create/update/apply body (JSON, or YAML for application/yaml and apply patches). */
function parseObject(raw: string, contentType: string | undefined, yaml: boolean): Record<string, unknown> {
  const ct = (contentType ?? '').split(';')[0].trim().toLowerCase()
  if (!yaml && ct && ct !== 'application/json' && ct !== 'application/yaml' && ct !== '*/*') throw unsupportedMediaType(ct)
  if (raw.trim() === '') throw badRequest('the request body is empty; expected a Kubernetes object')
  let v: unknown
  try {
    v = yaml || ct === 'application/yaml' ? load(raw) : JSON.parse(raw)
  } catch (e) {
    throw badRequest(`the request body could not be decoded: ${(e as Error).message.split('\n')[0]}`)
  }
  if (!isPlainObject(v)) throw badRequest('the request body must be a single object (a map), not a list or a scalar')
  return v
}

function parsePatchBody(raw: string, ct: string): unknown {
  if (!['application/merge-patch+json', 'application/json-patch+json', 'application/strategic-merge-patch+json'].includes(ct)) throw unsupportedMediaType(ct)
  try {
    return JSON.parse(raw)
  } catch (e) {
    throw badRequest(`the patch could not be decoded: ${(e as Error).message.split('\n')[0]}`)
  }
}

function parseDeleteOptions(raw: string, q: URLSearchParams, dryRun: boolean): DeleteOptions {
  let body: Record<string, unknown> = {}
  if (raw.trim()) {
    try {
      const v = JSON.parse(raw)
      if (isPlainObject(v)) body = v
    } catch {
      throw badRequest('the DeleteOptions body could not be decoded')
    }
  }
  const policy = (q.get('propagationPolicy') ?? body.propagationPolicy) as string | undefined
  if (policy !== undefined && !['Background', 'Foreground', 'Orphan'].includes(policy)) {
    throw badRequest(`propagationPolicy: Unsupported value: "${policy}": supported values: "Background", "Foreground", "Orphan"`)
  }
  const orphan = body.orphanDependents === true || q.get('orphanDependents') === 'true'
  const bodyDry = Array.isArray(body.dryRun) && body.dryRun.includes('All')
  return {
    propagationPolicy: (orphan ? 'Orphan' : policy) as DeleteOptions['propagationPolicy'],
    preconditions: isPlainObject(body.preconditions) ? (body.preconditions as DeleteOptions['preconditions']) : undefined,
    dryRun: dryRun || bodyDry,
  }
}

function scaleOf(d: KubeObject): KubeObject {
  const sel = d.spec?.selector?.matchLabels as Record<string, string> | undefined
  return {
    kind: 'Scale',
    apiVersion: 'autoscaling/v1',
    metadata: {
      name: d.metadata.name,
      namespace: d.metadata.namespace,
      uid: d.metadata.uid,
      resourceVersion: d.metadata.resourceVersion,
      creationTimestamp: d.metadata.creationTimestamp,
    },
    spec: {replicas: d.spec?.replicas ?? 1},
    status: {
      replicas: (d.status as Record<string, unknown> | undefined)?.replicas ?? 0,
      selector: Object.entries(sel ?? {})
        .map(([k, v]) => `${k}=${v}`)
        .join(','),
    },
  }
}

function formatValue(v: unknown): string {
  return typeof v === 'string' ? `"${v}"` : JSON.stringify(v)
}

/** What the apiserver fills in when a client leaves it out (the parts users see in -o yaml). */
function applyDefaults(t: ResourceInfo, obj: KubeObject, old: KubeObject | undefined): void {
  if (t.kind === 'Deployment' && isPlainObject(obj.spec)) {
    const s = obj.spec as Record<string, unknown>
    s.replicas ??= 1
    s.revisionHistoryLimit ??= 10
    s.progressDeadlineSeconds ??= 600
    s.strategy ??= {type: 'RollingUpdate', rollingUpdate: {maxUnavailable: '25%', maxSurge: '25%'}}
    defaultPorts(isPlainObject(s.template) ? s.template.spec : undefined)
  }
  if (t.kind === 'Pod') defaultPorts(obj.spec)
  if (t.kind === 'Service' && old && isPlainObject(obj.spec) && isPlainObject(old.spec)) {
    // clusterIP is immutable: a replace that leaves it out keeps the allocated one
    const s = obj.spec as Record<string, unknown>
    if ((s.clusterIP === undefined || s.clusterIP === '') && old.spec.clusterIP) {
      s.clusterIP = old.spec.clusterIP
      if (old.spec.clusterIPs) s.clusterIPs = old.spec.clusterIPs
    }
  }
}

function defaultPorts(podSpec: unknown): void {
  if (!isPlainObject(podSpec)) return
  for (const key of ['containers', 'initContainers']) {
    const list = podSpec[key]
    if (!Array.isArray(list)) continue
    for (const c of list) {
      if (!isPlainObject(c) || !Array.isArray(c.ports)) continue
      for (const p of c.ports) if (isPlainObject(p)) p.protocol ??= 'TCP'
    }
  }
}

/** A few structural rules of the built-in types, so bad Deployments fail like on a real cluster. */
function builtinCauses(t: ResourceInfo, obj: KubeObject, old: KubeObject | undefined): StatusCause[] {
  const causes: StatusCause[] = []
  const add = (field: string, message: string) => causes.push({field, message, reason: 'FieldValueInvalid'})
  const containers = (field: string, list: unknown) => {
    if (!Array.isArray(list) || list.length === 0) return add(field, 'Required value')
    list.forEach((c, i) => {
      if (!isPlainObject(c) || typeof c.name !== 'string' || !c.name) add(`${field}[${i}].name`, 'Required value')
      if (!isPlainObject(c) || typeof c.image !== 'string' || !c.image) add(`${field}[${i}].image`, 'Required value')
    })
  }
  if (t.kind === 'Deployment') {
    const s = (obj.spec ?? {}) as Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any
    if (!isPlainObject(s.selector)) add('spec.selector', 'Required value')
    else if (!matchesLabelSelector(s.selector, s.template?.metadata?.labels)) {
      add('spec.template.metadata.labels', `Invalid value: ${JSON.stringify(s.template?.metadata?.labels ?? {})}: \`selector\` does not match template \`labels\``)
    }
    if (s.replicas !== undefined && (!Number.isInteger(s.replicas) || s.replicas < 0)) add('spec.replicas', `Invalid value: ${JSON.stringify(s.replicas)}: must be greater than or equal to 0`)
    containers('spec.template.spec.containers', s.template?.spec?.containers)
    if (old && isPlainObject(old.spec) && old.spec.selector && canonical(old.spec.selector) !== canonical(s.selector)) {
      add('spec.selector', `Invalid value: ${JSON.stringify(s.selector)}: field is immutable`)
    }
  }
  if (t.kind === 'Pod') containers('spec.containers', obj.spec?.containers)
  if (t.kind === 'Service' && isPlainObject(obj.spec) && Array.isArray(obj.spec.ports)) {
    ;(obj.spec.ports as unknown[]).forEach((p, i) => {
      const port = isPlainObject(p) ? p.port : undefined
      if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) add(`spec.ports[${i}].port`, `Invalid value: ${JSON.stringify(port)}: must be between 1 and 65535, inclusive`)
    })
  }
  return causes
}

