// The one Kubernetes client mesh uses, for the embedded cluster and real ones alike:
// server-side apply with field manager `mesh`, get/list/delete, watch, waits that survive
// dropped watches, and raw requests for meshd's /mesh/v1 endpoints. Objects come back as the
// server sent them (plain JSON), and every failure is a MeshError with a code (ADR 0034).
// Requests go out over node:https with kept-alive connections; @kubernetes/client-node is only
// loaded to read a real kubeconfig and authenticate with it (exec plugins, OIDC, proxies), since
// importing it costs more than a whole embedded command (ADR 0150).
import http from 'node:http'
import https from 'node:https'
import {readFileSync} from 'node:fs'
import type {KubeConfig} from '@kubernetes/client-node'
import {load} from 'js-yaml'
import {EXIT, MeshError, type FieldCause} from '../lib/errors.js'
import {KUBE_CONTEXT} from '../local/home.js'
import {kubeConfigFor} from './kubeconfig.js'
import type {KubeObject} from '../local/dataplane/snapshot.js'

/** A Kubernetes object as JSON: one type for the client, the embedded API and the data plane. */
export type {KubeObject}

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
  /** the objects as just read, in the same order (undefined = missing): apply skips reading them again */
  current?: Array<KubeObject | undefined>
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

/** An answer outside 2xx from the API server; `body` is its text (usually a Status object). */
export class ApiStatusError extends Error {
  constructor(
    readonly code: number,
    readonly body: string,
    what = 'Unsuccessful HTTP Request',
  ) {
    super(`HTTP ${code}: ${what}`)
    this.name = 'ApiStatusError'
  }
}

/** Where an API server is and how to authenticate to it. */
export interface KubeConnection {
  /** the kubeconfig context this connection stands for */
  context: string
  /** API server URL */
  server: string
  /** namespace for namespaced objects given without one (the context's, else `default`) */
  namespace: string
  /** adds TLS trust, client certificates and auth headers to a request */
  authorize(opts: https.RequestOptions): Promise<void>
  /** client-node's view of the same config, for code that needs one (loaded on first use) */
  kubeConfig(): KubeConfig
}

interface ApiResource {
  name: string
  kind: string
  namespaced: boolean
}

interface HttpAnswer {
  status: number
  text: string
}

interface SendOptions {
  method?: string
  query?: Record<string, string | number | boolean | undefined>
  body?: string
  contentType?: string
  timeoutMs?: number
}

const ACCEPT = 'application/json, */*;q=0.8'
const RETRYABLE = new Set(['ECONNRESET', 'EPIPE'])

/**
 * Kept-alive connections (and TLS sessions) shared by every client of the process. No socket
 * limit: watches and long polls hold theirs for as long as they last. Idle sockets close after
 * 5 s and do not keep the process alive.
 */
const AGENT_OPTIONS = {keepAlive: true, timeout: 5000, scheduling: 'lifo'} as const
const agents = {http: new http.Agent(AGENT_OPTIONS), https: new https.Agent(AGENT_OPTIONS)}

/** A connection from a client-node KubeConfig: its auth rules, our transport. */
function connectionFromKubeConfig(kc: KubeConfig): KubeConnection {
  const context = kc.getCurrentContext()
  const cluster = kc.getCurrentCluster()
  return {
    context,
    server: cluster?.server ?? '',
    namespace: kc.getContextObject(context)?.namespace || 'default',
    authorize: async (opts) => {
      await kc.applyToHTTPSOptions(opts)
      // client-node builds an agent per request; only a proxy needs its agent, otherwise the
      // shared keep-alive agent reuses connections (the TLS options stay on the request)
      if (!cluster?.proxyUrl) opts.agent = (cluster?.server ?? '').startsWith('http:') ? agents.http : agents.https
    },
    kubeConfig: () => kc,
  }
}

/**
 * The connection for a kubeconfig of the shape meshd writes (one https server, its CA inline, a
 * bearer token), read without client-node; undefined for anything else.
 */
