// The one Kubernetes client mesh uses, for the embedded cluster and real ones alike:
// server-side apply with field manager `mesh`, get/list/delete, watch, waits that survive
// dropped watches, and raw requests for meshd's /mesh/v1 endpoints. Objects come back as the
// server sent them (plain JSON), and every failure is a MeshError with a code (ADR 0034).
import {AsyncLocalStorage} from 'node:async_hooks'
import http from 'node:http'
import https from 'node:https'
import {
  ApiException,
  HttpMethod,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  Watch,
  type KubernetesObject,
  type RequestContext,
  type ResponseContext,
} from '@kubernetes/client-node'
import {EXIT, MeshError, type FieldCause} from '../lib/errors.js'
import {KUBE_CONTEXT} from '../local/home.js'
import {kubeConfigFor} from './kubeconfig.js'

/** A Kubernetes object as JSON. */
export interface KubeObject {
  apiVersion: string
  kind: string
  metadata: {
    name: string
    namespace?: string
    uid?: string
    resourceVersion?: string
    generation?: number
    labels?: Record<string, string>
    annotations?: Record<string, string>
    [k: string]: unknown
  }
  spec?: any // eslint-disable-line @typescript-eslint/no-explicit-any
  status?: any // eslint-disable-line @typescript-eslint/no-explicit-any
  [k: string]: unknown
}

export interface ObjectRef {
  apiVersion: string
  kind: string
  name: string
  namespace?: string
}

export interface ApplyOptions {
  /** default `mesh` */
  fieldManager?: string
  /** take over fields other managers own (kubectl's --force-conflicts) */
  force?: boolean
  /** server-side dry run: validated and defaulted, not stored */
  dryRun?: boolean
}

export interface ApplyResult {
  apiVersion: string
  kind: string
  name: string
  namespace?: string
  /** created: did not exist; configured: changed; unchanged: the server kept its resourceVersion */
  action: 'created' | 'configured' | 'unchanged'
  object: KubeObject
}

export interface ListQuery {
  namespace?: string
  labelSelector?: string
  fieldSelector?: string
}

export interface DeleteOptions {
  /** a missing object is not an error (default true) */
  ignoreNotFound?: boolean
  propagationPolicy?: 'Background' | 'Foreground' | 'Orphan'
  dryRun?: boolean
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED'

export interface WatchOptions extends ListQuery {
  /** events after this resourceVersion (default: from now) */
  resourceVersion?: string
}

export interface WatchHandle {
  stop(): void
  /** settles when the watch ends (server closed it, error, or stop()) */
  done: Promise<void>
}

export interface ConditionSpec {
  /** a status.conditions[].type, e.g. Available or Ready */
  condition: string
  /** default 'True' */
  status?: 'True' | 'False' | 'Unknown'
}

export interface WaitOptions {
  /** default 60 s */
  timeoutMs?: number
  /** what is waited for, for the timeout message */
  description?: string
}

export interface RequestOptions {
  method?: string
  body?: unknown
  query?: Record<string, string | number | boolean | undefined>
  timeoutMs?: number
}

const DEFAULT_WAIT_MS = 60_000

/** KubernetesObjectApi that returns the server's JSON untouched and sends applied objects verbatim. */
class RawObjectApi extends KubernetesObjectApi {
  /** the exact object being applied: client-node's typed serializer may drop fields it does not know */
  readonly body = new AsyncLocalStorage<KubernetesObject>()

  static make(kc: KubeConfig): RawObjectApi {
    const api = kc.makeApiClient(RawObjectApi)
    api.setDefaultNamespace(kc)
    return api
  }

  async collectionPath(apiVersion: string, kind: string, namespace?: string): Promise<{path: string; namespaced: boolean; resource: string}> {
    const r = await this.resource(apiVersion, kind)
    if (!r) throw unknownKind(apiVersion, kind)
    const base = this.apiVersionPath(apiVersion)
    const path = r.namespaced && namespace ? `${base}/namespaces/${encodeURIComponent(namespace)}/${r.name}` : `${base}/${r.name}`
    return {path, namespaced: r.namespaced, resource: r.name}
  }

  override async requestPromise<T extends KubernetesObject>(ctx: RequestContext, type?: string, options?: Parameters<KubernetesObjectApi['patch']>[6]): Promise<T> {
    const raw = this.body.getStore()
    if (raw && ctx.getHttpMethod() === HttpMethod.PATCH) ctx.setBody(JSON.stringify(raw))
    return super.requestPromise<T>(ctx, type, options)
  }

