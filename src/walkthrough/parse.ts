// Reads a lab file: Markdown with YAML front matter, one `## ` section per step holding the
// explanation, one ```sh block (the command) and one ```yaml step block (id, check, timeout).
// Every problem is reported with the file, the step and the field (MESH_LAB_INVALID, exit 65).
import {basename, relative} from 'node:path'
import {load} from 'js-yaml'
import {EXIT, MeshError, type FieldCause} from '../lib/errors.js'
import {DEFAULT_STEP_TIMEOUT_MS, type Check, type JsonCheck, type Lab, type Prerequisite, type Step} from './types.js'

export const LAB_ID = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/
const COMMAND_FENCES = new Set(['sh', 'bash', 'shell', 'console'])
const FRONT_MATTER_KEYS = new Set(['id', 'title', 'summary', 'minutes', 'prerequisites', 'setup'])
const STEP_KEYS = new Set(['id', 'check', 'timeout'])
const CHECK_KEYS = new Set(['run', 'exitCode', 'stdoutContains', 'stdoutNotContains', 'stdoutMatches', 'stderrContains', 'json'])
const JSON_KEYS = new Set(['path', 'equals', 'contains', 'exists', 'matches'])
const MAX_TIMEOUT_S = 3600

interface Fence {
  info: string
  body: string[]
  line: number
  /** index range in the section's line list */
  from: number
  to: number
}

interface Section {
  title: string
  line: number
  lines: string[]
  /** 1-based file line of lines[0] */
  firstLine: number
  fences: Fence[]
}

/** A path that reads well in messages: relative to the working directory when inside it. */
export function displayPath(file: string): string {
  const rel = relative(process.cwd(), file)
  return rel && !rel.startsWith('..') ? rel : file
}

class Problems {
  readonly causes: FieldCause[] = []
  constructor(readonly file: string) {}
  add(where: string, field: string, message: string, value?: unknown): void {
    this.causes.push({field: where ? `${where}.${field}` : field, message: where ? `${where}: ${field}: ${message}` : `${field}: ${message}`, ...(value === undefined ? {} : {value})})
  }
  throwIfAny(): void {
    if (this.causes.length === 0) return
    const first = this.causes[0]!
    const more = this.causes.length > 1 ? ` (and ${this.causes.length - 1} more problem${this.causes.length > 2 ? 's' : ''})` : ''
    throw new MeshError('MESH_LAB_INVALID', `${displayPath(this.file)}: ${first.message}${more}`, {
      suggestion: 'Fix the lab file; docs/walkthroughs.md describes the format.',
      exit: EXIT.invalidInput,
      field: first.field,
      causes: this.causes,
    })
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const nonEmptyString = (v: unknown): v is string => typeof v === 'string' && v.trim() !== ''

function splitFrontMatter(text: string, p: Problems): {front: unknown; body: string[]; bodyFirstLine: number} | undefined {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/)
  if (lines[0]?.trim() !== '---') {
    p.add('', 'front matter', 'missing: the file must start with a line "---", then YAML (id, title, summary, minutes, setup), then "---"')
    return undefined
  }
  const end = lines.findIndex((l, i) => i > 0 && (l.trim() === '---' || l.trim() === '...'))
  if (end < 0) {
    p.add('', 'front matter', 'not closed: add a line "---" after the YAML')
    return undefined
  }
  let front: unknown
  try {
    front = load(lines.slice(1, end).join('\n'))
  } catch (e) {
    const mark = (e as {mark?: {line?: number}}).mark
    const line = mark?.line !== undefined ? ` (line ${mark.line + 2})` : ''
    p.add('', 'front matter', `YAML does not parse${line}: ${(e as {reason?: string}).reason ?? (e as Error).message}`)
    return undefined
  }
  return {front, body: lines.slice(end + 1), bodyFirstLine: end + 2}
}

const FENCE_OPEN = /^ {0,3}(`{3,}|~{3,})\s*([^`]*)$/

