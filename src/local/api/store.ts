// The embedded cluster's object store: in-memory maps made durable by an append-only journal
// (one JSON line per mutation, fsync'd before a write is acknowledged) and a snapshot written
// atomically when the journal grows. See docs/adr/0020-api-store-journal.md.
import {randomUUID, randomBytes} from 'node:crypto'
import {existsSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {open, rename, unlink, readFile, truncate, type FileHandle} from 'node:fs/promises'
import {join} from 'node:path'
import {
  alreadyExists,
  badRequest,
  conflict,
  expired,
  internalError,
  invalidObject,
  MeshApiError,
  methodNotAllowed,
  notFound,
  type StatusCause,
} from './errors.js'
import {apiVersionOf, crdObjects, RESOURCE_TYPES, typeKey, type ResourceInfo} from './registry.js'
import {fieldMatcher, labelMatcher} from './selectors.js'
import type {KubeObject, ListOptions, ListResult, ResourceType, Store, WatchEvent} from './types.js'
import {canonical, clone, isPlainObject, nowTimestamp} from './util.js'

export interface FileStoreOptions {
  /** state directory (created if missing): snapshot.json, journal.jsonl, store.lock */
  dir: string
  /** watch events kept in memory for resuming watches (default 10,000) */
  ringSize?: number
  /** journal lines after which the store writes a snapshot and starts a new journal (default 5,000) */
  compactEvery?: number
  /** fsync each write batch before acknowledging (default true; false only for throwaway stores) */
  fsync?: boolean
  /** namespaces that exist from the start (default: default, kube-system, kube-public, istio-system) */
  initialNamespaces?: string[]
  /** refuse to open a directory another live process holds (default true) */
  lock?: boolean
  /**
   * a deleted Namespace stays Terminating this long before it and its contents go (default 1000 ms),
   * so `kubectl delete -f` of a file that also lists the namespace's objects works as on a real cluster
   */
  namespaceFinalizeDelayMs?: number
}

export interface WriteOptions {
  /** validate and return the result without storing it (`dryRun=All`) */
  dryRun?: boolean
}

export interface DeleteOptions extends WriteOptions {
  /** Background/Foreground cascade to dependents (default); Orphan drops their ownerReferences instead */
  propagationPolicy?: 'Background' | 'Foreground' | 'Orphan'
  preconditions?: {uid?: string; resourceVersion?: string}
}

export interface StoreStats {
  objects: number
  resourceVersion: string
  journalLines: number
  snapshots: number
}

type Mutation = {op: 'put'; t: string; obj: KubeObject} | {op: 'del'; t: string; ns?: string; name: string; rv: number}

interface Pending {
  lines: string[]
  events: Array<{rv: number; type: ResourceInfo; ev: WatchEvent}>
  resolve: () => void
  reject: (e: unknown) => void
}

interface RingEntry {
  rv: number
  type: ResourceInfo
  ev: WatchEvent
}

interface Watcher {
  key?: string
  cb: (type: ResourceInfo, ev: WatchEvent) => void
}

const SNAPSHOT = 'snapshot.json'
const JOURNAL = 'journal.jsonl'
const LOCK = 'store.lock'
const PROTECTED_NAMESPACES = new Set(['default', 'kube-system', 'kube-public'])
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/

const objKey = (ns: string | undefined, name: string): string => `${ns ?? ''}/${name}`

/** Everything but metadata and status: what a generation counts. */
function specPart(o: KubeObject): string {
  const {metadata: _m, status: _s, ...rest} = o
  return canonical(rest)
}

export class FileStore implements Store {
  readonly dir: string
  private readonly ringSize: number
  private readonly compactEvery: number
  private readonly doFsync: boolean
  private readonly useLock: boolean
  private readonly registry: ResourceInfo[]
  private readonly byKey = new Map<string, ResourceInfo>()
  private readonly objs = new Map<string, Map<string, KubeObject>>()
  private rv = 0
  private ring: RingEntry[] = []
  /** every event with rv > floor is in the ring */
  private floor = 0
  private readonly watchers = new Set<Watcher>()
  private journal?: FileHandle
  private journalLines = 0
  private snapshots = 0
  private queue: Pending[] = []
  private flushing = false
  private flushDone?: Promise<void>
  private failed?: Error
  private closed = false
  private compactRequested = false
  private readonly nsDelay: number
  private readonly nsTimers = new Map<string, NodeJS.Timeout>()

  private constructor(opts: FileStoreOptions) {
    this.dir = opts.dir
    this.ringSize = opts.ringSize ?? 10_000
    this.compactEvery = opts.compactEvery ?? 5_000
    this.doFsync = opts.fsync ?? true
    this.useLock = opts.lock ?? true
    this.nsDelay = opts.namespaceFinalizeDelayMs ?? 1000
    this.registry = [...RESOURCE_TYPES]
    for (const t of this.registry) {
      this.byKey.set(typeKey(t), t)
      this.objs.set(typeKey(t), new Map())
    }
  }

  /** Opens (or creates) the store in `dir`: loads the snapshot, replays the journal, drops a torn last line. */
  static async open(opts: FileStoreOptions | string): Promise<FileStore> {
    const o = typeof opts === 'string' ? {dir: opts} : opts
    const s = new FileStore(o)
    await s.load(o.initialNamespaces ?? ['default', 'kube-system', 'kube-public', 'istio-system'])
    return s
  }

  // ---------------------------------------------------------------- Store interface

  types(): ResourceInfo[] {
    return [...this.registry]
  }

  typeFor(kindOrResource: string, group?: string): ResourceInfo | undefined {
    const n = kindOrResource.toLowerCase()
    const candidates = group === undefined ? this.registry : this.registry.filter((t) => t.group === group)
    return (
      candidates.find((t) => t.kind === kindOrResource) ??
      candidates.find((t) => t.resource === n || t.kind.toLowerCase() === n || t.singular === n) ??
      candidates.find((t) => t.shortNames.includes(n))
    )
  }

  get(type: ResourceType, namespace: string | undefined, name: string): KubeObject | undefined {
    const t = this.info(type)
    const o = this.bucket(t).get(objKey(t.namespaced ? namespace : undefined, name))
    return o ? clone(o) : undefined
  }

  list(type: ResourceType, namespace: string | undefined, opts: ListOptions = {}): ListResult {
    const t = this.info(type)
    const labels = labelMatcher(opts.labelSelector)
    const fields = fieldMatcher(opts.fieldSelector)
    let start = ''
    if (opts.continue) {
      try {
        const c = JSON.parse(Buffer.from(opts.continue, 'base64url').toString('utf8')) as {k: string}
        if (typeof c.k !== 'string') throw new Error('bad token')
        start = c.k
      } catch {
        throw badRequest(`invalid continue token "${opts.continue}"`)
      }
    }
    const keys = [...this.bucket(t).keys()].sort()
    const items: KubeObject[] = []
    let next: string | undefined
    for (const k of keys) {
      if (start && k <= start) continue
      const o = this.bucket(t).get(k)!
      if (t.namespaced && namespace && o.metadata.namespace !== namespace) continue
      if (!labels(o.metadata.labels)) continue
      if (!fields(o as Record<string, unknown>)) continue
      if (opts.limit && opts.limit > 0 && items.length >= opts.limit) {
        // more match: the token says where the next page starts
        const l = items[items.length - 1]
        next = Buffer.from(JSON.stringify({k: objKey(l.metadata.namespace, l.metadata.name), rv: this.rv}), 'utf8').toString('base64url')
        break
      }
      items.push(clone(o))
    }
    return {items, resourceVersion: String(this.rv), ...(next ? {continue: next} : {})}
  }

  create(type: ResourceType, obj: KubeObject, opts: WriteOptions = {}): Promise<KubeObject> {
    return this.guard(() => {
      const t = this.writable(type)
      const o = this.normalize(t, obj)
      if (!o.metadata.name && typeof o.metadata.generateName === 'string' && o.metadata.generateName) {
        o.metadata.name = `${o.metadata.generateName}${randomSuffix()}`
      }
      this.checkName(t, o)
      if (t.namespaced) this.requireNamespace(o.metadata.namespace!)
      const k = objKey(o.metadata.namespace, o.metadata.name)
      if (this.bucket(t).has(k)) throw alreadyExists(t, o.metadata.name)
      o.metadata.uid = randomUUID()
      o.metadata.creationTimestamp = nowTimestamp()
      o.metadata.generation = 1
      delete o.metadata.deletionTimestamp
      if (t.kind === 'Namespace') {
        o.metadata.labels = {...(o.metadata.labels ?? {}), 'kubernetes.io/metadata.name': o.metadata.name}
        o.spec = {finalizers: ['kubernetes'], ...(o.spec ?? {})}
        o.status = {phase: 'Active'}
      }
      if (opts.dryRun) {
        delete o.metadata.resourceVersion
        return {result: o}
      }
      const rv = ++this.rv
      o.metadata.resourceVersion = String(rv)
      this.bucket(t).set(k, o)
      return {result: o, muts: [{op: 'put', t: typeKey(t), obj: o}], events: [{rv, type: t, ev: {type: 'ADDED', object: o}}]}
    })
  }

  update(type: ResourceType, obj: KubeObject, opts: WriteOptions = {}): Promise<KubeObject> {
    return this.guard(() => this.doUpdate(type, obj, 'main', opts))
  }

  updateStatus(type: ResourceType, obj: KubeObject, opts: WriteOptions = {}): Promise<KubeObject> {
    return this.guard(() => this.doUpdate(type, obj, 'status', opts))
  }

  delete(type: ResourceType, namespace: string | undefined, name: string, opts: DeleteOptions = {}): Promise<KubeObject> {
    return this.guard(() => {
      const t = this.writable(type)
      const ns = t.namespaced ? namespace : undefined
      const old = this.bucket(t).get(objKey(ns, name))
      if (!old) throw notFound(t, name)
      const pre = opts.preconditions
      if (pre?.uid && pre.uid !== old.metadata.uid) {
        throw conflict(t, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${old.metadata.uid}`)
      }
      if (pre?.resourceVersion && pre.resourceVersion !== old.metadata.resourceVersion) {
        throw conflict(t, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${old.metadata.resourceVersion}`)
      }
      if (t.kind === 'Namespace' && PROTECTED_NAMESPACES.has(name)) {
        throw new MeshApiError(403, 'Forbidden', `namespaces "${name}" is forbidden: this namespace may not be deleted`, {name, kind: 'namespaces'})
      }
      if (opts.dryRun) return {result: clone(old)}
      if (t.kind === 'Namespace') return this.terminateNamespace(t, old)
      const muts: Mutation[] = []
      const events: Pending['events'] = []
      const removed = this.removeCascade(t, old, opts.propagationPolicy ?? 'Background', muts, events)
      return {result: removed, muts, events}
    })
  }

  watch(
    type: ResourceType | undefined,
    fromResourceVersion: string | undefined,
    onEvent: (type: ResourceType, ev: WatchEvent) => void,
  ): () => void {
    if (this.failed) throw internalError(`the store is unavailable: ${this.failed.message}`)
    const key = type ? typeKey(type) : undefined
    const w: Watcher = {key, cb: onEvent}
    if (fromResourceVersion !== undefined && fromResourceVersion !== '') {
      const from = Number(fromResourceVersion)
      if (!Number.isInteger(from) || from < 0) throw badRequest(`invalid resourceVersion "${fromResourceVersion}"`)
      if (from < this.floor) {
        throw expired(`too old resource version: ${from} (${this.floor})`)
      }
      for (const e of this.ring) {
        if (e.rv > from && (!key || typeKey(e.type) === key)) deliver(w, e.type, e.ev)
      }
    }
    this.watchers.add(w)
    return () => {
      this.watchers.delete(w)
    }
  }

  currentResourceVersion(): string {
    return String(this.rv)
  }

  // ---------------------------------------------------------------- extras

  /** resourceVersion of the oldest event a watch can still resume after (older → 410 Expired). */
  oldestResumableResourceVersion(): string {
    return String(this.floor)
  }

  stats(): StoreStats {
    let n = 0
    for (const [k, m] of this.objs) if (!this.byKey.get(k)?.readOnly) n += m.size
    return {objects: n, resourceVersion: String(this.rv), journalLines: this.journalLines, snapshots: this.snapshots}
  }

  /** Writes a snapshot and truncates the journal (serialized with journal appends). */
  async compact(): Promise<void> {
    this.compactRequested = true
    this.kick()
    await this.drain()
  }

  /** Flushes, writes a final snapshot, releases the lock. Watches get no further events. */
  async close(): Promise<void> {
    if (this.closed) return
    for (const timer of this.nsTimers.values()) clearTimeout(timer)
    this.nsTimers.clear()
    await this.drain()
    this.closed = true
    if (!this.failed) await this.writeSnapshot().catch(() => undefined)
    await this.journal?.close().catch(() => undefined)
    this.journal = undefined
    this.watchers.clear()
    if (this.useLock) await unlink(join(this.dir, LOCK)).catch(() => undefined)
  }

  // ---------------------------------------------------------------- internals

  private info(type: ResourceType): ResourceInfo {
    const t = this.byKey.get(typeKey(type))
    if (!t) throw new MeshApiError(404, 'NotFound', `the server could not find the requested resource (${type.resource}.${type.group})`)
    return t
  }

  private writable(type: ResourceType): ResourceInfo {
    const t = this.info(type)
    if (t.readOnly) throw methodNotAllowed(`${t.resource}.${t.group} are read-only in the embedded cluster`)
    return t
  }

  private bucket(t: ResourceInfo): Map<string, KubeObject> {
    return this.objs.get(typeKey(t))!
  }

  /** Runs a synchronous mutation, then queues its journal lines; resolves once they are on disk. */
  private guard(fn: () => {result: KubeObject; muts?: Mutation[]; events?: Pending['events']}): Promise<KubeObject> {
    if (this.closed) return Promise.reject(internalError('the store is closed'))
    if (this.failed) return Promise.reject(internalError(`the store is unavailable: ${this.failed.message}`))
    let r: ReturnType<typeof fn>
    try {
      r = fn()
    } catch (e) {
      return Promise.reject(e)
    }
    if (!r.muts || r.muts.length === 0) return Promise.resolve(clone(r.result))
    const result = clone(r.result)
    return new Promise<KubeObject>((resolve, reject) => {
      this.queue.push({
        lines: r.muts!.map((m) => JSON.stringify(m)),
        events: r.events ?? [],
        resolve: () => resolve(result),
        reject,
      })
      this.kick()
    })
  }

  private kick(): void {
    if (this.flushing) return
    this.flushing = true
    this.flushDone = this.flushLoop()
  }

  private async flushLoop(): Promise<void> {
    for (;;) {
      if (this.queue.length === 0 && !this.compactRequested) {
        // cleared in the same tick as the last queue check, so a write queued by a resumed caller kicks a new loop
        this.flushing = false
        return
      }
      const batch = this.queue
      this.queue = []
      try {
        if (this.failed) throw this.failed
        const text = batch.map((p) => p.lines.join('\n') + '\n').join('')
        await this.journal!.write(text)
        if (this.doFsync) await this.journal!.datasync()
        for (const p of batch) this.journalLines += p.lines.length
      } catch (e) {
        this.failed = this.failed ?? (e instanceof Error ? e : new Error(String(e)))
        this.compactRequested = false
        for (const p of batch) p.reject(internalError(`could not persist the write: ${this.failed.message}`))
        continue
      }
      for (const p of batch) {
        for (const e of p.events) this.publish(e)
        p.resolve()
      }
      if (this.journalLines >= this.compactEvery || this.compactRequested) {
        this.compactRequested = false
        try {
          await this.writeSnapshot()
        } catch (e) {
          // the journal still holds everything; try again after the next batch
          void e
        }
      }
    }
  }

  private async drain(): Promise<void> {
    while (this.flushing || this.queue.length > 0 || this.compactRequested) {
      if (!this.flushing) this.kick()
      await this.flushDone
    }
  }

  private publish(e: RingEntry): void {
    this.ring.push(e)
    if (this.ring.length > this.ringSize * 1.25) {
      const drop = this.ring.length - this.ringSize
      this.floor = this.ring[drop - 1].rv
      this.ring = this.ring.slice(drop)
    }
    for (const w of this.watchers) {
      if (!w.key || w.key === typeKey(e.type)) deliver(w, e.type, e.ev)
    }
  }

  private normalize(t: ResourceInfo, obj: KubeObject): KubeObject {
    if (!isPlainObject(obj)) throw badRequest('the object must be a JSON object')
    const o = clone(obj)
    if (!isPlainObject(o.metadata)) o.metadata = {name: ''} as KubeObject['metadata']
    o.apiVersion = apiVersionOf(t)
    o.kind = t.kind
    if (!t.namespaced) delete o.metadata.namespace
    else if (!o.metadata.namespace) {
      throw invalidObject(t, String(o.metadata.name ?? ''), [{field: 'metadata.namespace', message: 'Required value'}])
    }
    return o
  }

  private checkName(t: ResourceInfo, o: KubeObject): void {
    const name = o.metadata.name
    const causes: StatusCause[] = []
    if (typeof name !== 'string' || name === '') causes.push({field: 'metadata.name', message: 'Required value: name or generateName is required'})
    else {
      const label = t.kind === 'Namespace' || t.kind === 'Service'
      const ok = label ? DNS_LABEL.test(name) && name.length <= 63 : DNS_SUBDOMAIN.test(name) && name.length <= 253
      if (!ok) {
        causes.push({
          field: 'metadata.name',
          message: `Invalid value: "${name}": a lowercase RFC 1123 ${label ? 'label' : 'subdomain'} must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`,
        })
      }
    }
    if (t.namespaced && o.metadata.namespace && !DNS_LABEL.test(o.metadata.namespace)) {
      causes.push({field: 'metadata.namespace', message: `Invalid value: "${o.metadata.namespace}"`})
    }
    if (causes.length) throw invalidObject(t, String(name ?? ''), causes)
  }

  private requireNamespace(ns: string): void {
    const o = this.objs.get('core/namespaces')!.get(objKey(undefined, ns))
    if (!o) throw new MeshApiError(404, 'NotFound', `namespaces "${ns}" not found`, {name: ns, kind: 'namespaces'})
    if (o.metadata.deletionTimestamp) {
      throw new MeshApiError(403, 'Forbidden', `unable to create new content in namespace ${ns} because it is being terminated`, {name: ns, kind: 'namespaces'})
    }
  }

  private doUpdate(type: ResourceType, obj: KubeObject, part: 'main' | 'status', opts: WriteOptions) {
    const t = this.writable(type)
    const o = this.normalize(t, obj)
    const name = o.metadata?.name
    if (!name) throw invalidObject(t, '', [{field: 'metadata.name', message: 'Required value'}])
    const k = objKey(o.metadata.namespace, name)
    const old = this.bucket(t).get(k)
    if (!old) throw notFound(t, name)
    if (o.metadata.resourceVersion !== undefined && o.metadata.resourceVersion !== '' && o.metadata.resourceVersion !== old.metadata.resourceVersion) {
      throw conflict(t, name)
    }
    let next: KubeObject
    if (part === 'status') {
      next = clone(old)
      if (o.status === undefined) delete next.status
      else next.status = o.status
    } else {
      next = o
      if (t.statusSubresource) {
        if (old.status === undefined) delete next.status
        else next.status = clone(old.status)
      }
    }
    next.metadata.uid = old.metadata.uid
    next.metadata.creationTimestamp = old.metadata.creationTimestamp
    if (old.metadata.deletionTimestamp) next.metadata.deletionTimestamp = old.metadata.deletionTimestamp
    else delete next.metadata.deletionTimestamp
    next.metadata.namespace = old.metadata.namespace
    if (!t.namespaced) delete next.metadata.namespace
    next.metadata.generation = (old.metadata.generation ?? 1) + (specPart(next) !== specPart(old) ? 1 : 0)
    if (t.kind === 'Namespace') {
      next.metadata.labels = {...(next.metadata.labels ?? {}), 'kubernetes.io/metadata.name': name}
    }
    next.metadata.resourceVersion = old.metadata.resourceVersion
    // a write that changes nothing keeps its resourceVersion and sends no event, as on a real apiserver
    if (canonical(next) === canonical(old) || opts.dryRun) return {result: next}
    const rv = ++this.rv
    next.metadata.resourceVersion = String(rv)
    this.bucket(t).set(k, next)
    return {
      result: next,
      muts: [{op: 'put', t: typeKey(t), obj: next}] as Mutation[],
      events: [{rv, type: t, ev: {type: 'MODIFIED', object: next}}] as Pending['events'],
    }
  }

  /** Marks a namespace Terminating and schedules the removal of it and its contents. */
  private terminateNamespace(t: ResourceInfo, ns: KubeObject) {
    if (ns.metadata.deletionTimestamp) return {result: clone(ns)}
    const next = clone(ns)
    next.metadata.deletionTimestamp = nowTimestamp()
    next.status = {...(isPlainObject(next.status) ? next.status : {}), phase: 'Terminating'}
    const rv = ++this.rv
    next.metadata.resourceVersion = String(rv)
    this.bucket(t).set(objKey(undefined, ns.metadata.name), next)
    this.scheduleNamespaceFinalize(ns.metadata.name)
    return {
      result: next,
      muts: [{op: 'put', t: typeKey(t), obj: next}] as Mutation[],
      events: [{rv, type: t, ev: {type: 'MODIFIED', object: next}}] as Pending['events'],
    }
  }

  private scheduleNamespaceFinalize(name: string): void {
    if (this.nsTimers.has(name)) return
    const timer = setTimeout(() => {
      this.nsTimers.delete(name)
      void this.guard(() => {
        const t = this.byKey.get('core/namespaces')!
        const cur = this.bucket(t).get(objKey(undefined, name))
        if (!cur || !cur.metadata.deletionTimestamp) throw notFound(t, name)
        const muts: Mutation[] = []
        const events: Pending['events'] = []
        return {result: this.removeCascade(t, cur, 'Background', muts, events), muts, events}
      }).catch(() => undefined)
    }, this.nsDelay)
    timer.unref()
    this.nsTimers.set(name, timer)
  }

  /** Removes `obj` and, depending on the policy, what it owns (and everything in a deleted namespace). */
  private removeCascade(t: ResourceInfo, obj: KubeObject, policy: string, muts: Mutation[], events: Pending['events']): KubeObject {
    const ns = t.namespaced ? obj.metadata.namespace : undefined
    this.bucket(t).delete(objKey(ns, obj.metadata.name))
    const rv = ++this.rv
    const gone = clone(obj)
    gone.metadata.resourceVersion = String(rv)
    muts.push({op: 'del', t: typeKey(t), ns, name: obj.metadata.name, rv})
    events.push({rv, type: t, ev: {type: 'DELETED', object: gone}})

    if (t.kind === 'Namespace') {
      for (const [key, m] of this.objs) {
        const ti = this.byKey.get(key)
        if (!ti?.namespaced) continue
        for (const o of [...m.values()]) {
          if (o.metadata.namespace === obj.metadata.name && m.has(objKey(o.metadata.namespace, o.metadata.name))) {
            this.removeCascade(ti, o, 'Background', muts, events)
          }
        }
      }
      return gone
    }
    const uid = obj.metadata.uid
    for (const [key, m] of this.objs) {
      const ti = this.byKey.get(key)
      if (!ti || ti.readOnly) continue
      for (const o of [...m.values()]) {
        const refs = o.metadata.ownerReferences as Array<{uid?: string}> | undefined
        if (!Array.isArray(refs) || !refs.some((r) => r.uid === uid)) continue
        if (ti.namespaced && t.namespaced && o.metadata.namespace !== ns) continue
        if (!m.has(objKey(o.metadata.namespace, o.metadata.name))) continue
        const remaining = refs.filter((r) => r.uid !== uid)
        if (policy === 'Orphan' || remaining.length > 0) {
          // still owned by someone else, or orphaned on request: only drop the reference
          const next = clone(o)
          if (remaining.length) next.metadata.ownerReferences = remaining
          else delete next.metadata.ownerReferences
          const r2 = ++this.rv
          next.metadata.resourceVersion = String(r2)
          m.set(objKey(o.metadata.namespace, o.metadata.name), next)
          muts.push({op: 'put', t: key, obj: next})
          events.push({rv: r2, type: ti, ev: {type: 'MODIFIED', object: next}})
        } else {
          this.removeCascade(ti, o, policy, muts, events)
        }
      }
    }
    return gone
  }

  // ---------------------------------------------------------------- persistence

  private async load(initialNamespaces: string[]): Promise<void> {
    mkdirSync(this.dir, {recursive: true})
    if (this.useLock) this.takeLock()
    const snapPath = join(this.dir, SNAPSHOT)
    let snapRv = 0
    if (existsSync(snapPath)) {
      let snap: {rv: number; objects: Record<string, KubeObject[]>}
      try {
        snap = JSON.parse(await readFile(snapPath, 'utf8'))
      } catch (e) {
        throw internalError(`the store snapshot ${snapPath} is unreadable: ${(e as Error).message}`)
      }
      snapRv = snap.rv
      for (const [k, items] of Object.entries(snap.objects)) {
        const m = this.ensureBucket(k)
        for (const o of items) m.set(objKey(o.metadata.namespace, o.metadata.name), o)
      }
    }
    this.rv = snapRv
    const jPath = join(this.dir, JOURNAL)
    if (existsSync(jPath)) {
      const buf = readFileSync(jPath)
      let pos = 0
      let good = 0
      while (pos < buf.length) {
        const nl = buf.indexOf(0x0a, pos)
        const end = nl === -1 ? buf.length : nl
        const line = buf.subarray(pos, end).toString('utf8').trim()
        if (line) {
          let m: Mutation
          try {
            m = JSON.parse(line)
          } catch {
            // only the tail can be torn (a crash mid-append): anything after it is garbage too
            if (buf.subarray(end).toString('utf8').trim() !== '') {
              throw internalError(`the store journal ${jPath} is corrupt at byte ${pos}`)
            }
            break
          }
          if (nl === -1) break // a complete-looking line without its newline was never acknowledged
          this.replay(m, snapRv)
          this.journalLines++
        }
        pos = end + 1
        good = Math.min(pos, buf.length)
      }
      if (good < buf.length) await truncate(jPath, good)
    }
    this.journal = await open(jPath, 'a')
    this.floor = this.rv
    for (const [k, m] of this.objs) {
      // built-in CRD objects are generated, never persisted
      if (this.byKey.get(k)?.readOnly) m.clear()
    }
    const created = nowTimestamp()
    const crds = this.objs.get('apiextensions.k8s.io/customresourcedefinitions')!
    for (const c of crdObjects(this.registry, created)) {
      const o = c as unknown as KubeObject
      o.metadata.uid = randomUUID()
      o.metadata.resourceVersion = '1'
      crds.set(objKey(undefined, o.metadata.name), o)
    }
    if (this.journalLines > 0) await this.writeSnapshot()
    const nsType = this.byKey.get('core/namespaces')!
    for (const ns of this.bucket(nsType).values()) {
      // a namespace that was Terminating when the process stopped finishes terminating now
      if (ns.metadata.deletionTimestamp) this.scheduleNamespaceFinalize(ns.metadata.name)
    }
    for (const ns of initialNamespaces) {
      if (!this.bucket(nsType).has(objKey(undefined, ns))) {
        await this.create(nsType, {apiVersion: 'v1', kind: 'Namespace', metadata: {name: ns}})
      }
    }
  }

  private ensureBucket(k: string): Map<string, KubeObject> {
    let m = this.objs.get(k)
    if (!m) {
      m = new Map()
      this.objs.set(k, m)
    }
    return m
  }

  private replay(m: Mutation, snapRv: number): void {
    if (m.op === 'put') {
      const rv = Number(m.obj.metadata.resourceVersion)
      if (rv <= snapRv) return
      this.ensureBucket(m.t).set(objKey(m.obj.metadata.namespace, m.obj.metadata.name), m.obj)
      this.rv = Math.max(this.rv, rv)
    } else {
      if (m.rv <= snapRv) return
      this.ensureBucket(m.t).delete(objKey(m.ns, m.name))
      this.rv = Math.max(this.rv, m.rv)
    }
  }

  private async writeSnapshot(): Promise<void> {
    const objects: Record<string, KubeObject[]> = {}
    for (const [k, m] of this.objs) {
      if (this.byKey.get(k)?.readOnly) continue
      objects[k] = [...m.values()]
    }
    // the snapshot may include writes still queued for the journal; replay skips lines at or below its rv
    const rv = this.rv
    const linesBefore = this.journalLines
    const tmp = join(this.dir, `${SNAPSHOT}.tmp`)
    const fh = await open(tmp, 'w', 0o600)
    try {
      await fh.writeFile(JSON.stringify({version: 1, rv, objects}))
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(tmp, join(this.dir, SNAPSHOT))
    await syncDir(this.dir)
    // nothing may be appended between here and the truncate: callers hold the flush loop
    if (this.journal) await this.journal.truncate(0)
    this.journalLines = Math.max(0, this.journalLines - linesBefore)
    this.snapshots++
  }

  private takeLock(): void {
    const p = join(this.dir, LOCK)
    if (existsSync(p)) {
      const pid = Number(readFileSync(p, 'utf8').trim())
      if (pid && pid !== process.pid && alive(pid)) {
        throw new MeshApiError(503, 'ServiceUnavailable', `the store in ${this.dir} is in use by process ${pid}`, undefined, 'stop the other meshd first (mesh lab down)')
      }
    }
    writeFileSync(p, String(process.pid))
  }
}

function deliver(w: Watcher, t: ResourceInfo, ev: WatchEvent): void {
  try {
    w.cb(t, {type: ev.type, object: clone(ev.object)})
  } catch {
    // one failing watcher must not break the others or the writer
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

async function syncDir(dir: string): Promise<void> {
  try {
    const d = await open(dir, 'r')
    try {
      await d.sync()
    } finally {
      await d.close()
    }
  } catch {
    // some filesystems refuse fsync on directories; the rename is still atomic
  }
}

const ALNUM = 'bcdfghjklmnpqrstvwxz2456789'
export function randomSuffix(n = 5): string {
  const b = randomBytes(n)
  let s = ''
  for (let i = 0; i < n; i++) s += ALNUM[b[i] % ALNUM.length]
  return s
}
