// Check evaluators: pure functions from a command's result to pass/fail per criterion.
import {isDeepStrictEqual} from 'node:util'
import type {Check, CriterionResult, JsonCheck, ProcessResult} from './types.js'

const q = (s: string) => JSON.stringify(s)

/** Last few lines of a text, for "what was seen" in a failed criterion. */
export function tail(text: string, lines = 3, width = 160): string {
  const t = text.trimEnd().split('\n').slice(-lines).join('\n')
  return t.length > width ? `…${t.slice(-width)}` : t || '(empty)'
}

/** `result.checks[0].status` → ['result', 'checks', 0, 'status'] */
export function parsePath(path: string): Array<string | number> {
  const out: Array<string | number> = []
  for (const part of path.split('.')) {
    const m = /^([^[\]]*)((?:\[\d+\])*)$/.exec(part)
    if (!m) {
      out.push(part)
      continue
    }
    if (m[1]) out.push(/^\d+$/.test(m[1]) ? Number(m[1]) : m[1])
    for (const idx of m[2]!.matchAll(/\[(\d+)\]/g)) out.push(Number(idx[1]))
  }
  return out
}

export function getPath(doc: unknown, path: string): unknown {
  let cur: unknown = doc
  for (const key of parsePath(path)) {
    if (cur === null || typeof cur !== 'object') return undefined
    cur = (cur as Record<string | number, unknown>)[key]
  }
  return cur
}

const show = (v: unknown): string => (v === undefined ? 'nothing' : JSON.stringify(v))

export function evaluateJson(doc: unknown, j: JsonCheck): CriterionResult[] {
  const value = getPath(doc, j.path)
  const out: CriterionResult[] = []
  if ('equals' in j) {
    const ok = isDeepStrictEqual(value, j.equals)
    out.push({ok, expectation: `${j.path} equals ${JSON.stringify(j.equals)}`, ...(ok ? {} : {actual: `${j.path} is ${show(value)}`})})
  }
  if ('contains' in j) {
    const ok = Array.isArray(value)
      ? value.some((x) => isDeepStrictEqual(x, j.contains))
      : typeof value === 'string' && typeof j.contains === 'string' && value.includes(j.contains)
    out.push({ok, expectation: `${j.path} contains ${JSON.stringify(j.contains)}`, ...(ok ? {} : {actual: `${j.path} is ${show(value)}`})})
  }
  if ('exists' in j) {
    const ok = (value !== undefined) === j.exists
    out.push({ok, expectation: `${j.path} ${j.exists ? 'is present' : 'is absent'}`, ...(ok ? {} : {actual: `${j.path} is ${show(value)}`})})
  }
  if ('matches' in j && typeof j.matches === 'string') {
    const ok = typeof value === 'string' && new RegExp(j.matches).test(value)
    out.push({ok, expectation: `${j.path} matches /${j.matches}/`, ...(ok ? {} : {actual: `${j.path} is ${show(value)}`})})
  }
  return out
}

/**
 * Evaluates every criterion of a check against one command's result. A command that timed
 * out or was interrupted fails whatever the criteria say.
 */
export function evaluateCheck(check: Check, r: ProcessResult): CriterionResult[] {
  const out: CriterionResult[] = []
  if (r.timedOut) out.push({ok: false, expectation: 'command finishes in time', actual: `timed out after ${Math.round(r.durationMs / 1000)} s`})
  if (r.interrupted) out.push({ok: false, expectation: 'command runs to the end', actual: 'interrupted'})
  if (check.exitCode !== undefined) {
    const ok = r.exitCode === check.exitCode
    out.push({
      ok,
      expectation: `exit code ${check.exitCode}`,
      ...(ok ? {} : {actual: `exit code ${r.exitCode ?? 'none (killed)'}${r.stderr.trim() ? `; stderr: ${tail(r.stderr, 2)}` : ''}`}),
    })
  }
  for (const s of check.stdoutContains ?? []) {
    const ok = r.stdout.includes(s)
    out.push({ok, expectation: `output contains ${q(s)}`, ...(ok ? {} : {actual: `stdout: ${tail(r.stdout)}`})})
  }
  for (const s of check.stdoutNotContains ?? []) {
    const ok = !r.stdout.includes(s)
    out.push({ok, expectation: `output does not contain ${q(s)}`, ...(ok ? {} : {actual: `found in: ${lineWith(r.stdout, s)}`})})
  }
  if (check.stdoutMatches !== undefined) {
    const ok = new RegExp(check.stdoutMatches, 'm').test(r.stdout)
    out.push({ok, expectation: `output matches /${check.stdoutMatches}/`, ...(ok ? {} : {actual: `stdout: ${tail(r.stdout)}`})})
  }
  for (const s of check.stderrContains ?? []) {
    const ok = r.stderr.includes(s)
    out.push({ok, expectation: `stderr contains ${q(s)}`, ...(ok ? {} : {actual: `stderr: ${tail(r.stderr)}`})})
  }
  if (check.json && check.json.length > 0) {
    let doc: unknown
    try {
      doc = JSON.parse(r.stdout)
    } catch {
      out.push({ok: false, expectation: 'output is JSON', actual: `stdout: ${tail(r.stdout)}`})
      return out
    }
    for (const j of check.json) out.push(...evaluateJson(doc, j))
  }
  return out
}

function lineWith(text: string, s: string): string {
  const line = text.split('\n').find((l) => l.includes(s)) ?? s
  return line.length > 160 ? `${line.slice(0, 157)}…` : line
}

/** "exit code 0; output contains "v2"" */
export function describeCheck(check: Check): string {
  const parts: string[] = []
  if (check.exitCode !== undefined) parts.push(`exit code ${check.exitCode}`)
  for (const s of check.stdoutContains ?? []) parts.push(`output contains ${q(s)}`)
  for (const s of check.stdoutNotContains ?? []) parts.push(`output does not contain ${q(s)}`)
  if (check.stdoutMatches !== undefined) parts.push(`output matches /${check.stdoutMatches}/`)
  for (const s of check.stderrContains ?? []) parts.push(`stderr contains ${q(s)}`)
  for (const j of check.json ?? []) parts.push(...evaluateJson({}, j).map((c) => c.expectation))
  const what = parts.join(', ')
  return check.run ? `\`${check.run}\` gives ${what}` : what
}
