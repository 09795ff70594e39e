// meta.k8s.io/v1 Table responses, so `kubectl get` prints the columns users know.
import type {ResourceInfo} from './registry.js'
import type {KubeObject} from './types.js'

interface Column {
  name: string
  type: string
  format?: string
  description: string
  priority: number
  cell: (o: KubeObject) => unknown
}

/** True when the Accept header asks for a Table. */
export function wantsTable(accept: string | undefined): boolean {
  return !!accept && /as=Table/.test(accept)
}

/** kubectl's short human durations: 45s, 3m12s, 5h, 2d3h, 40d. */
export function humanAge(ts: string | undefined, now = Date.now()): string {
  if (!ts) return '<unknown>'
  const s = Math.max(0, Math.floor((now - Date.parse(ts)) / 1000))
  const m = Math.floor(s / 60)
  const h = Math.floor(m / 60)
  const d = Math.floor(h / 24)
  if (s < 120) return `${s}s`
  if (m < 10) return s % 60 ? `${m}m${s % 60}s` : `${m}m`
  if (h < 3) return `${m}m`
  if (h < 8) return m % 60 ? `${h}h${m % 60}m` : `${h}h`
  if (d < 2) return `${h}h`
  if (d < 8) return h % 24 ? `${d}d${h % 24}h` : `${d}d`
  return `${d}d`
}

const col = (name: string, cell: Column['cell'], extra: Partial<Column> = {}): Column => ({
  name,
  type: 'string',
  description: name,
  priority: 0,
  cell,
  ...extra,
})

const get = (o: unknown, path: string): any => // eslint-disable-line @typescript-eslint/no-explicit-any
  path.split('.').reduce<unknown>((acc, p) => (acc && typeof acc === 'object' ? (acc as Record<string, unknown>)[p] : undefined), o)

const nameCol = col('Name', (o) => o.metadata.name, {format: 'name', description: 'Name must be unique within a namespace.'})
const ageCol = col('Age', (o) => humanAge(o.metadata.creationTimestamp), {description: 'CreationTimestamp is a timestamp representing the server time when this object was created.'})
const list = (v: unknown): string => (Array.isArray(v) && v.length ? v.join(',') : '<none>')

function podStatus(o: KubeObject): string {
  const cs = (get(o, 'status.containerStatuses') ?? []) as Array<Record<string, any>> // eslint-disable-line @typescript-eslint/no-explicit-any
  for (const c of cs) {
    const w = c.state?.waiting?.reason ?? c.state?.terminated?.reason
    if (w) return w
  }
  return get(o, 'status.reason') ?? get(o, 'status.phase') ?? 'Pending'
}

function servicePorts(o: KubeObject): string {
  const ports = (get(o, 'spec.ports') ?? []) as Array<Record<string, unknown>>
  if (!ports.length) return '<none>'
  return ports.map((p) => `${p.port}${p.nodePort ? `:${p.nodePort}` : ''}/${p.protocol ?? 'TCP'}`).join(',')
}

function endpointsList(o: KubeObject): string {
  const out: string[] = []
  for (const s of (get(o, 'subsets') ?? []) as Array<Record<string, any>>) { // eslint-disable-line @typescript-eslint/no-explicit-any
    for (const a of s.addresses ?? []) for (const p of s.ports ?? [{}]) out.push(p.port ? `${a.ip}:${p.port}` : a.ip)
  }
  if (!out.length) return '<none>'
  return out.length > 3 ? `${out.slice(0, 3).join(',')} + ${out.length - 3} more...` : out.join(',')
}