/** Splits the body at `## ` headings outside fenced code; returns the intro and the sections. */
function sections(body: string[], firstLine: number): {intro: string[]; sections: Section[]} {
  const intro: string[] = []
  const out: Section[] = []
  let fence: {marker: string; fence: Fence} | undefined
  for (let i = 0; i < body.length; i++) {
    const line = body[i]!
    const lineNo = firstLine + i
    const current = out.at(-1)
    const push = (l: string) => (current ? current.lines.push(l) : intro.push(l))
    if (fence) {
      const close = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(line)
      if (close && close[1]![0] === fence.marker[0] && close[1]!.length >= fence.marker.length) {
        fence.fence.to = current?.lines.length ?? -1
        push(line)
        fence = undefined
        continue
      }
      fence.fence.body.push(line)
      push(line)
      continue
    }
    const open = FENCE_OPEN.exec(line)
    if (open) {
      const f: Fence = {info: open[2]!.trim(), body: [], line: lineNo, from: current?.lines.length ?? -1, to: -1}
      if (current) current.fences.push(f)
      fence = {marker: open[1]!, fence: f}
      push(line)
      continue
    }
    const h = /^##\s+(.+?)\s*#*\s*$/.exec(line)
    if (h && !line.startsWith('###')) {
      out.push({title: h[1]!, line: lineNo, lines: [], firstLine: lineNo + 1, fences: []})
      continue
    }
    push(line)
  }
  // an unclosed fence runs to the end of the file, as in CommonMark
  if (fence && fence.fence.to < 0) fence.fence.to = (out.at(-1)?.lines.length ?? intro.length) - 1
  return {intro, sections: out}
}

const tidy = (lines: string[]): string =>
  lines
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim()

function asStringList(v: unknown, where: string, field: string, p: Problems): string[] | undefined {
  if (v === undefined) return undefined
  const list = typeof v === 'string' ? [v] : v
  if (!Array.isArray(list) || list.length === 0 || !list.every(nonEmptyString)) {
    p.add(where, field, 'must be a non-empty string or a list of non-empty strings', v)
    return undefined
  }
  return list
}

/** `mesh …` commands print JSON only with --json; kubectl with -o json. */
export function printsJson(command: string): boolean {
  return /(^|\s)--json(\s|=|$)/.test(command) || /(^|\s)(-o|--output)[\s=]?json(\s|$)/.test(command) || !/^\s*(mesh|kubectl)\s/.test(command)
}

function parseJsonChecks(v: unknown, where: string, p: Problems, prefix: string): JsonCheck[] | undefined {
  const list = Array.isArray(v) ? v : [v]
  const out: JsonCheck[] = []
  list.forEach((j, i) => {
    const at = Array.isArray(v) ? `${prefix}[${i}]` : prefix
    if (!isObject(j)) return p.add(where, at, 'must be an object with path and equals, contains, exists or matches', j)
    for (const k of Object.keys(j)) if (!JSON_KEYS.has(k)) p.add(where, `${at}.${k}`, `unknown field (expected one of ${[...JSON_KEYS].join(', ')})`)
    if (!nonEmptyString(j.path)) p.add(where, `${at}.path`, 'is required: a dotted path such as result.verdict', j.path)
    const ops = ['equals', 'contains', 'exists', 'matches'].filter((k) => k in j)
    if (ops.length === 0) p.add(where, at, 'needs one of equals, contains, exists or matches')
    if ('exists' in j && typeof j.exists !== 'boolean') p.add(where, `${at}.exists`, 'must be true or false', j.exists)
    if ('matches' in j) checkRegex(j.matches, where, `${at}.matches`, p)
    out.push(j as unknown as JsonCheck)
  })
  return out
}

function checkRegex(v: unknown, where: string, field: string, p: Problems): void {
  if (typeof v !== 'string') return p.add(where, field, 'must be a regular expression string', v)
  try {
    new RegExp(v)
  } catch (e) {
    p.add(where, field, `is not a valid regular expression: ${(e as Error).message}`, v)
  }
}

/** One check object; `command` is the step command it applies to (undefined for prerequisites). */
function parseCheck(v: unknown, where: string, command: string | undefined, p: Problems, at = 'check'): Check | undefined {
  if (!isObject(v)) {
    p.add(where, at, 'must be an object such as {exitCode: 0} or a list of them', v)
    return undefined
  }
  for (const k of Object.keys(v)) if (!CHECK_KEYS.has(k)) p.add(where, `${at}.${k}`, `unknown field (expected one of ${[...CHECK_KEYS].join(', ')})`)
  const c: Check = {}
  if ('run' in v) {
    if (!nonEmptyString(v.run)) p.add(where, `${at}.run`, 'must be a command', v.run)
    else c.run = v.run.trim()
  } else if (command === undefined) {
    p.add(where, `${at}.run`, 'is required here: a prerequisite has no step command to check')
  }
  if ('exitCode' in v) {
    if (!Number.isInteger(v.exitCode) || (v.exitCode as number) < 0 || (v.exitCode as number) > 255) p.add(where, `${at}.exitCode`, 'must be a whole number 0–255', v.exitCode)
    else c.exitCode = v.exitCode as number
  }
  const sc = asStringList(v.stdoutContains, where, `${at}.stdoutContains`, p)
  if (sc) c.stdoutContains = sc
  const snc = asStringList(v.stdoutNotContains, where, `${at}.stdoutNotContains`, p)
  if (snc) c.stdoutNotContains = snc
  const ec = asStringList(v.stderrContains, where, `${at}.stderrContains`, p)
  if (ec) c.stderrContains = ec
  if ('stdoutMatches' in v) {
    checkRegex(v.stdoutMatches, where, `${at}.stdoutMatches`, p)
    if (typeof v.stdoutMatches === 'string') c.stdoutMatches = v.stdoutMatches
  }
  if ('json' in v) {
    const target = c.run ?? command
    if (target !== undefined && !printsJson(target))
      p.add(where, `${at}.json`, `needs JSON output: add --json to "${target}" (the participant sees exactly the command that runs)`)
    const js = parseJsonChecks(v.json, where, p, `${at}.json`)
    if (js) c.json = js
  }
  const criteria = ['exitCode', 'stdoutContains', 'stdoutNotContains', 'stdoutMatches', 'stderrContains', 'json'].filter((k) => k in v)
  if (criteria.length === 0) {
    // a verifying command alone means "it succeeds"
    if (c.run) c.exitCode = 0
    else p.add(where, at, 'has no criteria: give exitCode, stdoutContains, stdoutNotContains, stdoutMatches, stderrContains, json or run')
  }
  return c
}

