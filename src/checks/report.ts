// Checks are data; these functions only render them. Text follows `linkerd check`
// (✔ pass, ‼ warning, × fail, ? inconclusive, – skipped); JSON, JUnit and a self-contained
// HTML page carry the same results.
import {Chalk} from 'chalk'
import {XMLBuilder} from 'fast-xml-parser'
import {EXIT, type ExitCode} from '../lib/errors.js'

export type Severity = 'fatal' | 'warning'
export type CheckStatus = 'pass' | 'fail' | 'warn' | 'inconclusive' | 'skip'

export interface CheckResult {
  /** stable id, e.g. 'split', 'mtls.strict' */
  id: string
  /** what is checked, phrased as the passing state: "traffic split matches 90/10" */
  description: string
  /** where to read what to do when it fails */
  hintUrl: string
  severity: Severity
  status: CheckStatus
  evidence: Record<string, unknown>
  /** one line: why this status */
  message: string
  /** optional group heading in text output */
  category?: string
  durationMs?: number
}

export interface CheckSummary {
  total: number
  pass: number
  fail: number
  warn: number
  inconclusive: number
  skip: number
  exitCode: ExitCode
}

/** A failed warning-severity check is a warning, not a failure. */
export function effectiveStatus(r: Pick<CheckResult, 'status' | 'severity'>): CheckStatus {
  if (r.severity === 'warning' && (r.status === 'fail' || r.status === 'inconclusive')) return 'warn'
  return r.status
}

/**
 * 0 when nothing fatal failed and nothing fatal is inconclusive (warnings allowed),
 * 1 when a fatal check failed, 2 when a fatal check is inconclusive and none failed.
 */
export function overallExit(results: readonly CheckResult[]): ExitCode {
  const s = results.map(effectiveStatus)
  if (s.includes('fail')) return EXIT.checkFailed
  if (s.includes('inconclusive')) return EXIT.inconclusive
  return EXIT.ok
}

export function summarize(results: readonly CheckResult[]): CheckSummary {
  const out = {total: results.length, pass: 0, fail: 0, warn: 0, inconclusive: 0, skip: 0}
  for (const r of results) out[effectiveStatus(r)]++
  return {...out, exitCode: overallExit(results)}
}

// ---------------------------------------------------------------- text

const SYMBOL: Record<CheckStatus, string> = {pass: '✔', warn: '‼', fail: '×', inconclusive: '?', skip: '–'}

function short(v: unknown): string | undefined {
  if (v === null) return 'null'
  if (typeof v === 'number') return String(Math.round(v * 1000) / 1000)
  if (typeof v === 'string') return v.length > 60 ? `${v.slice(0, 57)}…` : v
  if (typeof v === 'boolean') return String(v)
  if (Array.isArray(v) && v.length <= 4 && v.every((x) => typeof x === 'number' || typeof x === 'string'))
    return `[${v.map((x) => short(x)).join(', ')}]`
  return undefined // nested objects stay in JSON/JUnit/HTML
}

/** Evidence as "k=v k=v", primitives and short arrays only, at most `max` entries. */
export function shortEvidence(evidence: Record<string, unknown>, max = 6): string {
  const parts: string[] = []
  for (const [k, v] of Object.entries(evidence)) {
    const s = short(v)
    if (s !== undefined) parts.push(`${k}=${s}`)
    if (parts.length >= max) break
  }
  return parts.join(' ')
}

export interface TextOptions {
  color?: boolean
  /** show evidence under passing checks too; default only under non-passing ones */
  verbose?: boolean
}

