// Finds the commands the documentation shows, so a test can run every one of them
// (docs/adr/0140). Pure: no processes, no lab.
import {readFileSync, readdirSync} from 'node:fs'
import {join} from 'node:path'

export interface DocCommand {
  /** page path relative to the repository root, e.g. docs/canary.md */
  page: string
  /** 1-based line of the command (its first line when continued with `\`) */
  line: number
  /** the command as written, without the `$ ` prompt and the trailing comment */
  command: string
  /** the trailing comment, if any (without `#`) */
  comment?: string
  /** `sh` block (every line a command) or a transcript (`$ ` lines of a plain block) */
  source: 'sh' | 'transcript'
  /** from `# exit N`; undefined means 0 unless a rule says otherwise */
  expectExit?: number
  /** MESH_* codes named in the `# exit N …` comment: the output must contain each */
  expectCodes: string[]
  /** from `# docs-test: skip <reason>` */
  skip?: string
}

export interface DocPage {
  page: string
  commands: DocCommand[]
  /** fenced blocks seen at the top level (any language) */
  fences: number
}

const SCRIPT_LANGS = new Set(['sh', 'bash', 'shell', 'zsh'])
const TRANSCRIPT_LANGS = new Set(['', 'console', 'text', 'terminal'])

/** README.md, then docs/*.md in name order (not docs/adr/ or docs/internal/). */
export function docPages(root: string): string[] {
  const docs = readdirSync(join(root, 'docs'), {withFileTypes: true})
    .filter((d) => d.isFile() && d.name.endsWith('.md'))
    .map((d) => `docs/${d.name}`)
    .sort()
  return ['README.md', ...docs]
}

export function extractPage(root: string, page: string): DocPage {
  return extractFromMarkdown(page, readFileSync(join(root, page), 'utf8'))
}

/**
 * Commands in a Markdown text. Fences follow CommonMark: a block opened with N backticks (or
 * tildes) closes only at a fence of the same character at least N long, so the ```sh blocks
 * inside a ````markdown example are content, not commands.
 */
export function extractFromMarkdown(page: string, text: string): DocPage {
  const lines = text.split('\n')
  const commands: DocCommand[] = []
  let fences = 0
  let open: {char: string; len: number; lang: string} | undefined
  let pending: {start: number; text: string; source: DocCommand['source']} | undefined

  const flush = () => {
    if (pending) commands.push(parseCommandLine(page, pending.start, pending.text, pending.source))
    pending = undefined
  }

  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!
    const fence = /^ {0,3}(`{3,}|~{3,})(.*)$/.exec(raw)
    if (!open) {
      if (fence) {
        const info = fence[2]!.trim()
        if (fence[1]![0] === '`' && info.includes('`')) continue // not a fence (inline code)
        open = {char: fence[1]![0]!, len: fence[1]!.length, lang: info.split(/\s+/)[0]!.toLowerCase()}
        fences++
      }
      continue
    }
    if (fence && fence[1]![0] === open.char && fence[1]!.length >= open.len && fence[2]!.trim() === '') {
      flush()
      open = undefined
      continue
    }
    const script = SCRIPT_LANGS.has(open.lang)
    const transcript = TRANSCRIPT_LANGS.has(open.lang)
    if (!script && !transcript) continue
    const line = raw.replace(/\s+$/, '')
    if (pending) {
      // a continued command: this line belongs to it
      pending.text = pending.text.replace(/\s*\\$/, '') + ' ' + line.trim()
      if (!line.endsWith('\\')) flush()
      continue
    }
    const trimmed = line.trim()
    let body: string | undefined
    if (trimmed.startsWith('$ ')) body = trimmed.slice(2).trim()
    else if (script && trimmed !== '' && !trimmed.startsWith('#')) body = trimmed
    if (body === undefined || body === '') continue
    pending = {start: i + 1, text: body, source: script ? 'sh' : 'transcript'}
    if (!body.endsWith('\\')) flush()
  }
  flush()
  return {page, commands, fences}
}

/** Splits `cmd  # comment` at the first `#` outside quotes that starts a word. */
export function splitComment(text: string): {command: string; comment?: string} {
  let quote: string | undefined
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!
    if (quote) {
      if (ch === quote) quote = undefined
      else if (ch === '\\' && quote === '"') i++
      continue
    }
    if (ch === '\\') {
      i++
      continue
    }
    if (ch === "'" || ch === '"') quote = ch
    else if (ch === '#' && (i === 0 || /\s/.test(text[i - 1]!))) {
      return {command: text.slice(0, i).trim(), comment: text.slice(i + 1).trim()}
    }
  }
  return {command: text.trim()}
}

export function parseCommandLine(page: string, line: number, text: string, source: DocCommand['source']): DocCommand {
  const {command, comment} = splitComment(text)
  const out: DocCommand = {page, line, command, source, expectCodes: []}
  if (comment === undefined) return out
  out.comment = comment
  const skip = /^docs-test:\s*skip\b\s*(.*)$/i.exec(comment)
  if (skip) {
    out.skip = skip[1]!.trim()
    if (out.skip === '') throw new Error(`${page}:${line}: "# docs-test: skip" needs a reason`)
    return out
  }
  if (/^docs-test\b/i.test(comment)) throw new Error(`${page}:${line}: unknown docs-test directive "# ${comment}"`)
  const exit = /^exit\s+(\d+)\b(.*)$/i.exec(comment)
  if (exit) {
    out.expectExit = Number(exit[1])
    out.expectCodes = [...exit[2]!.matchAll(/\bMESH_[A-Z0-9_]+\b/g)].map((m) => m[0])
  }
  return out
}

/** `a && b` → ['a', 'b'], ignoring `&&` inside quotes. */
export function splitAnd(command: string): string[] {
  const parts: string[] = []
  let quote: string | undefined
  let cur = ''
  for (let i = 0; i < command.length; i++) {
    const ch = command[i]!
    if (quote) {
      if (ch === quote) quote = undefined
      cur += ch
      continue
    }
    if (ch === "'" || ch === '"') quote = ch
    if (ch === '&' && command[i + 1] === '&') {
      parts.push(cur.trim())
      cur = ''
      i++
      continue
    }
    cur += ch
  }
  parts.push(cur.trim())
  return parts.filter((p) => p !== '')
}