  protected override async processResponse<T extends KubernetesObject>(response: ResponseContext, type?: string): Promise<T> {
    if (response.httpStatusCode >= 200 && response.httpStatusCode <= 299 && type !== 'V1APIResourceList') {
      const text = await response.body.text()
      return (text ? JSON.parse(text) : {}) as T
    }
    return super.processResponse<T>(response, type)
  }
}

export class KubeClient {
  readonly kc: KubeConfig
  /** the kubeconfig context in use */
  readonly context: string
  /** the API server URL of that context */
  readonly server: string
  private readonly api: RawObjectApi

  constructor(kc: KubeConfig) {
    this.kc = kc
    this.context = kc.getCurrentContext()
    this.server = kc.getCurrentCluster()?.server ?? ''
    this.api = RawObjectApi.make(kc)
  }

  /**
   * A client for a kubeconfig file (default: $KUBECONFIG or ~/.kube/config) and context
   * (default: its current context). Throws MESH_KUBECONFIG_NOT_FOUND / MESH_CONTEXT_NOT_FOUND.
   */
  static fromKubeconfig(path?: string, context?: string): KubeClient {
    const {kc} = kubeConfigFor({...(path ? {kubeconfig: path} : {}), ...(context ? {context} : {})})
    return new KubeClient(kc)
  }

  // ---------------------------------------------------------------- objects

  /** Server-side apply of each object in order (field manager `mesh`). Conflicts → MESH_APPLY_CONFLICT. */
  async apply(objects: KubeObject | KubeObject[], opts: ApplyOptions = {}): Promise<ApplyResult[]> {
    const list = Array.isArray(objects) ? objects : [objects]
    const results: ApplyResult[] = []
    for (const obj of list) {
      const ref = refOf(obj)
      const before = await this.get(ref)
      const body = {...obj, metadata: {...obj.metadata}} as KubeObject
      delete body.metadata.resourceVersion
      delete body.metadata.managedFields
      const after = await this.call(`apply ${describe(ref)}`, () =>
        this.api.body.run(body as KubernetesObject, () =>
          this.api.patch(
            body as KubernetesObject,
            undefined,
            opts.dryRun ? 'All' : undefined,
            opts.fieldManager ?? 'mesh',
            opts.force ?? false,
            PatchStrategy.ServerSideApply,
          ),
        ),
      ) as unknown as KubeObject
      let action: ApplyResult['action']
      if (!before) action = 'created'
      else if (opts.dryRun) action = sameContent(before, after) ? 'unchanged' : 'configured'
      else action = before.metadata.resourceVersion === after.metadata.resourceVersion ? 'unchanged' : 'configured'
      results.push({...ref, action, object: after})
    }
    return results
  }

  /** The object, or undefined when it does not exist. */
  async get<T extends KubeObject = KubeObject>(ref: ObjectRef): Promise<T | undefined> {
    try {
      return (await this.api.read({apiVersion: ref.apiVersion, kind: ref.kind, metadata: {name: ref.name, namespace: ref.namespace}})) as unknown as T
    } catch (e) {
      if (e instanceof ApiException && e.code === 404) return undefined
      throw this.toError(e, `get ${describe(ref)}`)
    }
  }

  /** Every matching object (pages through `continue`). Omit namespace for all namespaces. */
  async list<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, query: ListQuery = {}): Promise<T[]> {
    return (await this.listWithVersion<T>(apiVersion, kind, query)).items
  }

  /** Deletes the object; false when it did not exist (and ignoreNotFound, the default). */
  async delete(ref: ObjectRef, opts: DeleteOptions = {}): Promise<boolean> {
    try {
      await this.api.delete(
        {apiVersion: ref.apiVersion, kind: ref.kind, metadata: {name: ref.name, namespace: ref.namespace}},
        undefined,
        opts.dryRun ? 'All' : undefined,
        undefined,
        undefined,
        opts.propagationPolicy ?? 'Background',
      )
      return true
    } catch (e) {
      if (e instanceof ApiException && e.code === 404 && opts.ignoreNotFound !== false) return false
      throw this.toError(e, `delete ${describe(ref)}`)
    }
  }

