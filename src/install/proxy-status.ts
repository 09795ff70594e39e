// Parse `istioctl proxy-status` tables (1.2x: NAME CLUSTER CDS LDS EDS RDS ECDS ISTIOD VERSION).
// Cells are read by the header's column positions: istioctl prints through a tabwriter, so
// every column starts where its header starts, and cells such as "NOT SENT" or
// "SYNCED (2m1s)" keep their spaces.

export const XDS_TYPES = ['CDS', 'LDS', 'EDS', 'RDS', 'ECDS'] as const
export type XdsType = (typeof XDS_TYPES)[number]
export type SyncState = 'SYNCED' | 'STALE' | 'NOT SENT' | 'IGNORED' | 'UNKNOWN'

export interface XdsStatus {
  state: SyncState
  /** the cell as printed, e.g. "SYNCED (2m1s)" */
  raw: string
  /** time since the last ack, when istioctl prints one, e.g. "2m1s" */
  age?: string
}

export interface ProxyStatusRow {
  /** NAME as printed: <pod>.<namespace> */
  id: string
  pod: string
  namespace: string
  cluster?: string
  xds: Partial<Record<XdsType, XdsStatus>>
  istiod?: string
  version?: string
}

function cellState(raw: string): XdsStatus {
  const m = /^(SYNCED|STALE|NOT SENT|IGNORED)\b/.exec(raw)
  const age = /\(([^)]*)\)/.exec(raw)?.[1]
  return {state: (m?.[1] as SyncState | undefined) ?? 'UNKNOWN', raw, ...(age ? {age} : {})}
}

/** Rows of a proxy-status table; lines before the header (warnings) are skipped. */
export function parseProxyStatus(text: string): ProxyStatusRow[] {
  const lines = text.replace(/\r/g, '').split('\n')
  const headerIdx = lines.findIndex((l) => /^NAME\s/.test(l) && /\bCDS\b/.test(l))
  if (headerIdx < 0) return []
  const header = lines[headerIdx]
  const cols: Array<{name: string; start: number}> = []
  for (const m of header.matchAll(/\S+/g)) cols.push({name: m[0], start: m.index ?? 0})
  const rows: ProxyStatusRow[] = []
  for (const line of lines.slice(headerIdx + 1)) {
    if (line.trim() === '') continue
    const cells: Record<string, string> = {}
    cols.forEach((c, i) => {
      const end = i + 1 < cols.length ? cols[i + 1].start : undefined
      cells[c.name] = line.slice(c.start, end).trim()
    })
    const id = cells.NAME
    if (!id) continue
    const dot = id.lastIndexOf('.')
    const xds: Partial<Record<XdsType, XdsStatus>> = {}
    for (const t of XDS_TYPES) if (cells[t] !== undefined) xds[t] = cellState(cells[t])
    rows.push({
      id,
      pod: dot > 0 ? id.slice(0, dot) : id,
      namespace: dot > 0 ? id.slice(dot + 1) : '',
      ...(cells.CLUSTER ? {cluster: cells.CLUSTER} : {}),
      xds,
      ...(cells.ISTIOD ? {istiod: cells.ISTIOD} : {}),
      ...(cells.VERSION ? {version: cells.VERSION} : {}),
    })
  }
  return rows
}

/**
 * A proxy is in sync when none of its xDS types is STALE (sent, not yet acknowledged) or
 * unreadable. NOT SENT (nothing of that type for this proxy) and IGNORED do not block.
 */
export function isRowSynced(row: ProxyStatusRow): boolean {
  return Object.values(row.xds).every((s) => s.state !== 'STALE' && s.state !== 'UNKNOWN')
}

export interface SyncSummary {
  total: number
  synced: number
  /** proxies still waiting, with the types that are not in sync */
  pending: Array<{id: string; types: XdsType[]}>
  allSynced: boolean
}

export function summarizeSync(rows: ProxyStatusRow[]): SyncSummary {
  const pending = rows
    .filter((r) => !isRowSynced(r))
    .map((r) => ({id: r.id, types: XDS_TYPES.filter((t) => r.xds[t] && (r.xds[t]!.state === 'STALE' || r.xds[t]!.state === 'UNKNOWN'))}))
  return {total: rows.length, synced: rows.length - pending.length, pending, allSynced: rows.length > 0 && pending.length === 0}
}