export function renderText(results: readonly CheckResult[], opts: TextOptions = {}): string {
  const c = new Chalk({level: opts.color ? 1 : 0})
  const paint: Record<CheckStatus, (s: string) => string> = {
    pass: c.green,
    warn: c.yellow,
    fail: c.red,
    inconclusive: c.magenta,
    skip: c.gray,
  }
  const lines: string[] = []
  let category: string | undefined
  for (const r of results) {
    if (r.category !== undefined && r.category !== category) {
      if (lines.length > 0) lines.push('')
      lines.push(r.category, '-'.repeat(r.category.length))
      category = r.category
    }
    const st = effectiveStatus(r)
    lines.push(`${paint[st](SYMBOL[st])} ${r.description}${st === 'skip' ? c.gray(' (skipped)') : ''}`)
    // a passing check still states what it measured (e.g. the observed split); evidence only with verbose
    if (r.message && (st !== 'pass' || opts.verbose || r.message !== r.description)) lines.push(`    ${r.message}`)
    if (st !== 'pass' || opts.verbose) {
      const ev = shortEvidence(r.evidence)
      if (ev) lines.push(c.gray(`    ${ev}`))
      if (st === 'fail' || st === 'warn' || st === 'inconclusive') lines.push(`    see ${r.hintUrl} for hints`)
    }
  }
  const s = summarize(results)
  const overall = s.exitCode === EXIT.ok ? paint.pass('✔') : s.exitCode === EXIT.checkFailed ? paint.fail('×') : paint.inconclusive('?')
  lines.push(
    '',
    `Status check results are ${overall}  (${s.pass} passed, ${s.warn} warnings, ${s.fail} failed, ${s.inconclusive} inconclusive, ${s.skip} skipped)`,
  )
  return lines.join('\n') + '\n'
}

// ---------------------------------------------------------------- json

export function renderJson(results: readonly CheckResult[]): string {
  return JSON.stringify({summary: summarize(results), checks: results}, null, 2) + '\n'
}

// ---------------------------------------------------------------- junit

// XML 1.0 forbids most control characters even when escaped.
// eslint-disable-next-line no-control-regex
const xmlSafe = (s: string) => s.replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g, '')

/**
 * JUnit XML: one testcase per check. fail → <failure>, inconclusive → <error type="inconclusive">
 * (the check could not reach a verdict), skip → <skipped>, warn → passing case with the
 * warning in <system-out>.
 */
export function renderJunit(results: readonly CheckResult[], suiteName = 'mesh verify', timestamp = new Date()): string {
  const s = summarize(results)
  const time = (ms: number | undefined) => ((ms ?? 0) / 1000).toFixed(3)
  const totalMs = results.reduce((t, r) => t + (r.durationMs ?? 0), 0)
  const body = (r: CheckResult) => xmlSafe(`${r.message}\n\nhint: ${r.hintUrl}\nevidence: ${JSON.stringify(r.evidence, null, 2)}`)
  const testcases = results.map((r) => {
    const st = effectiveStatus(r)
    const tc: Record<string, unknown> = {
      '@_name': xmlSafe(`${r.id}: ${r.description}`),
      '@_classname': xmlSafe(`${suiteName}.${r.category ?? r.id.split('.')[0]}`),
      '@_time': time(r.durationMs),
    }
    if (st === 'fail') tc.failure = {'@_message': xmlSafe(r.message), '@_type': r.severity, '#text': body(r)}
    else if (st === 'inconclusive') tc.error = {'@_message': xmlSafe(r.message), '@_type': 'inconclusive', '#text': body(r)}
    else if (st === 'skip') tc.skipped = {'@_message': xmlSafe(r.message)}
    else if (st === 'warn') tc['system-out'] = body(r)
    return tc
  })
  const suiteAttrs = {
    '@_name': xmlSafe(suiteName),
    '@_tests': s.total,
    '@_failures': s.fail,
    '@_errors': s.inconclusive,
    '@_skipped': s.skip,
    '@_time': time(totalMs),
  }
  const doc = {
    '?xml': {'@_version': '1.0', '@_encoding': 'UTF-8'},
    testsuites: {
      ...suiteAttrs,
      testsuite: {...suiteAttrs, '@_timestamp': timestamp.toISOString(), testcase: testcases},
    },
  }
  const builder = new XMLBuilder({ignoreAttributes: false, attributeNamePrefix: '@_', format: true, suppressEmptyNode: true})
  return builder.build(doc) as string
}

// ---------------------------------------------------------------- html

export interface SplitSeriesPoint {
  /** requests sent when this look was taken (x axis) */
  requests: number
  /** observed v2 share, percent */
  observedShare: number | null
  /** confidence-sequence interval, percent */
  interval: [number, number]
}

export interface ReachabilityCell {
  /** what happened: '200', '403', 'reset', … */
  outcome: string
  /** what the policies predict; omitted when there is no prediction */
  expected?: string
  /** peer identity or other short evidence */
  detail?: string
}

export interface ReachabilityMatrix {
  title: string
  /** destinations (services, or "GET /hello") */
  columns: string[]
  rows: Array<{caller: string; cells: ReachabilityCell[]}>
}

