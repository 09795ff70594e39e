// Walkthrough results for CI: JSON, and JUnit XML with one testcase per step.
import {XMLBuilder} from 'fast-xml-parser'
import type {StepReport, WalkthroughReport} from './batch.js'

// XML 1.0 forbids most control characters even when escaped; ANSI colour codes are noise.
// eslint-disable-next-line no-control-regex
const xmlSafe = (s: string) => s.replace(/\u001B\[[0-9;]*[A-Za-z]/g, '').replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g, '')
const seconds = (ms: number) => (ms / 1000).toFixed(3)

function details(s: StepReport): string {
  const lines = [`$ ${s.command}`]
  if (s.exitCode !== undefined) lines.push(`exit code: ${s.exitCode ?? 'none (killed)'}`)
  for (const c of s.checks ?? []) {
    for (const k of c.criteria) lines.push(`${k.ok ? '✔' : '×'} ${c.run ? `\`${c.run}\`: ` : ''}${k.expectation}${k.ok || !k.actual ? '' : ` — got ${k.actual}`}`)
  }
  if (s.output) lines.push('', s.output)
  return xmlSafe(lines.join('\n'))
}

/** JUnit XML: a testsuite per lab, a testcase per step; fail → <failure>, skipped/not run → <skipped>. */
export function walkthroughJunit(report: WalkthroughReport): string {
  const suite = `mesh lab walkthrough ${report.lab.id}`
  const testcase = report.steps.map((s) => {
    const tc: Record<string, unknown> = {
      '@_name': xmlSafe(`${s.number}. ${s.id}: ${s.title}`),
      '@_classname': xmlSafe(`walkthrough.${report.lab.id}`),
      '@_time': seconds(s.durationMs),
    }
    if (s.status === 'fail') tc.failure = {'@_message': xmlSafe(s.message), '@_type': 'check', '#text': details(s)}
    else if (s.status === 'skipped' || s.status === 'not-run') tc.skipped = {'@_message': xmlSafe(s.message)}
    else tc['system-out'] = details(s)
    return tc
  })
  const attrs = {
    '@_name': xmlSafe(suite),
    '@_tests': report.total,
    '@_failures': report.failed,
    '@_errors': 0,
    '@_skipped': report.skipped + report.notRun,
    '@_time': seconds(report.durationMs),
  }
  const doc = {
    '?xml': {'@_version': '1.0', '@_encoding': 'UTF-8'},
    testsuites: {...attrs, testsuite: {...attrs, '@_timestamp': report.startedAt, testcase}},
  }
  return new XMLBuilder({ignoreAttributes: false, attributeNamePrefix: '@_', format: true, suppressEmptyNode: true}).build(doc) as string
}

export function walkthroughJson(report: WalkthroughReport): string {
  return JSON.stringify(report, null, 2) + '\n'
}
