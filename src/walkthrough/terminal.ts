// The terminal edge of the walkthrough: a small plain renderer and single-key input from a
// TTY in raw mode. Everything writes through an injected `write`, so nothing here reaches for
// process.stdout on its own.
import {emitKeypressEvents} from 'node:readline'
import type {ChalkInstance} from 'chalk'
import type {StepReport} from './batch.js'
import type {KeyQueue, WalkthroughRenderer} from './interactive.js'
import type {LabProgress, ResumeReason, StepRecord} from './progress.js'
import type {Lab, StepVerdict} from './types.js'

// ---------------------------------------------------------------- markdown → terminal text

type Style = 'plain' | 'code' | 'bold'
interface Word {
  text: string
  style: Style
  /** glued to the previous word (no space), e.g. punctuation after a code span */
  glue: boolean
}

function inlineWords(text: string): Word[] {
  const words: Word[] = []
  // links read as "text (url)"; emphasis markers other than ** are left alone
  const t = text.replace(/\[([^\]]+)\]\(([^)]+)\)/g, '$1 ($2)')
  const re = /`([^`]+)`|\*\*([^*]+)\*\*/g
  let last = 0
  const pushPlain = (s: string, glueFirst: boolean) => {
    const parts = s.split(/(\s+)/)
    let glue = glueFirst
    for (const p of parts) {
      if (p === '') continue
      if (/^\s+$/.test(p)) {
        glue = false
        continue
      }
      words.push({text: p, style: 'plain', glue})
      glue = true
    }
  }
  let glueNext = false
  for (const m of t.matchAll(re)) {
    const before = t.slice(last, m.index)
    pushPlain(before, glueNext)
    const glue = before === '' ? glueNext : !/\s$/.test(before)
    const style: Style = m[1] !== undefined ? 'code' : 'bold'
    const inner = (m[1] ?? m[2])!.split(/\s+/).filter(Boolean)
    inner.forEach((w, i) => words.push({text: w, style, glue: i === 0 ? glue && words.length > 0 : false}))
    last = m.index! + m[0].length
    glueNext = true
  }
  pushPlain(t.slice(last), glueNext && last > 0)
  return words
}

function wrapWords(words: Word[], width: number, c: ChalkInstance, firstIndent: string, indent: string): string[] {
  const paint = (w: Word) => (w.style === 'code' ? c.cyan(w.text) : w.style === 'bold' ? c.bold(w.text) : w.text)
  // words glued together (e.g. "(" + a code span + ")") wrap as one unit
  const units: Array<{text: string; len: number}> = []
  for (const w of words) {
    const last = units.at(-1)
    if (w.glue && last) {
      last.text += paint(w)
      last.len += w.text.length
    } else units.push({text: paint(w), len: w.text.length})
  }
  const lines: string[] = []
  let line = firstIndent
  let visible = firstIndent.length
  let empty = true
  for (const u of units) {
    if (!empty && visible + 1 + u.len > width) {
      lines.push(line)
      line = indent + u.text
      visible = indent.length + u.len
      continue
    }
    line += (empty ? '' : ' ') + u.text
    visible += (empty ? 0 : 1) + u.len
    empty = false
  }
  if (!empty || lines.length === 0) lines.push(line)
  return lines
}

/** A small Markdown subset for the terminal: paragraphs, lists, code spans and blocks, bold. */
export function formatMarkdown(md: string, width: number, c: ChalkInstance): string {
  const out: string[] = []
  const lines = md.split('\n')
  let para: string[] = []
  const flush = () => {
    if (para.length === 0) return
    const text = para.join(' ')
    const item = /^(\s*)([-*]|\d+\.)\s+(.*)$/.exec(para[0]!)
    if (item) {
      const bullet = item[2] === '*' ? '-' : item[2]!
      const lead = `  ${bullet} `
      out.push(...wrapWords(inlineWords([item[3]!, ...para.slice(1)].join(' ')), width, c, lead, ' '.repeat(lead.length)))
    } else if (/^#{1,6}\s/.test(text)) out.push(c.bold(text.replace(/^#+\s*/, '')))
    else out.push(...wrapWords(inlineWords(text), width, c, '', ''))
    para = []
  }
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!
    const fence = /^\s*(`{3,}|~{3,})/.exec(line)
    if (fence) {
      flush()
      const marker = fence[1]!
      for (i++; i < lines.length && !lines[i]!.trim().startsWith(marker); i++) out.push(c.dim(`    ${lines[i]}`))
      continue
    }
    if (line.trim() === '') {
      flush()
      if (out.length > 0 && out.at(-1) !== '') out.push('')
      continue
    }
    // a new list item starts a new block
    if (para.length > 0 && /^\s*([-*]|\d+\.)\s+/.test(line)) flush()
    para.push(line.trim())
  }
  flush()
  while (out.at(-1) === '') out.pop()
  return out.join('\n')
}