  /** Streams watch events until stop() or until the server ends the watch (see `done`). */
  async watch(apiVersion: string, kind: string, opts: WatchOptions, onEvent: (type: WatchEventType, obj: KubeObject) => void): Promise<WatchHandle> {
    const {path} = await this.call(`watch ${kind}`, () => this.api.collectionPath(apiVersion, kind, opts.namespace))
    let finish!: (err?: unknown) => void
    const done = new Promise<void>((resolve, reject) => {
      finish = (err) => (err ? reject(this.toError(err, `watch ${kind}`)) : resolve())
    })
    done.catch(() => undefined)
    let stopped = false
    const query: Record<string, string | boolean | undefined> = {
      allowWatchBookmarks: false,
      ...(opts.labelSelector ? {labelSelector: opts.labelSelector} : {}),
      ...(opts.fieldSelector ? {fieldSelector: opts.fieldSelector} : {}),
      ...(opts.resourceVersion ? {resourceVersion: opts.resourceVersion} : {}),
    }
    const controller = await new Watch(this.kc).watch(
      path,
      query,
      (phase, obj) => {
        if (stopped) return
        if (phase === 'ERROR') {
          // e.g. 410 Expired: the caller re-lists
          stopped = true
          controller?.abort()
          finish(new ApiException((obj as {code?: number})?.code ?? 500, 'watch error', JSON.stringify(obj), {}))
          return
        }
        if (phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED') onEvent(phase, obj as KubeObject)
      },
      (err) => {
        stopped = true
        finish(err && !(err instanceof Error && err.name === 'AbortError') ? err : undefined)
      },
    )
    return {
      stop: () => {
        if (stopped) return
        stopped = true
        controller.abort()
        finish()
      },
      done,
    }
  }

  /**
   * Waits until `test` holds for the object (it gets undefined while the object is missing),
   * or until its condition is met (with status.observedGeneration caught up, as kubectl wait
   * checks). Lists, then watches from that resourceVersion; a dropped watch re-lists.
   * Timeout → MESH_WAIT_TIMEOUT (exit 69) describing the last state seen.
   */
  async waitFor(ref: ObjectRef, test: ((obj: KubeObject | undefined) => boolean) | ConditionSpec, opts: WaitOptions = {}): Promise<KubeObject | undefined> {
    const pred = typeof test === 'function' ? test : conditionPredicate(test)
    const what = opts.description ?? (typeof test === 'function' ? `${describe(ref)}` : `condition ${test.condition}=${test.status ?? 'True'} on ${describe(ref)}`)
    let last: KubeObject | undefined
    const r = await this.waitLoop(
      ref.apiVersion,
      ref.kind,
      {namespace: ref.namespace, fieldSelector: `metadata.name=${ref.name}`},
      (items) => {
        last = items.find((o) => o.metadata.name === ref.name)
        return pred(last) ? {value: last} : undefined
      },
      opts.timeoutMs ?? DEFAULT_WAIT_MS,
      () => `timed out after ${opts.timeoutMs ?? DEFAULT_WAIT_MS} ms waiting for ${what}${last ? `; last seen: ${summarize(last)}` : '; the object does not exist'}`,
    )
    return r.value
  }

  /** Like waitFor, for a set of objects (e.g. every pod of a namespace is Ready). */
  async waitForList(apiVersion: string, kind: string, query: ListQuery, test: (items: KubeObject[]) => boolean, opts: WaitOptions = {}): Promise<KubeObject[]> {
    let last: KubeObject[] = []
    const r = await this.waitLoop(
      apiVersion,
      kind,
      query,
      (items) => {
        last = items
        return test(items) ? {value: items} : undefined
      },
      opts.timeoutMs ?? DEFAULT_WAIT_MS,
      () => `timed out after ${opts.timeoutMs ?? DEFAULT_WAIT_MS} ms waiting for ${opts.description ?? `${kind} objects`} (${last.length} seen: ${last.slice(0, 5).map(summarize).join('; ')})`,
    )
    return r.value
  }

  // ---------------------------------------------------------------- raw

  /** A request to any path of the API server (e.g. meshd's /mesh/v1/proxy-status); JSON in and out. */
  async request<T = unknown>(path: string, opts: RequestOptions = {}): Promise<T> {
    // the server URL may carry a path prefix (e.g. behind `kubectl proxy` or a gateway)
    const base = new URL(this.server)
    const url = new URL(base.origin + base.pathname.replace(/\/$/, '') + (path.startsWith('/') ? path : `/${path}`))
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v))
    const reqOpts: https.RequestOptions = {method: opts.method ?? (opts.body === undefined ? 'GET' : 'POST'), headers: {Accept: 'application/json'}}
    await this.kc.applyToHTTPSOptions(reqOpts)
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body)
    if (payload !== undefined) reqOpts.headers = {...reqOpts.headers, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload)}
    const lib = url.protocol === 'http:' ? http : https
    const {status, text} = await this.call(`${reqOpts.method} ${url.pathname}`, () =>
      new Promise<{status: number; text: string}>((resolve, reject) => {
        const req = lib.request(url, {...reqOpts, agent: undefined}, (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => resolve({status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8')}))
          res.on('error', reject)
        })
        req.on('error', reject)
        if (opts.timeoutMs) req.setTimeout(opts.timeoutMs, () => req.destroy(Object.assign(new Error(`no answer within ${opts.timeoutMs} ms`), {code: 'ETIMEDOUT'})))
        req.end(payload)
      }),
    )
    if (status < 200 || status > 299) throw this.toError(new ApiException(status, 'Unsuccessful HTTP Request', text, {}), `${reqOpts.method} ${url.pathname}`)
    try {
      return (text ? JSON.parse(text) : undefined) as T
    } catch {
      return text as T
    }
  }

  // ---------------------------------------------------------------- internals

  private async listWithVersion<T extends KubeObject>(apiVersion: string, kind: string, query: ListQuery): Promise<{items: T[]; resourceVersion: string}> {
    const items: T[] = []
    let cont: string | undefined
    let resourceVersion = ''
    do {
      const page = (await this.call(`list ${kind}`, () =>
        this.api.list(apiVersion, kind, query.namespace, undefined, undefined, undefined, query.fieldSelector, query.labelSelector, 500, cont),
      )) as unknown as {items?: T[]; metadata?: {continue?: string; resourceVersion?: string}}
      for (const it of page.items ?? []) items.push({...it, apiVersion: it.apiVersion ?? apiVersion, kind: it.kind ?? kind} as T)
      cont = page.metadata?.continue || undefined
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion
    } while (cont)
    return {items, resourceVersion}
  }

  private async waitLoop<V>(
    apiVersion: string,
    kind: string,
    query: ListQuery,
    check: (items: KubeObject[]) => {value: V} | undefined,
    timeoutMs: number,
    timeoutMessage: () => string,
  ): Promise<{value: V}> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const listed = await this.listWithVersion(apiVersion, kind, query)
      const current = new Map(listed.items.map((o) => [`${o.metadata.namespace ?? ''}/${o.metadata.name}`, o]))
      const first = check([...current.values()])
      if (first) return first
      const remaining = deadline - Date.now()
      if (remaining <= 0) throw new MeshError('MESH_WAIT_TIMEOUT', timeoutMessage(), {suggestion: 'Look at the objects with kubectl get/describe; a pod may not be starting.', exit: EXIT.unavailable})
      const outcome = await new Promise<{value: V} | 'relist' | 'timeout'>((resolve) => {
        let handle: WatchHandle | undefined
        let settled = false
        const settle = (v: {value: V} | 'relist' | 'timeout') => {
          if (settled) return
          settled = true
          clearTimeout(timer)
          handle?.stop()
          resolve(v)
        }
        const timer = setTimeout(() => settle('timeout'), remaining)
        this.watch(apiVersion, kind, {...query, resourceVersion: listed.resourceVersion}, (type, obj) => {
          const k = `${obj.metadata.namespace ?? ''}/${obj.metadata.name}`
          if (type === 'DELETED') current.delete(k)
          else current.set(k, {...obj, apiVersion: obj.apiVersion ?? apiVersion, kind: obj.kind ?? kind})
          const r = check([...current.values()])
          if (r) settle(r)
        }).then(
          (h) => {
            handle = h
            if (settled) h.stop()
            // a watch that ends (server timeout, 410 Expired, network blip) → list again
            h.done.then(() => settle('relist'), () => setTimeout(() => settle('relist'), 200))
          },
          () => setTimeout(() => settle('relist'), 200),
        )
      })
      if (outcome === 'timeout') {
        throw new MeshError('MESH_WAIT_TIMEOUT', timeoutMessage(), {suggestion: 'Look at the objects with kubectl get/describe; a pod may not be starting.', exit: EXIT.unavailable})
      }
      if (outcome !== 'relist') return outcome
    }
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (e) {
      throw this.toError(e, what)
    }
  }

  /** Maps client-node and network failures to MeshErrors. */
  toError(e: unknown, what: string): MeshError {
    if (e instanceof MeshError) return e
    if (e instanceof ApiException) return apiError(e, what, this)
    const err = e as {code?: string; message?: string; cause?: {code?: string}; type?: string}
    const code = err?.code ?? err?.cause?.code ?? ''
    const msg = err?.message ?? String(e)
    if (/Failed to fetch resource metadata/.test(msg) && (e as {code?: number}).code === undefined) {
      // discovery failed for a network reason; fall through to the network classification
    }
    const network = ['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'CERT_HAS_EXPIRED', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'ERR_TLS_CERT_ALTNAME_INVALID']
    if (network.includes(code) || err?.type === 'system' || /ECONNREFUSED|socket hang up|ECONNRESET|ETIMEDOUT|ENOTFOUND|EHOSTUNREACH/.test(msg)) {
      return new MeshError('MESH_CLUSTER_UNREACHABLE', `cannot reach the Kubernetes API at ${this.server} (context ${this.context}): ${code || msg}`, {
        suggestion: this.context === KUBE_CONTEXT ? 'Run mesh lab up to start the embedded cluster.' : `Check that the cluster of context "${this.context}" is running, or run mesh lab up for the embedded lab.`,
        exit: EXIT.unavailable,
        cause: e,
      })
    }
    if (/Unrecognized API version and kind/.test(msg)) {
      return new MeshError('MESH_RESOURCE_UNKNOWN', `${what}: the cluster does not serve this kind (${msg.replace(/^.*kind: /, '')})`, {
        suggestion: 'Check apiVersion and kind; Istio kinds need Istio installed on the cluster.',
        exit: EXIT.invalidInput,
        cause: e,
      })
    }
    return new MeshError('MESH_CLUSTER_API', `${what}: ${msg}`, {suggestion: 'Re-run with MESH_DEBUG=1 for details.', exit: EXIT.unavailable, cause: e})
  }
}