export interface HtmlReport {
  title: string
  generatedAt?: string
  checks: CheckResult[]
  split?: {
    expectedV2Share: number
    tolerance: number
    confidence: number
    points: SplitSeriesPoint[]
  }
  latency?: {
    buckets: Array<{loMs: number; hiMs: number; count: number}>
    percentiles?: Partial<Record<'p50' | 'p90' | 'p99' | 'p999', number>>
  }
  matrices?: ReachabilityMatrix[]
}

const esc = (s: unknown) =>
  String(s).replace(/[&<>"']/g, (ch) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'})[ch] as string)
const fmt = (x: number, d = 1) => (Math.round(x * 10 ** d) / 10 ** d).toString()

const W = 640
const H = 260
const PAD = {l: 48, r: 16, t: 16, b: 36}

function splitChart(split: NonNullable<HtmlReport['split']>): string {
  const pts = split.points.filter((p) => p.requests > 0)
  const maxX = Math.max(1, ...pts.map((p) => p.requests))
  const lo = Math.max(0, split.expectedV2Share - split.tolerance)
  const hi = Math.min(100, split.expectedV2Share + split.tolerance)
  // y range: enough to show the band and the early wide intervals, clipped to 0..100
  const yMin = Math.max(0, Math.min(lo, ...pts.map((p) => p.interval[0])) - 2)
  const yMax = Math.min(100, Math.max(hi, ...pts.map((p) => p.interval[1])) + 2)
  const x = (v: number) => PAD.l + (v / maxX) * (W - PAD.l - PAD.r)
  const y = (v: number) => PAD.t + (1 - (v - yMin) / Math.max(1e-9, yMax - yMin)) * (H - PAD.t - PAD.b)
  const area =
    pts.length > 0
      ? [...pts.map((p) => `${fmt(x(p.requests))},${fmt(y(p.interval[1]))}`), ...[...pts].reverse().map((p) => `${fmt(x(p.requests))},${fmt(y(p.interval[0]))}`)].join(' ')
      : ''
  const line = pts
    .filter((p) => p.observedShare !== null)
    .map((p) => `${fmt(x(p.requests))},${fmt(y(p.observedShare as number))}`)
    .join(' ')
  const yTicks = niceTicks(yMin, yMax, 5)
  const xTicks = niceTicks(0, maxX, 5)
  return `<svg data-chart="split" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="v2 share over requests">
<title>v2 share per look with the ${esc(fmt(split.confidence * 100, 2))}% confidence sequence and the accepted band</title>
<rect class="band" x="${PAD.l}" y="${fmt(y(hi))}" width="${W - PAD.l - PAD.r}" height="${fmt(Math.max(0, y(lo) - y(hi)))}"/>
<line class="expected" x1="${PAD.l}" x2="${W - PAD.r}" y1="${fmt(y(split.expectedV2Share))}" y2="${fmt(y(split.expectedV2Share))}"/>
${area ? `<polygon class="cs" points="${area}"/>` : ''}
${line ? `<polyline class="share" points="${line}"/>` : ''}
${axes(xTicks, yTicks, x, y, 'requests', 'v2 share %')}
</svg>`
}

function latencyChart(lat: NonNullable<HtmlReport['latency']>): string {
  const b = lat.buckets
  const maxC = Math.max(1, ...b.map((k) => k.count))
  const bw = (W - PAD.l - PAD.r) / Math.max(1, b.length)
  const y = (c: number) => PAD.t + (1 - c / maxC) * (H - PAD.t - PAD.b)
  const bars = b
    .map(
      (k, i) =>
        `<rect class="bar" x="${fmt(PAD.l + i * bw + 1)}" y="${fmt(y(k.count))}" width="${fmt(Math.max(1, bw - 2))}" height="${fmt(H - PAD.b - y(k.count))}"><title>${esc(fmt(k.loMs, 3))}–${esc(fmt(k.hiMs, 3))} ms: ${k.count}</title></rect>`,
    )
    .join('\n')
  const labelEvery = Math.max(1, Math.ceil(b.length / 8))
  const xLabels = b
    .map((k, i) => (i % labelEvery === 0 ? `<text class="tick" x="${fmt(PAD.l + i * bw)}" y="${H - PAD.b + 14}">${esc(fmtMs(k.loMs))}</text>` : ''))
    .join('')
  const markers = Object.entries(lat.percentiles ?? {})
    .filter(([, v]) => typeof v === 'number')
    .map(([name, v]) => {
      const i = b.findIndex((k) => (v as number) >= k.loMs && (v as number) < k.hiMs)
      if (i < 0) return ''
      const px = fmt(PAD.l + (i + 0.5) * bw)
      return `<line class="pct" x1="${px}" x2="${px}" y1="${PAD.t}" y2="${H - PAD.b}"/><text class="pctlabel" x="${px}" y="${PAD.t + 10}">${esc(name)}</text>`
    })
    .join('')
  return `<svg data-chart="latency" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="latency histogram">
<title>latency histogram (log-spaced buckets)</title>
${bars}
${markers}
<line class="axis" x1="${PAD.l}" x2="${W - PAD.r}" y1="${H - PAD.b}" y2="${H - PAD.b}"/>
<line class="axis" x1="${PAD.l}" x2="${PAD.l}" y1="${PAD.t}" y2="${H - PAD.b}"/>
${xLabels}
<text class="label" x="${W / 2}" y="${H - 4}">latency (ms, log scale)</text>
<text class="tick" x="${PAD.l - 6}" y="${PAD.t + 4}" text-anchor="end">${maxC}</text>
</svg>`
}

const fmtMs = (ms: number) => (ms < 1 ? fmt(ms, 3) : ms < 10 ? fmt(ms, 2) : fmt(ms, 0))

function niceTicks(min: number, max: number, count: number): number[] {
  const span = Math.max(1e-9, max - min)
  const raw = span / count
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag
  const out: number[] = []
  for (let v = Math.ceil(min / step) * step; v <= max + 1e-9; v += step) out.push(Math.round(v * 1e6) / 1e6)
  return out
}

function axes(xTicks: number[], yTicks: number[], x: (v: number) => number, y: (v: number) => number, xLabel: string, yLabel: string): string {
  return [
    `<line class="axis" x1="${PAD.l}" x2="${W - PAD.r}" y1="${H - PAD.b}" y2="${H - PAD.b}"/>`,
    `<line class="axis" x1="${PAD.l}" x2="${PAD.l}" y1="${PAD.t}" y2="${H - PAD.b}"/>`,
    ...xTicks.map((v) => `<text class="tick" x="${fmt(x(v))}" y="${H - PAD.b + 14}" text-anchor="middle">${esc(v)}</text>`),
    ...yTicks.map((v) => `<text class="tick" x="${PAD.l - 6}" y="${fmt(y(v) + 4)}" text-anchor="end">${esc(v)}</text>`),
    `<text class="label" x="${W / 2}" y="${H - 4}" text-anchor="middle">${esc(xLabel)}</text>`,
    `<text class="label" x="12" y="${H / 2}" transform="rotate(-90 12 ${H / 2})" text-anchor="middle">${esc(yLabel)}</text>`,
  ].join('\n')
}

function matrixTable(m: ReachabilityMatrix): string {
  const head = `<tr><th scope="col">caller \\ target</th>${m.columns.map((c) => `<th scope="col">${esc(c)}</th>`).join('')}</tr>`
  const rows = m.rows
    .map((r) => {
      const cells = r.cells
        .map((cell) => {
          const cls = cell.expected === undefined ? 'info' : cell.expected === cell.outcome ? 'ok' : 'bad'
          const exp = cell.expected !== undefined && cell.expected !== cell.outcome ? ` <span class="exp">(expected ${esc(cell.expected)})</span>` : ''
          const det = cell.detail ? `<div class="detail">${esc(cell.detail)}</div>` : ''
          return `<td class="${cls}">${esc(cell.outcome)}${exp}${det}</td>`
        })
        .join('')
      return `<tr><th scope="row">${esc(r.caller)}</th>${cells}</tr>`
    })
    .join('\n')
  return `<table class="matrix" data-matrix="${esc(m.title)}"><caption>${esc(m.title)}</caption>\n${head}\n${rows}\n</table>`
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:760px;color:#1d2330;padding:0 1rem}
h1{font-size:1.4rem;margin:0 0 .2rem}h2{font-size:1.1rem;margin:1.8rem 0 .6rem}
.meta{color:#667;margin:0 0 1rem}
ul.checks{list-style:none;padding:0}ul.checks li{margin:.35rem 0}
.sym{display:inline-block;width:1.4em;font-weight:700}
.s-pass .sym{color:#1a7f37}.s-warn .sym{color:#9a6700}.s-fail .sym{color:#cf222e}.s-inconclusive .sym{color:#8250df}.s-skip .sym{color:#888}
.msg{color:#444;margin-left:1.4em}.ev{color:#777;font-family:ui-monospace,monospace;font-size:12px;margin-left:1.4em}
.summary{font-weight:600}
svg{background:#fafbfc;border:1px solid #e1e4e8;max-width:100%;height:auto}
svg .band{fill:#2da44e;fill-opacity:.12}svg .expected{stroke:#2da44e;stroke-dasharray:4 3}
svg .cs{fill:#0969da;fill-opacity:.18;stroke:none}svg .share{fill:none;stroke:#0969da;stroke-width:2}
svg .axis{stroke:#555}svg .tick{font-size:10px;fill:#555}svg .label{font-size:11px;fill:#333}
svg .bar{fill:#6e40c9;fill-opacity:.75}svg .pct{stroke:#cf222e;stroke-dasharray:3 3}svg .pctlabel{font-size:10px;fill:#cf222e}
.legend{font-size:12px;color:#555}
table.matrix{border-collapse:collapse;margin:.5rem 0 1rem}table.matrix caption{text-align:left;font-weight:600;margin-bottom:.3rem}
table.matrix th,table.matrix td{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left;vertical-align:top}
td.ok{background:#dafbe1}td.bad{background:#ffebe9}td.info{background:#f6f8fa}
.exp{color:#cf222e;font-size:12px}.detail{color:#57606a;font-size:11px;font-family:ui-monospace,monospace}
`

/** A self-contained page: inline CSS and SVG, no scripts, no external resources. */
export function renderHtml(report: HtmlReport): string {
  const s = summarize(report.checks)
  const checks = report.checks
    .map((r) => {
      const st = effectiveStatus(r)
      const ev = shortEvidence(r.evidence)
      return `<li class="s-${st}" data-check="${esc(r.id)}"><span class="sym">${SYMBOL[st]}</span>${esc(r.description)}${
        st === 'pass' ? '' : ` — <a href="${esc(r.hintUrl)}">hints</a>`
      }<div class="msg">${esc(r.message)}</div>${ev ? `<div class="ev">${esc(ev)}</div>` : ''}</li>`
    })
    .join('\n')
  const sections: string[] = []
  if (report.split && report.split.points.length > 0) {
    const sp = report.split
    sections.push(
      `<h2>Split over time</h2>\n${splitChart(sp)}\n<p class="legend">Blue line: observed v2 share after each look. Blue area: the ${esc(fmt(sp.confidence * 100, 2))}% confidence sequence (valid at every look). Green band: expected ${esc(fmt(sp.expectedV2Share))}% ± ${esc(fmt(sp.tolerance))} points; the check passes once the blue area fits inside it and fails once it leaves the dashed line.</p>`,
    )
  }
  if (report.latency && report.latency.buckets.length > 0) {
    const p = report.latency.percentiles ?? {}
    const list = Object.entries(p)
      .map(([k, v]) => `${esc(k)} ${esc(fmtMs(v as number))} ms`)
      .join(' · ')
    sections.push(`<h2>Latency</h2>\n${latencyChart(report.latency)}\n${list ? `<p class="legend">${list}</p>` : ''}`)
  }
  if (report.matrices && report.matrices.length > 0) sections.push(`<h2>Reachability</h2>\n${report.matrices.map(matrixTable).join('\n')}`)
  const generated = report.generatedAt ?? new Date().toISOString()
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(report.title)}</title>
<link rel="icon" href="data:,">
<style>${CSS}</style>
</head>
<body>
<h1>${esc(report.title)}</h1>
<p class="meta">generated ${esc(generated)}</p>
<p class="summary">${s.pass} passed · ${s.warn} warnings · ${s.fail} failed · ${s.inconclusive} inconclusive · ${s.skip} skipped — exit code ${s.exitCode}</p>
<h2>Checks</h2>
<ul class="checks">
${checks}
</ul>
${sections.join('\n')}
</body>
</html>
`
}