// ---------------------------------------------------------------- renderer

const CLEAR = '\u001B[2J\u001B[3J\u001B[H'
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`

export interface TerminalRendererOptions {
  write: (s: string) => void
  columns: number
  chalk: ChalkInstance
  /** clear the screen for each step (on a terminal) */
  clear: boolean
}

const resumeText = (lab: Lab, start: {index: number; reason: ResumeReason}): string | undefined => {
  const n = lab.steps.length
  const title = lab.steps[start.index]?.title ?? ''
  switch (start.reason) {
    case 'resumed':
      return `Resuming at step ${start.index + 1}/${n} (${title}): you stopped here last time. Run with --reset to start over.`
    case 'completed-before':
      return `You completed this lab before; starting again at step 1/${n}.`
    case 'lab-changed':
      return `This lab changed since your last visit; resuming at step ${start.index + 1}/${n} (${title}).`
    default:
      return undefined
  }
}

const recordText: Record<StepRecord['status'], string> = {pass: 'passed last time', fail: 'failed last time', skipped: 'skipped last time'}

export class TerminalRenderer implements WalkthroughRenderer {
  private banner: string[] = []
  private notes: string[] = []
  private lineStart = true
  private readonly width: number

  constructor(private readonly o: TerminalRendererOptions) {
    this.width = Math.max(40, Math.min(o.columns, 100) - 2)
  }

  private line(s = ''): void {
    this.o.write(s + '\n')
  }

  private keys(parts: Array<[string, string]>): void {
    const c = this.o.chalk
    this.line(c.dim(parts.map(([k, what]) => `${c.bold(k)} ${what}`).join('  ·  ')))
  }

  intro(lab: Lab, start: {index: number; reason: ResumeReason}): void {
    const c = this.o.chalk
    this.banner = [c.bold(lab.title), c.dim(`${lab.summary} (about ${lab.minutes} min, ${lab.steps.length} steps)`)]
    const resume = resumeText(lab, start)
    if (resume) this.banner.push(c.yellow(resume))
    for (const n of this.notes) this.banner.push(c.yellow(n))
    this.notes = []
    if (start.index === 0 && lab.intro) this.banner.push('', formatMarkdown(lab.intro, this.width, c))
  }

  /** A warning shown above the first step (e.g. an unmet prerequisite). */
  warn(text: string): void {
    this.notes.push(text)
  }

  step(lab: Lab, index: number, record: StepRecord | undefined): void {
    const c = this.o.chalk
    const step = lab.steps[index]!
    if (this.o.clear) this.o.write(CLEAR)
    if (this.banner.length > 0) {
      for (const b of this.banner) this.line(b)
      this.line()
      this.banner = []
    } else this.line(c.dim(lab.title))
    this.line(c.bold(`Step ${index + 1}/${lab.steps.length} · ${step.title}`) + (record ? c.dim(`  (${recordText[record.status]})`) : ''))
    this.line()
    this.line(formatMarkdown(step.explanation, this.width, c))
    this.line()
    this.line(`  ${c.cyan('$')} ${c.bold(step.command)}`)
    this.line()
    this.keys([
      ['Enter', 'run it'],
      ['s', 'skip'],
      ['b', 'back'],
      ['q', 'quit'],
    ])
  }

  running(lab: Lab, index: number): void {
    this.line()
    this.line(this.o.chalk.dim(`Running step ${index + 1}…  (Ctrl-C stops it)`))
    this.lineStart = true
  }

  output(chunk: string, _stream: 'stdout' | 'stderr'): void {
    const gutter = this.o.chalk.dim('  │ ')
    let s = ''
    for (const ch of chunk.replace(/\r\n/g, '\n')) {
      if (this.lineStart && ch !== '\n') s += gutter
      else if (this.lineStart) s += gutter.trimEnd()
      s += ch
      this.lineStart = ch === '\n'
    }
    this.o.write(s)
  }

  checkRun(command: string): void {
    this.endOutput()
    this.line(this.o.chalk.dim(`  checking with: ${command}`))
    this.lineStart = true
  }

  private endOutput(): void {
    if (!this.lineStart) this.o.write('\n')
    this.lineStart = true
  }

  verdict(lab: Lab, index: number, v: StepVerdict): void {
    const c = this.o.chalk
    this.endOutput()
    this.line()
    const last = index === lab.steps.length - 1
    if (v.status === 'pass') {
      this.line(`${c.green('✔')} ${c.bold(`Step ${index + 1} passed`)} ${c.dim(`(${seconds(v.durationMs)})`)}  ${c.dim(v.message)}`)
      this.line()
      this.keys([
        ['Enter', last ? 'finish' : 'next step'],
        ['r', 'run again'],
        ['b', 'back'],
        ['q', 'quit'],
      ])
    } else {
      this.line(`${c.red('×')} ${c.bold(`Step ${index + 1} failed`)} ${c.dim(`(${seconds(v.durationMs)})`)}`)
      this.line(`  ${v.message}`)
      this.line()
      this.keys([
        ['Enter', 'run again'],
        ['s', 'skip'],
        ['b', 'back'],
        ['q', 'quit'],
      ])
    }
  }

  notice(text: string): void {
    this.line(this.o.chalk.yellow(text))
  }

  done(lab: Lab, p: LabProgress): void {
    const c = this.o.chalk
    const n = (s: StepRecord['status']) => lab.steps.filter((x) => p.steps[x.id]?.status === s).length
    this.line()
    this.line(`${c.green('✔')} ${c.bold(`Lab complete: ${lab.title}`)}  ${c.dim(`${n('pass')} passed, ${n('skipped')} skipped, ${n('fail')} failed`)}`)
  }

  quit(lab: Lab, p: LabProgress): void {
    this.endOutput()
    this.line()
    if (p.completed) this.line(`Progress saved: lab complete. \`mesh lab walkthrough ${lab.id}\` starts it again.`)
    else {
      const i = Math.min(p.index, lab.steps.length - 1)
      this.line(`Progress saved. \`mesh lab walkthrough ${lab.id}\` resumes at step ${i + 1}/${lab.steps.length} (${lab.steps[i]!.title}).`)
    }
  }
}