function parseChecks(v: unknown, where: string, command: string | undefined, p: Problems): Check[] {
  if (v === undefined || v === null) {
    p.add(where, 'check', 'is required: every step needs a check whose verdict the walkthrough shows')
    return []
  }
  if (Array.isArray(v)) {
    if (v.length === 0) p.add(where, 'check', 'is an empty list')
    return v.map((c, i) => parseCheck(c, where, command, p, `check[${i}]`)).filter((c): c is Check => c !== undefined)
  }
  const c = parseCheck(v, where, command, p)
  return c ? [c] : []
}

function parsePrerequisites(v: unknown, p: Problems): Prerequisite[] {
  if (v === undefined) return []
  if (!Array.isArray(v)) {
    p.add('', 'prerequisites', 'must be a list', v)
    return []
  }
  return v.flatMap((x, i): Prerequisite[] => {
    const where = `prerequisites[${i}]`
    if (nonEmptyString(x)) return [{title: x}]
    if (!isObject(x) || !nonEmptyString(x.title)) {
      p.add(where, 'title', 'is required (a prerequisite is a string or {title, check, hint})', x)
      return []
    }
    for (const k of Object.keys(x)) if (!['title', 'check', 'hint'].includes(k)) p.add(where, k, 'unknown field (expected title, check, hint)')
    const pre: Prerequisite = {title: x.title}
    if (x.check !== undefined) pre.check = parseCheck(x.check, where, undefined, p)
    if (x.hint !== undefined) {
      if (nonEmptyString(x.hint)) pre.hint = x.hint
      else p.add(where, 'hint', 'must be a string', x.hint)
    }
    return [pre]
  })
}

function parseStep(s: Section, index: number, p: Problems): Step | undefined {
  let where = `step ${index + 1} "${s.title}" (line ${s.line})`
  const commands = s.fences.filter((f) => COMMAND_FENCES.has(f.info.split(/\s+/)[0]!.toLowerCase()))
  const meta = s.fences.filter((f) => /^ya?ml\s+step$/i.test(f.info))
  let id: string | undefined
  let checksRaw: unknown
  let timeoutMs = DEFAULT_STEP_TIMEOUT_MS
  if (meta.length !== 1) {
    p.add(where, 'yaml step', meta.length === 0 ? 'block missing: add a ```yaml step block with id and check' : `${meta.length} blocks; a step has exactly one`)
  } else {
    let doc: unknown
    try {
      doc = load(meta[0]!.body.join('\n'))
    } catch (e) {
      p.add(where, 'yaml step', `does not parse (block at line ${meta[0]!.line}): ${(e as {reason?: string}).reason ?? (e as Error).message}`)
    }
    if (doc !== undefined && !isObject(doc)) p.add(where, 'yaml step', `must be a mapping with id and check (block at line ${meta[0]!.line})`)
    if (isObject(doc)) {
      for (const k of Object.keys(doc)) if (!STEP_KEYS.has(k)) p.add(where, k, `unknown field (expected ${[...STEP_KEYS].join(', ')})`)
      if (typeof doc.id === 'string' && LAB_ID.test(doc.id)) {
        id = doc.id
        where = `step "${id}" (line ${s.line})`
      } else p.add(where, 'id', 'is required: lower-case letters, digits and "-", e.g. shift-90-10', doc.id)
      checksRaw = doc.check
      if (doc.timeout !== undefined) {
        if (typeof doc.timeout === 'number' && doc.timeout > 0 && doc.timeout <= MAX_TIMEOUT_S) timeoutMs = Math.round(doc.timeout * 1000)
        else p.add(where, 'timeout', `must be seconds, more than 0 and at most ${MAX_TIMEOUT_S}`, doc.timeout)
      }
    }
  }
  let command = ''
  if (commands.length !== 1) {
    p.add(where, 'command', commands.length === 0 ? 'missing: add a ```sh block with the command to type' : `${commands.length} \`\`\`sh blocks; a step runs exactly one command`)
  } else {
    const lines = commands[0]!.body.map((l) => l.trim()).filter((l) => l !== '')
    if (lines.length !== 1) p.add(where, 'command', `the \`\`\`sh block (line ${commands[0]!.line}) must hold exactly one command line, found ${lines.length}`)
    else if (lines[0]!.startsWith('$ ')) p.add(where, 'command', 'write the command without a "$ " prompt', lines[0])
    else command = lines[0]!
  }
  const drop = new Set<number>()
  for (const f of [...commands, ...meta]) for (let i = f.from; i <= f.to; i++) drop.add(i)
  const explanation = tidy(s.lines.filter((_, i) => !drop.has(i)))
  if (explanation === '') p.add(where, 'explanation', 'is empty: say what the step does and what to look for')
  const checks = parseChecks(checksRaw, where, command || undefined, p)
  if (id === undefined || command === '') return undefined
  return {id, title: s.title, explanation, command, checks, timeoutMs, line: s.line}
}