// ------------------------------------------------------------------ helpers

function refOf(obj: KubeObject): ObjectRef {
  if (!obj?.apiVersion || !obj.kind || !obj.metadata?.name) {
    throw new MeshError('MESH_OBJECT_INVALID', `an object to apply needs apiVersion, kind and metadata.name (got ${JSON.stringify({apiVersion: obj?.apiVersion, kind: obj?.kind, name: obj?.metadata?.name})})`, {
      suggestion: 'Fix the manifest.',
      exit: EXIT.invalidInput,
    })
  }
  return {apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata.name, ...(obj.metadata.namespace ? {namespace: obj.metadata.namespace} : {})}
}

const describe = (r: ObjectRef): string => `${r.kind} ${r.namespace ? `${r.namespace}/` : ''}${r.name}`

function unknownKind(apiVersion: string, kind: string): MeshError {
  return new MeshError('MESH_RESOURCE_UNKNOWN', `the cluster does not serve ${kind} in ${apiVersion}`, {
    suggestion: 'Check apiVersion and kind; Istio kinds need Istio installed on the cluster.',
    exit: EXIT.invalidInput,
  })
}

interface StatusBody {
  message?: string
  reason?: string
  code?: number
  details?: {causes?: Array<{field?: string; message?: string; reason?: string}>}
}