const COLUMNS: Record<string, Column[]> = {
  Namespace: [nameCol, col('Status', (o) => get(o, 'status.phase') ?? 'Active'), ageCol],
  Pod: [
    nameCol,
    col('Ready', (o) => {
      const cs = (get(o, 'status.containerStatuses') ?? []) as Array<{ready?: boolean}>
      const total = ((get(o, 'spec.containers') ?? []) as unknown[]).length
      return `${cs.filter((c) => c.ready).length}/${total}`
    }),
    col('Status', podStatus),
    col('Restarts', (o) => ((get(o, 'status.containerStatuses') ?? []) as Array<{restartCount?: number}>).reduce((a, c) => a + (c.restartCount ?? 0), 0), {type: 'integer'}),
    ageCol,
    col('IP', (o) => get(o, 'status.podIP') ?? '<none>', {priority: 1}),
    col('Node', (o) => get(o, 'spec.nodeName') ?? '<none>', {priority: 1}),
  ],
  Deployment: [
    nameCol,
    col('Ready', (o) => `${get(o, 'status.readyReplicas') ?? 0}/${get(o, 'spec.replicas') ?? 1}`),
    col('Up-to-date', (o) => get(o, 'status.updatedReplicas') ?? 0, {type: 'integer'}),
    col('Available', (o) => get(o, 'status.availableReplicas') ?? 0, {type: 'integer'}),
    ageCol,
    col('Containers', (o) => list(((get(o, 'spec.template.spec.containers') ?? []) as Array<{name: string}>).map((c) => c.name)), {priority: 1}),
    col('Images', (o) => list(((get(o, 'spec.template.spec.containers') ?? []) as Array<{image: string}>).map((c) => c.image)), {priority: 1}),
    col('Selector', (o) => Object.entries((get(o, 'spec.selector.matchLabels') ?? {}) as Record<string, string>).map(([k, v]) => `${k}=${v}`).join(',') || '<none>', {priority: 1}),
  ],
  Service: [
    nameCol,
    col('Type', (o) => get(o, 'spec.type') ?? 'ClusterIP'),
    col('Cluster-IP', (o) => get(o, 'spec.clusterIP') ?? '<none>'),
    col('External-IP', (o) => list(get(o, 'spec.externalIPs'))),
    col('Port(s)', servicePorts),
    ageCol,
    col('Selector', (o) => Object.entries((get(o, 'spec.selector') ?? {}) as Record<string, string>).map(([k, v]) => `${k}=${v}`).join(',') || '<none>', {priority: 1}),
  ],
  Endpoints: [nameCol, col('Endpoints', endpointsList), ageCol],
  ConfigMap: [nameCol, col('Data', (o) => Object.keys((o.data ?? {}) as object).length + Object.keys((o.binaryData ?? {}) as object).length, {type: 'integer'}), ageCol],
  Secret: [nameCol, col('Type', (o) => (o.type as string) ?? 'Opaque'), col('Data', (o) => Object.keys((o.data ?? {}) as object).length, {type: 'integer'}), ageCol],
  ServiceAccount: [nameCol, col('Secrets', (o) => ((o.secrets ?? []) as unknown[]).length, {type: 'integer'}), ageCol],
  Event: [
    col('Last Seen', (o) => humanAge((o.lastTimestamp as string) ?? (o.eventTime as string) ?? o.metadata.creationTimestamp)),
    col('Type', (o) => o.type ?? ''),
    col('Reason', (o) => o.reason ?? ''),
    col('Object', (o) => `${String(get(o, 'involvedObject.kind') ?? '').toLowerCase()}/${get(o, 'involvedObject.name') ?? ''}`),
    col('Message', (o) => o.message ?? ''),
  ],
  VirtualService: [nameCol, col('Gateways', (o) => JSON.stringify(get(o, 'spec.gateways') ?? []).replace(/^\[\]$/, '')), col('Hosts', (o) => JSON.stringify(get(o, 'spec.hosts') ?? [])), ageCol],
  DestinationRule: [nameCol, col('Host', (o) => get(o, 'spec.host') ?? ''), ageCol],
  Gateway: [nameCol, ageCol],
  PeerAuthentication: [nameCol, col('Mode', (o) => get(o, 'spec.mtls.mode') ?? ''), ageCol],
  AuthorizationPolicy: [nameCol, col('Action', (o) => get(o, 'spec.action') ?? 'ALLOW'), ageCol],
  CustomResourceDefinition: [nameCol, col('Created At', (o) => o.metadata.creationTimestamp ?? '', {format: 'date'})],
}

function columnsFor(t: ResourceInfo): Column[] {
  return COLUMNS[t.kind] ?? [nameCol, ageCol]
}

/** A Table of `items`; rows carry PartialObjectMetadata (or the whole object with includeObject=Object). */
export function toTable(t: ResourceInfo, items: KubeObject[], meta: Record<string, unknown>, includeObject: string | null, withColumns = true): Record<string, unknown> {
  const cols = columnsFor(t)
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: meta,
    columnDefinitions: withColumns ? cols.map(({cell: _c, ...d}) => d) : [],
    rows: items.map((o) => ({
      cells: cols.map((c) => {
        const v = c.cell(o)
        return v === undefined || v === null ? '' : v
      }),
      object:
        includeObject === 'Object'
          ? o
          : includeObject === 'None'
            ? undefined
            : {kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata},
    })),
  }
}