/** Parses and validates one lab file's text. Throws MESH_LAB_INVALID (exit 65). */
export function parseLab(text: string, file: string): Lab {
  const p = new Problems(file)
  const split = splitFrontMatter(text, p)
  p.throwIfAny()
  const {front, body, bodyFirstLine} = split!
  if (!isObject(front)) {
    p.add('', 'front matter', 'must be a YAML mapping with id, title, summary, minutes and setup')
    p.throwIfAny()
  }
  const fm = front as Record<string, unknown>
  for (const k of Object.keys(fm)) if (!FRONT_MATTER_KEYS.has(k)) p.add('', k, `unknown front matter field (expected ${[...FRONT_MATTER_KEYS].join(', ')})`)
  const id = typeof fm.id === 'string' ? fm.id : ''
  if (!LAB_ID.test(id)) p.add('', 'id', 'is required: lower-case letters, digits and "-", e.g. canary', fm.id)
  else if (labIdFromFile(file) !== id) p.add('', 'id', `"${id}" does not match the file name ${basename(file)} (expected NN-${id}.md)`, id)
  if (!nonEmptyString(fm.title)) p.add('', 'title', 'is required', fm.title)
  if (!nonEmptyString(fm.summary)) p.add('', 'summary', 'is required: one sentence on what the participant will see', fm.summary)
  if (!(Number.isInteger(fm.minutes) && (fm.minutes as number) > 0 && (fm.minutes as number) <= 240)) p.add('', 'minutes', 'must be a whole number of minutes, 1–240', fm.minutes)
  let setup: string[] = []
  if (fm.setup !== undefined) {
    if (Array.isArray(fm.setup) && fm.setup.every(nonEmptyString)) setup = fm.setup.map((s) => s.trim())
    else p.add('', 'setup', 'must be a list of commands', fm.setup)
  }
  const prerequisites = parsePrerequisites(fm.prerequisites, p)

  const parts = sections(body, bodyFirstLine)
  if (parts.sections.length === 0) p.add('', 'steps', 'none found: each step is a "## Title" section')
  const steps = parts.sections.map((s, i) => parseStep(s, i, p)).filter((s): s is Step => s !== undefined)
  const seen = new Map<string, number>()
  for (const s of steps) {
    if (seen.has(s.id)) p.add(`step "${s.id}" (line ${s.line})`, 'id', `duplicates the step at line ${seen.get(s.id)}`, s.id)
    else seen.set(s.id, s.line)
  }
  p.throwIfAny()
  const intro = tidy(parts.intro.filter((l, i) => !(i === parts.intro.findIndex((x) => x.trim() !== '') && /^#\s/.test(l))))
  return {id, title: (fm.title as string).trim(), summary: (fm.summary as string).trim(), minutes: fm.minutes as number, prerequisites, setup, intro, steps, file}
}

/** `02-canary.md` → `canary`; `canary.md` → `canary`. */
export function labIdFromFile(file: string): string {
  return basename(file)
    .replace(/\.md$/i, '')
    .replace(/^\d+-/, '')
}
