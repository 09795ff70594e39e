// docs/errors.md lists every MESH_* code the source can emit, and nothing else; where the exit
// code is visible in the source, the row states it (issue 8).
import {readFileSync, readdirSync} from 'node:fs'
import {join, relative} from 'node:path'
import {describe, expect, it} from 'vitest'
import {EXIT} from '../../../src/lib/errors.js'

const root = join(import.meta.dirname, '..', '..', '..')

function tsFiles(dir: string): string[] {
  return readdirSync(dir, {withFileTypes: true}).flatMap((d) =>
    d.isDirectory() ? tsFiles(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : [],
  )
}

const sources = tsFiles(join(root, 'src')).map((f) => ({file: relative(root, f), text: readFileSync(f, 'utf8')}))
const byFile = (name: string) => sources.find((s) => s.file === name)!.text

/** Names read from the environment (MESH_HOME, MESH_ISTIOCTL …): not error codes. */
function envNames(): Set<string> {
  const out = new Set<string>()
  const re = /\benv\.(MESH_[A-Z0-9_]+)|\benv\[['"](MESH_[A-Z0-9_]+)['"]\]|\benv:\s*'(MESH_[A-Z0-9_]+)'|_ENV\s*=\s*'(MESH_[A-Z0-9_]+)'/g
  for (const s of sources) for (const m of s.text.matchAll(re)) out.add((m[1] ?? m[2] ?? m[3] ?? m[4])!)
  return out
}

const snake = (camel: string) => camel.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()
const flagCode = (field: string) => `MESH_INVALID_${field.replace(/[^a-z0-9]+/gi, '_').toUpperCase()}`

/**
 * Codes built at run time (`MESH_INVALID_${field}`): resolved from the call sites of the three
 * helpers that build them. A new kind of dynamic code fails the test until it is resolved here.
 */
function dynamicCodes(): Map<string, string[]> {
  const sites = sources.flatMap((s) => [...s.text.matchAll(/MESH_[A-Z0-9_]*\$\{/g)].map(() => s.file))
  expect(sites.sort(), 'places that build a MESH_* code at run time').toEqual(['src/checks/load.ts', 'src/verify/common.ts', 'src/verify/common.ts', 'src/verify/traffic.ts'])
  const out = new Map<string, string[]>()
  const add = (code: string, where: string) => out.set(code, [...(out.get(code) ?? []), where])
  // src/verify/common.ts: numberInput / positiveInt (and positiveSeconds, which uses them) with a flag name
  for (const s of sources) {
    for (const m of s.text.matchAll(/\b(?:numberInput|positiveInt|positiveSeconds)\((?:[^'\n()]|\([^()\n]*\))*?'([^'\n]+)'/g)) add(flagCode(m[1]!), s.file)
  }
  // src/verify/traffic.ts: pos(value, 'flag', integer)
  for (const m of byFile('src/verify/traffic.ts').matchAll(/\bpos\([^'\n]*'([a-z-]+)'/g)) add(`MESH_INVALID_${m[1]!.toUpperCase()}`, 'src/verify/traffic.ts')
  // src/checks/load.ts: positive('optionName', …)
  for (const m of byFile('src/checks/load.ts').matchAll(/\bpositive\('([A-Za-z]+)'/g)) add(`MESH_INVALID_${snake(m[1]!)}`, 'src/checks/load.ts')
  return out
}

function codesInSource(): Set<string> {
  const env = envNames()
  const out = new Set<string>()
  for (const s of sources) {
    for (const m of s.text.matchAll(/['"`](MESH_[A-Z0-9_]+)['"`]|\[(MESH_[A-Z0-9_]+)\]/g)) {
      const code = (m[1] ?? m[2])!
      if (!env.has(code)) out.add(code)
    }
  }
  for (const code of dynamicCodes().keys()) out.add(code)
  out.delete('MESH_CODES')
  return out
}

interface Row {
  code: string
  exit: string
  line: number
}

function catalogue(): Row[] {
  const rows: Row[] = []
  readFileSync(join(root, 'docs/errors.md'), 'utf8')
    .split('\n')
    .forEach((l, i) => {
      const m = /^\| `(MESH_[A-Z0-9_]+)` \| ([^|]+) \|/.exec(l)
      if (m) rows.push({code: m[1]!, exit: m[2]!.trim(), line: i + 1})
    })
  return rows
}

/** End of a call whose `(` is at `open`: skips strings and template literals. */
function callEnd(text: string, open: number): number {
  let depth = 0
  for (let i = open; i < text.length; i++) {
    const ch = text[i]!
    if (ch === "'" || ch === '"') {
      for (i++; i < text.length && text[i] !== ch; i++) if (text[i] === '\\') i++
    } else if (ch === '`') {
      for (i++; i < text.length && text[i] !== '`'; i++) {
        if (text[i] === '\\') i++
        else if (text[i] === '$' && text[i + 1] === '{') i = callEnd(text, i + 1) // skip the ${…} expression
      }
    } else if (ch === '(' || ch === '{' || ch === '[') depth++
    else if (ch === ')' || ch === '}' || ch === ']') {
      depth--
      if (depth === 0) return i
    }
  }
  return text.length
}

const EXIT_BY_NAME = EXIT as Record<string, number>

/** (code, exit) pairs where the source states the exit code plainly. */
function staticExits(): Array<{code: string; exit: number; file: string}> {
  const out: Array<{code: string; exit: number; file: string}> = []
  // the wrappers whose exit code the test relies on
  expect(byFile('src/mesh/lab.ts')).toMatch(/export const fail = \(code: MeshCode, message: string, field\?: string\): never => \{\s*throw invalid\(/)
  expect(byFile('src/local/pki/ca.ts')).toMatch(/const caError = [^\n]*\n\s*new MeshError\(code, message, \{suggestion, exit: EXIT\.internal/)
  const helper: Record<string, number> = {invalid: EXIT.invalidInput, unavailable: EXIT.unavailable, usage: EXIT.usage, fail: EXIT.invalidInput, caError: EXIT.internal}
  for (const s of sources) {
    for (const m of s.text.matchAll(/\b(invalid|unavailable|usage|fail|caError)\(\s*'(MESH_[A-Z0-9_]+)'/g)) out.push({code: m[2]!, exit: helper[m[1]!]!, file: s.file})
    for (const m of s.text.matchAll(/new MeshError\(\s*'(MESH_[A-Z0-9_]+)'/g)) {
      const call = s.text.slice(m.index!, callEnd(s.text, m.index! + 'new MeshError'.length) + 1)
      const exitExpr = /\bexit:\s*([^,}]+)/.exec(call)
      if (!exitExpr) out.push({code: m[1]!, exit: EXIT.invalidInput, file: s.file}) // MeshError's default
      else for (const e of exitExpr[1]!.matchAll(/EXIT\.(\w+)/g)) out.push({code: m[1]!, exit: EXIT_BY_NAME[e[1]!]!, file: s.file})
    }
    for (const m of s.text.matchAll(/\{code:\s*'(MESH_[A-Z0-9_]+)',\s*message:|meshWarn\('(MESH_[A-Z0-9_]+)'/g)) out.push({code: (m[1] ?? m[2])!, exit: 0, file: s.file})
  }
  for (const code of dynamicCodes().keys()) out.push({code, exit: EXIT.invalidInput, file: '(dynamic)'})
  return out
}

describe('docs/errors.md, the error catalogue', () => {
  const rows = catalogue()
  const documented = new Set(rows.map((r) => r.code))

  it('has one row per code', () => {
    const seen = new Map<string, number>()
    const dups = rows.filter((r) => (seen.has(r.code) ? true : (seen.set(r.code, r.line), false))).map((r) => `${r.code} (lines ${seen.get(r.code)} and ${r.line})`)
    expect(dups).toEqual([])
    expect(rows.length).toBeGreaterThan(150)
  })

  it('lists every code the source can emit', () => {
    const used = codesInSource()
    expect(used.size).toBeGreaterThan(150)
    expect([...used].filter((c) => !documented.has(c)).sort(), 'codes used in src/ but missing from docs/errors.md').toEqual([])
  })

  it('lists no code the source does not use', () => {
    const used = codesInSource()
    expect([...documented].filter((c) => !used.has(c)).sort(), 'rows in docs/errors.md for codes src/ never emits').toEqual([])
  })

  it('states the exit code the source gives each code', () => {
    const exits = staticExits()
    expect(exits.filter((e) => e.exit === EXIT.unavailable).length).toBeGreaterThan(20)
    const byCode = new Map(rows.map((r) => [r.code, r]))
    const wrong: string[] = []
    for (const e of exits) {
      const row = byCode.get(e.code)
      if (!row) continue // reported by the completeness test
      const stated = [...row.exit.matchAll(/\d+/g)].map((m) => Number(m[0]))
      const ok = e.exit === 0 ? /warning/.test(row.exit) : stated.includes(e.exit)
      if (!ok) wrong.push(`${e.code}: ${e.file} gives ${e.exit === 0 ? 'a warning' : `exit ${e.exit}`}, docs/errors.md:${row.line} says "${row.exit}"`)
    }
    expect([...new Set(wrong)]).toEqual([])
  })

  it('states only exit codes mesh has', () => {
    const valid = new Set(Object.values(EXIT))
    const bad = rows.filter((r) => [...r.exit.matchAll(/\d+/g)].some((m) => !valid.has(Number(m[0]) as never)))
    expect(bad.map((r) => `${r.code}: ${r.exit}`)).toEqual([])
  })
})