function simpleConnection(path: string, contextName: string | undefined): KubeConnection | undefined {
  let doc: {
    clusters?: Array<{name?: string; cluster?: Record<string, unknown>}>
    users?: Array<{name?: string; user?: Record<string, unknown>}>
    contexts?: Array<{name?: string; context?: {cluster?: string; user?: string; namespace?: string}}>
    'current-context'?: string
  }
  try {
    doc = load(readFileSync(path, 'utf8')) as typeof doc
  } catch {
    return undefined
  }
  if (!doc || typeof doc !== 'object') return undefined
  const name = contextName ?? doc['current-context']
  const ctx = doc.contexts?.find((c) => c?.name === name)?.context
  const cluster = doc.clusters?.find((c) => c?.name === ctx?.cluster)?.cluster
  const user = doc.users?.find((u) => u?.name === ctx?.user)?.user
  if (!name || !ctx || !cluster || !user) return undefined
  const server = cluster.server
  const ca = cluster['certificate-authority-data']
  const token = user.token
  // anything beyond server + inline CA + token (exec, client certificates, proxies…) is client-node's job
  const plain = (o: Record<string, unknown>, allowed: string[]) => Object.keys(o).every((k) => allowed.includes(k))
  if (typeof server !== 'string' || !server.startsWith('https://') || typeof ca !== 'string' || typeof token !== 'string' || token === '') return undefined
  if (!plain(cluster, ['server', 'certificate-authority-data']) || !plain(user, ['token'])) return undefined
  const caPem = Buffer.from(ca, 'base64')
  let kc: KubeConfig | undefined
  return {
    context: name,
    server: server.replace(/\/$/, ''),
    namespace: ctx.namespace || 'default',
    authorize: async (opts) => {
      opts.ca = caPem
      opts.headers = {...opts.headers, Authorization: `Bearer ${token}`}
      opts.agent = agents.https
    },
    kubeConfig: () => (kc ??= kubeConfigFor({kubeconfig: path, ...(contextName ? {context: contextName} : {})}).kc),
  }
}

export class KubeClient {
  /** the kubeconfig context in use */
  readonly context: string
  /** the API server URL of that context */
  readonly server: string
  private readonly conn: KubeConnection
  /** discovery answers per apiVersion, as client-node caches them */
  private readonly resources = new Map<string, ApiResource[]>()

  constructor(kc: KubeConfig | KubeConnection) {
    this.conn = isConnection(kc) ? kc : connectionFromKubeConfig(kc)
    this.context = this.conn.context
    this.server = this.conn.server
  }

  /** client-node's config for this client (loads client-node; for code that needs its API classes) */
  get kc(): KubeConfig {
    return this.conn.kubeConfig()
  }

  /**
   * A client for a kubeconfig file (default: $KUBECONFIG or ~/.kube/config) and context
   * (default: its current context). Throws MESH_KUBECONFIG_NOT_FOUND / MESH_CONTEXT_NOT_FOUND.
   */
  static fromKubeconfig(path?: string, context?: string): KubeClient {
    const {kc} = kubeConfigFor({...(path ? {kubeconfig: path} : {}), ...(context ? {context} : {})})
    return new KubeClient(kc)
  }

  /**
   * A client for the kubeconfig meshd writes (server, inline CA, token) without loading
   * client-node; any other kubeconfig goes through fromKubeconfig and its checks.
   */
  static forEmbedded(path: string, context?: string): KubeClient {
    const conn = simpleConnection(path, context)
    return conn ? new KubeClient(conn) : KubeClient.fromKubeconfig(path, context)
  }

  // ---------------------------------------------------------------- objects

  /**
   * Server-side apply of each object in order (field manager `mesh`). Conflicts → MESH_APPLY_CONFLICT.
   * `opts.current` (the objects as just read, same order; undefined = missing) saves the read
   * each apply otherwise starts with.
   */
  async apply(objects: KubeObject | KubeObject[], opts: ApplyOptions = {}): Promise<ApplyResult[]> {
    const list = Array.isArray(objects) ? objects : [objects]
    const results: ApplyResult[] = []
    for (const [i, obj] of list.entries()) {
      const ref = refOf(obj)
      const before = opts.current && i < opts.current.length ? opts.current[i] : await this.get(ref)
      const body = {...obj, metadata: {...obj.metadata}} as KubeObject
      delete body.metadata.resourceVersion
      delete body.metadata.managedFields
      const after = await this.call(`apply ${describe(ref)}`, async () =>
        this.json<KubeObject>(await this.objectPath(body, 'patch'), {
          method: 'PATCH',
          contentType: 'application/apply-patch+yaml',
          body: JSON.stringify(body),
          query: {...(opts.dryRun ? {dryRun: 'All'} : {}), fieldManager: opts.fieldManager ?? 'mesh', force: opts.force ?? false},
        }),
      )
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
      return await this.json<T>(await this.objectPath({apiVersion: ref.apiVersion, kind: ref.kind, metadata: {name: ref.name, namespace: ref.namespace}}, 'read'))
    } catch (e) {
      if (e instanceof ApiStatusError && e.code === 404) return undefined
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
      const path = await this.objectPath({apiVersion: ref.apiVersion, kind: ref.kind, metadata: {name: ref.name, namespace: ref.namespace}}, 'delete')
      await this.json(path, {method: 'DELETE', query: {...(opts.dryRun ? {dryRun: 'All'} : {}), propagationPolicy: opts.propagationPolicy ?? 'Background'}})
      return true
    } catch (e) {
      if (e instanceof ApiStatusError && e.code === 404 && opts.ignoreNotFound !== false) return false
      throw this.toError(e, `delete ${describe(ref)}`)
    }
  }