function parseStatus(body: unknown): StatusBody {
  if (body && typeof body === 'object') return body as StatusBody
  if (typeof body === 'string' || Buffer.isBuffer(body)) {
    try {
      return JSON.parse(body.toString()) as StatusBody
    } catch {
      return {message: body.toString().slice(0, 300)}
    }
  }
  return {}
}

function apiError(e: ApiException<unknown>, what: string, c: KubeClient): MeshError {
  const st = parseStatus(e.body)
  const message = st.message ?? `HTTP ${e.code}`
  const causes: FieldCause[] = (st.details?.causes ?? []).map((x) => ({field: x.field ?? '', message: x.message ?? ''}))
  if (e.code === 409 && (st.details?.causes ?? []).some((x) => x.reason === 'FieldManagerConflict')) {
    const list = (st.details?.causes ?? []).filter((x) => x.reason === 'FieldManagerConflict')
    const named = list.map((x) => `${x.field} (owned by "${/conflict with "([^"]+)"/.exec(x.message ?? '')?.[1] ?? x.message}")`)
    return new MeshError('MESH_APPLY_CONFLICT', `${what}: ${list.length} field${list.length > 1 ? 's are' : ' is'} managed by another field manager: ${named.join(', ')}`, {
      suggestion: 'Re-run with --force-conflicts to take these fields over, or change them with the tool that owns them.',
      exit: EXIT.invalidInput,
      field: list[0]?.field,
      causes: list.map((x) => ({field: x.field ?? '', message: x.message ?? ''})),
      cause: e,
    })
  }
  if (e.code === 401) {
    return new MeshError('MESH_CLUSTER_UNAUTHORIZED', `${what}: the API server at ${c.server} refused the credentials of context ${c.context} (401)`, {
      suggestion: c.context === KUBE_CONTEXT ? 'The lab kubeconfig is out of date: run mesh lab up again.' : 'Refresh your credentials for this context.',
      exit: EXIT.unavailable,
      cause: e,
    })
  }
  if (e.code === 403) {
    return new MeshError('MESH_FORBIDDEN', `${what}: ${message}`, {suggestion: 'Use a context with permission for this.', exit: EXIT.unavailable, cause: e})
  }
  if (e.code === 422 || e.code === 400) {
    return new MeshError('MESH_INVALID_RESOURCE', `${what}: ${message}`, {suggestion: 'Fix the fields named above and apply again.', exit: EXIT.invalidInput, causes, ...(causes[0] ? {field: causes[0].field} : {}), cause: e})
  }
  if (e.code === 404) {
    return new MeshError('MESH_NOT_FOUND', `${what}: ${message}`, {suggestion: 'Check the name, namespace and kind.', exit: EXIT.invalidInput, cause: e})
  }
  if (e.code === 409) {
    return new MeshError('MESH_CONFLICT', `${what}: ${message}`, {suggestion: 'Someone changed the object meanwhile; run the command again.', exit: EXIT.invalidInput, cause: e})
  }
  return new MeshError('MESH_CLUSTER_API', `${what}: ${message} (HTTP ${e.code})`, {suggestion: 'Re-run with MESH_DEBUG=1 for details.', exit: e.code >= 500 ? EXIT.unavailable : EXIT.invalidInput, cause: e})
}

