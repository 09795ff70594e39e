// Every command shown in README.md and docs/*.md runs here, page by page, against one
// embedded lab in a temporary home, so the documentation cannot drift from the tool
// (issue 8, docs/adr/0140). Rules for pages:
//   ```sh blocks: every line is a command (`$ ` optional, `#` lines are comments);
//   plain ``` blocks: `$ ` lines are commands, the rest is sample output (not compared);
//   `# exit N` after a command: the exit code it must have (default 0); MESH_* codes named in
//   that comment must appear in its output;
//   `# docs-test: skip <reason>`: not run, reason recorded — only for what cannot run here.
// Before each page the lab is reset (and brought up again if a page took it down).
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {docPages, extractPage} from './extract.js'
import {createSandbox, planCommand, runShell, tail, type Sandbox} from './runner.js'

const root = join(import.meta.dirname, '..', '..', '..')
const COMMAND_TIMEOUT_MS = 150_000

let dir: string
let sb: Sandbox
const summary: Array<{page: string; executed: number; notRun: number; skipped: number; ms: number}> = []

const mesh = (args: string, timeoutMs = 120_000) => runShell(sb, `mesh ${args}`, timeoutMs)

async function resetLab(): Promise<void> {
  // --force-conflicts: whatever a page changed with kubectl goes back to the baseline too
  let r = await mesh('lab reset --force-conflicts')
  if (r.exitCode === 69) {
    // a page took the lab down (e.g. README's `lab down`): bring it back first
    const up = await mesh('lab up')
    expect(up.exitCode, `lab up failed:\n${tail(up.stderr)}`).toBe(0)
    r = await mesh('lab reset --force-conflicts')
  }
  expect(r.exitCode, `lab reset failed:\n${tail(r.stderr)}`).toBe(0)
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mesh-docs-'))
  sb = createSandbox(root, dir)
  const up = await mesh('lab up')
  expect(up.exitCode, `lab up failed:\n${tail(up.stdout)}\n${tail(up.stderr)}`).toBe(0)
}, 180_000)

afterAll(async () => {
  if (sb) await mesh('lab down --purge', 60_000).catch(() => undefined)
  if (summary.length) {
    const lines = summary.map((s) => `  ${s.page.padEnd(26)} ${String(s.executed).padStart(3)} run  ${String(s.notRun).padStart(2)} checked-not-run  ${String(s.skipped).padStart(2)} skipped  ${(s.ms / 1000).toFixed(1)} s`)
    process.stderr.write(`docs commands per page:\n${lines.join('\n')}\n`)
  }
  if (dir) rmSync(dir, {recursive: true, force: true})
}, 90_000)

describe('documented commands', () => {
  const pages = docPages(root)

  it('covers README.md and every page of docs/', () => {
    expect(pages[0]).toBe('README.md')
    expect(pages).toContain('docs/exit-codes.md')
    expect(pages).toContain('docs/troubleshooting.md')
    expect(pages.some((p) => p.startsWith('docs/adr/') || p.startsWith('docs/internal/'))).toBe(false)
  })

  // DOCS_TEST_PAGES=docs/a.md,docs/b.md runs only those pages (while writing a page)
  const only = process.env.DOCS_TEST_PAGES?.split(',').map((p) => p.trim()).filter(Boolean)
  for (const page of pages) {
    if (only && !only.includes(page)) continue
    it(page, async () => {
      const doc = extractPage(root, page)
      const started = performance.now()
      const plans = doc.commands.map((c) => planCommand(c, root))
      // pages that only run scripts of their own (benchmarks, the simulation) leave the lab alone
      if (plans.some((p) => p.shell !== undefined && /\b(mesh|kubectl)\b|demo\.mjs/.test(p.shell))) await resetLab()
      const failures: string[] = []
      let executed = 0
      let notRun = 0
      let skipped = 0
      for (const [i, c] of doc.commands.entries()) {
        const plan = plans[i]!
        const where = `${page}:${c.line}  ${c.command}`
        if (c.skip) {
          skipped++
          process.stderr.write(`  skip ${where} — ${c.skip}\n`)
          continue
        }
        for (const n of plan.notRun) {
          notRun++
          const problem = n.verify(root)
          if (problem) failures.push(`${where}\n    "${n.part}" is not run here (${n.reason}), but: ${problem}`)
        }
        if (plan.shell === undefined) continue
        executed++
        const r = await runShell(sb, plan.shell, COMMAND_TIMEOUT_MS)
        if (process.env.DOCS_TEST_VERBOSE) process.stderr.write(`  ${String(r.exitCode).padStart(3)} ${(r.ms / 1000).toFixed(1).padStart(5)} s  ${where}\n`)
        const out = r.stdout + '\n' + r.stderr
        const missing = plan.expectCodes.filter((code) => !out.includes(code))
        if (r.exitCode !== plan.expectExit || missing.length > 0 || r.timedOut) {
          failures.push(
            `${where}\n    ran: ${plan.shell}\n    exit ${r.exitCode}${r.timedOut ? ' (timed out)' : ''}, expected ${plan.expectExit}` +
              (missing.length ? `; output lacks ${missing.join(', ')}` : '') +
              (plan.notes.length ? `\n    (${plan.notes.join('; ')})` : '') +
              `\n    stdout:\n${tail(r.stdout)}\n    stderr:\n${tail(r.stderr)}`,
          )
        }
      }
      summary.push({page, executed, notRun, skipped, ms: performance.now() - started})
      expect(failures.length, `${failures.length} documented command(s) failed:\n\n${failures.join('\n\n')}\n`).toBe(0)
      expect(executed, `${page} shows no command the test could run`).toBeGreaterThan(0)
    }, 300_000)
  }
})