/** One line per step for unattended runs: `✔ 2/5 shift-90-10  Send 10% to v2 (3.1s)`. */
export function stepLine(s: StepReport, total: number, c: ChalkInstance): string {
  const mark = s.status === 'pass' ? c.green('✔') : s.status === 'fail' ? c.red('×') : c.gray('–')
  const time = s.status === 'pass' || s.status === 'fail' ? ` ${c.dim(`(${seconds(s.durationMs)})`)}` : ''
  const head = `${mark} ${s.number}/${total} ${s.id}  ${s.title}${time}`
  return s.status === 'fail' ? `${head}\n    ${s.message}` : head
}

/** Single keys from a terminal in raw mode into `queue`; returns the function that restores it. */
export function attachKeys(stdin: NodeJS.ReadStream, queue: KeyQueue): () => void {
  emitKeypressEvents(stdin)
  const raw = stdin.isTTY === true
  if (raw) stdin.setRawMode(true)
  stdin.resume()
  const onKey = (str: string | undefined, key: {name?: string; sequence?: string; ctrl?: boolean; meta?: boolean} | undefined) =>
    queue.push(key ?? {sequence: str})
  stdin.on('keypress', onKey)
  return () => {
    stdin.off('keypress', onKey)
    if (raw) stdin.setRawMode(false)
    stdin.pause()
  }
}