/** True when the object's condition has the wanted status and its controller saw the latest spec. */
export function conditionPredicate(spec: ConditionSpec): (obj: KubeObject | undefined) => boolean {
  const want = spec.status ?? 'True'
  return (obj) => {
    if (!obj) return false
    const st = obj.status as {observedGeneration?: number; conditions?: Array<{type: string; status: string; observedGeneration?: number}>} | undefined
    const gen = obj.metadata.generation
    const c = st?.conditions?.find((x) => x.type === spec.condition)
    if (!c || c.status !== want) return false
    const observed = c.observedGeneration ?? st?.observedGeneration
    return gen === undefined || observed === undefined || observed >= gen
  }
}

function sameContent(a: KubeObject, b: KubeObject): boolean {
  const strip = (o: KubeObject) => {
    const {resourceVersion: _r, managedFields: _m, generation: _g, ...meta} = o.metadata
    return JSON.stringify(sortKeys({...o, metadata: meta, status: undefined}))
  }
  return strip(a) === strip(b)
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys)
  if (v && typeof v === 'object') {
    return Object.fromEntries(
      Object.keys(v)
        .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
        .sort()
        .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
    )
  }
  return v
}

function summarize(o: KubeObject): string {
  const st = o.status as {phase?: string; conditions?: Array<{type: string; status: string}>; readyReplicas?: number; replicas?: number} | undefined
  const conds = (st?.conditions ?? []).map((c) => `${c.type}=${c.status}`).join(',')
  return `${o.kind ?? ''} ${o.metadata.namespace ? o.metadata.namespace + '/' : ''}${o.metadata.name}${st?.phase ? ` ${st.phase}` : ''}${conds ? ` [${conds}]` : ''}`.trim()
}
