// Where each rendering of a verify report goes, decided as data: what to print on stdout and
// which files to write. The command performs the writes. Renderers come from src/checks/report.
import {renderHtml, renderJson, renderJunit, renderText, type ReachabilityMatrix} from '../checks/report.js'
import type {VerifyFormat} from './flags.js'
import type {VerifyReport} from './run.js'

export interface OutputRequest {
  format: VerifyFormat
  /** --output: the formatted results go to this file, text stays on stdout */
  output?: string
  /** --report: HTML file */
  report?: string
  /** --json: the command prints the envelope itself, stdout gets nothing here */
  jsonEnvelope?: boolean
  color?: boolean
  verbose?: boolean
  /** junit suite name and HTML title */
  title: string
  now?: Date
}

export interface OutputPlan {
  stdout: string
  files: Array<{path: string; content: string}>
}

/** The JSON document of `--format json`: summary, checks, and what was skipped or warned. */
export function reportJson(r: VerifyReport): string {
  const base = JSON.parse(renderJson(r.checks)) as Record<string, unknown>
  return JSON.stringify({...base, target: r.target, skipped: r.skipped, warnings: r.warnings}, null, 2) + '\n'
}

/** A matrix as aligned text: each cell "outcome (expected …) detail"; ✔/× per cell. */
export function renderMatrixText(m: ReachabilityMatrix): string {
  const cell = (c: ReachabilityMatrix['rows'][number]['cells'][number]) => {
    const ok = c.expected === undefined || c.expected === c.outcome
    return `${ok ? '✔' : '×'} ${c.outcome}${ok ? '' : ` (expected ${c.expected})`}${c.detail ? ` · ${c.detail}` : ''}`
  }
  const rows = [['caller', ...m.columns], ...m.rows.map((r) => [r.caller, ...r.cells.map(cell)])]
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  const line = (r: string[]) => r.map((v, i) => (i === r.length - 1 ? v : v.padEnd(widths[i]!))).join('  ').trimEnd()
  return [m.title, ...rows.map(line)].join('\n') + '\n'
}

export function renderTextReport(r: VerifyReport, o: Pick<OutputRequest, 'color' | 'verbose'> = {}): string {
  let text = renderText(r.checks, {color: o.color, verbose: o.verbose})
  for (const m of r.report.matrices ?? []) text += '\n' + renderMatrixText(m)
  if (r.skipped.length) text += r.skipped.map((s) => `– ${s.group} not run: ${s.reason}`).join('\n') + '\n'
  return text
}

export function planOutput(r: VerifyReport, o: OutputRequest): OutputPlan {
  const now = o.now ?? new Date()
  const formatted = (): string => (o.format === 'json' ? reportJson(r) : o.format === 'junit' ? renderJunit(r.checks, o.title, now) : renderTextReport(r, {verbose: o.verbose}))
  const files: OutputPlan['files'] = []
  if (o.output) files.push({path: o.output, content: formatted()})
  if (o.report) files.push({path: o.report, content: renderHtml({title: o.title, generatedAt: now.toISOString(), checks: r.checks, ...r.report})})
  let stdout = ''
  if (!o.jsonEnvelope) stdout = o.output || o.format === 'text' ? renderTextReport(r, o) : formatted()
  return {stdout, files}
}