  /** Streams watch events until stop() or until the server ends the watch (see `done`). */
  async watch(apiVersion: string, kind: string, opts: WatchOptions, onEvent: (type: WatchEventType, obj: KubeObject) => void): Promise<WatchHandle> {
    const {path} = await this.call(`watch ${kind}`, () => this.collectionPath(apiVersion, kind, opts.namespace))
    let finish!: (err?: unknown) => void
    const done = new Promise<void>((resolve, reject) => {
      finish = (err) => (err ? reject(this.toError(err, `watch ${kind}`)) : resolve())
    })
    done.catch(() => undefined)
    let stopped = false
    let req: http.ClientRequest | undefined
    const end = (err?: unknown) => {
      if (stopped) return
      stopped = true
      req?.destroy()
      finish(err)
    }
    const query = {
      watch: true,
      allowWatchBookmarks: false,
      ...(opts.labelSelector ? {labelSelector: opts.labelSelector} : {}),
      ...(opts.fieldSelector ? {fieldSelector: opts.fieldSelector} : {}),
      ...(opts.resourceVersion ? {resourceVersion: opts.resourceVersion} : {}),
    }
    try {
      const {url, options} = await this.prepare(path, {query})
      await new Promise<void>((resolve) => {
        req = (url.protocol === 'http:' ? http : https).request(url, options, (res) => {
          resolve()
          if (res.statusCode !== 200) {
            res.resume()
            end(Object.assign(new Error(res.statusMessage || http.STATUS_CODES[res.statusCode ?? 500] || 'Internal Server Error'), {statusCode: res.statusCode}))
            return
          }
          res.setEncoding('utf8')
          let buf = ''
          res.on('data', (chunk: string) => {
            buf += chunk
            let nl: number
            while (!stopped && (nl = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, nl)
              buf = buf.slice(nl + 1)
              let ev: {type?: string; object?: unknown}
              try {
                ev = JSON.parse(line) as typeof ev
              } catch {
                continue
              }
              if (ev.type === 'ERROR') {
                // e.g. 410 Expired: the caller re-lists
                end(new ApiStatusError((ev.object as {code?: number})?.code ?? 500, JSON.stringify(ev.object), 'watch error'))
                return
              }
              if (ev.type === 'ADDED' || ev.type === 'MODIFIED' || ev.type === 'DELETED') onEvent(ev.type, ev.object as KubeObject)
            }
          })
          res.on('end', () => end())
          res.on('close', () => end())
          res.on('error', (e) => end(e))
        })
        req.on('error', (e) => {
          resolve()
          end(e)
        })
        req.end()
      })
    } catch (e) {
      end(e)
    }
    return {stop: () => end(), done}
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
    const method = opts.method ?? (opts.body === undefined ? 'GET' : 'POST')
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body)
    const what = `${method} ${this.url(path).pathname}`
    const {status, text} = await this.call(what, () =>
      this.send(path, {method, query: opts.query, ...(payload !== undefined ? {body: payload, contentType: 'application/json'} : {}), ...(opts.timeoutMs ? {timeoutMs: opts.timeoutMs} : {})}, 'application/json'),
    )
    if (status < 200 || status > 299) throw this.toError(new ApiStatusError(status, text), what)
    try {
      return (text ? JSON.parse(text) : undefined) as T
    } catch {
      return text as T
    }
  }

  // ---------------------------------------------------------------- internals

  /** The server URL (which may carry a path prefix, e.g. behind `kubectl proxy`) joined with path and query. */
  private url(path: string, query: SendOptions['query'] = {}): URL {
    const base = new URL(this.server)
    const url = new URL(base.origin + base.pathname.replace(/\/$/, '') + (path.startsWith('/') ? path : `/${path}`))
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v))
    return url
  }

  private async prepare(path: string, opts: SendOptions, accept = ACCEPT): Promise<{url: URL; options: https.RequestOptions}> {
    const url = this.url(path, opts.query)
    const options: https.RequestOptions = {method: opts.method ?? 'GET', headers: {Accept: accept}}
    await this.conn.authorize(options)
    if (opts.body !== undefined) options.headers = {...options.headers, 'Content-Type': opts.contentType ?? 'application/json', 'Content-Length': Buffer.byteLength(opts.body)}
    return {url, options}
  }

  /** One HTTP exchange; a kept-alive connection the server closed meanwhile is retried once on a new one. */
  private async send(path: string, opts: SendOptions, accept = ACCEPT): Promise<HttpAnswer> {
    const {url, options} = await this.prepare(path, opts, accept)
    const once = () =>
      new Promise<HttpAnswer & {reused?: boolean}>((resolve, reject) => {
        const req = (url.protocol === 'http:' ? http : https).request(url, options, (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => resolve({status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8')}))
          res.on('error', reject)
        })
        req.on('error', (e) => reject(Object.assign(e, {reusedSocket: req.reusedSocket})))
        if (opts.timeoutMs) req.setTimeout(opts.timeoutMs, () => req.destroy(Object.assign(new Error(`no answer within ${opts.timeoutMs} ms`), {code: 'ETIMEDOUT'})))
        req.end(opts.body)
      })
    try {
      return await once()
    } catch (e) {
      const err = e as NodeJS.ErrnoException & {reusedSocket?: boolean}
      if (err.reusedSocket && RETRYABLE.has(err.code ?? '')) return once()
      throw e
    }
  }

  /** A Kubernetes JSON request: 2xx → the parsed body; anything else → ApiStatusError. */
  private async json<T>(path: string, opts: SendOptions = {}): Promise<T> {
    const {status, text} = await this.send(path, opts)
    if (status < 200 || status > 299) throw new ApiStatusError(status, text)
    return (text ? JSON.parse(text) : {}) as T
  }

  /** `/api/v1` or `/apis/<group>/<version>` */
  private apiVersionPath(apiVersion: string): string {
    return `/${apiVersion.includes('/') ? 'apis' : 'api'}/${apiVersion}`
  }

  /** The resource serving `kind` in `apiVersion` (discovery, cached per client). */
  private async resource(apiVersion: string, kind: string): Promise<ApiResource | undefined> {
    const cached = this.resources.get(apiVersion)?.find((r) => r.kind === kind)
    if (cached) return cached
    try {
      const list = await this.json<{resources?: ApiResource[]}>(this.apiVersionPath(apiVersion))
      this.resources.set(apiVersion, list.resources ?? [])
      return (list.resources ?? []).find((r) => r.kind === kind)
    } catch (e) {
      if (e instanceof Error) e.message = `Failed to fetch resource metadata for ${apiVersion}/${kind}: ${e.message}`
      throw e
    }
  }

  /** The path of an object (or, for list, its collection), as client-node builds it. */
  private async objectPath(spec: {apiVersion: string; kind: string; metadata: {name?: string; namespace?: string}}, action: 'read' | 'patch' | 'delete' | 'list'): Promise<string> {
    const r = await this.resource(spec.apiVersion, spec.kind)
    if (!r) throw new Error(`Unrecognized API version and kind: ${spec.apiVersion} ${spec.kind}`)
    const namespace = r.namespaced ? spec.metadata.namespace || (action === 'list' ? undefined : this.conn.namespace) : undefined
    const parts = [this.apiVersionPath(spec.apiVersion)]
    if (namespace) parts.push('namespaces', encodeURIComponent(namespace))
    parts.push(r.name)
    if (action !== 'list') {
      if (!spec.metadata.name) throw new Error('Required spec property name is not set')
      parts.push(encodeURIComponent(spec.metadata.name))
    }
    return parts.join('/').toLowerCase()
  }

  private async collectionPath(apiVersion: string, kind: string, namespace?: string): Promise<{path: string; namespaced: boolean; resource: string}> {
    const r = await this.resource(apiVersion, kind)
    if (!r) throw unknownKind(apiVersion, kind)
    const base = this.apiVersionPath(apiVersion)
    const path = r.namespaced && namespace ? `${base}/namespaces/${encodeURIComponent(namespace)}/${r.name}` : `${base}/${r.name}`
    return {path, namespaced: r.namespaced, resource: r.name}
  }

  private async listWithVersion<T extends KubeObject>(apiVersion: string, kind: string, query: ListQuery): Promise<{items: T[]; resourceVersion: string}> {
    const items: T[] = []
    let cont: string | undefined
    let resourceVersion = ''
    do {
      const page = await this.call(`list ${kind}`, async () =>
        this.json<{items?: T[]; metadata?: {continue?: string; resourceVersion?: string}}>(await this.objectPath({apiVersion, kind, metadata: {namespace: query.namespace}}, 'list'), {
          query: {fieldSelector: query.fieldSelector, labelSelector: query.labelSelector, limit: 500, continue: cont},
        }),
      )
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

  /** Maps API answers and network failures to MeshErrors. */
  toError(e: unknown, what: string): MeshError {
    if (e instanceof MeshError) return e
    if (e instanceof ApiStatusError) return apiError(e, what, this)
    const err = e as {code?: string; message?: string; cause?: {code?: string}; type?: string}
    const code = err?.code ?? err?.cause?.code ?? ''
    const msg = err?.message ?? String(e)
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

const isConnection = (x: KubeConfig | KubeConnection): x is KubeConnection => typeof (x as KubeConnection).authorize === 'function'

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

function apiError(e: ApiStatusError, what: string, c: KubeClient): MeshError {
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
