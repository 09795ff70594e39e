import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {docPages, extractFromMarkdown, extractPage, splitAnd, splitComment} from '../../integration/docs/extract.js'
import {planCommand, realContextOf} from '../../integration/docs/runner.js'

const root = join(import.meta.dirname, '..', '..', '..')
const md = (...lines: string[]) => lines.join('\n')

describe('extracting documented commands', () => {
  it('takes every line of a sh block, with or without a prompt, and skips comment lines', () => {
    const p = extractFromMarkdown('x.md', md('text', '```sh', '# a comment', '$ mesh lab up', 'mesh canary shift 90/10   # weights', '', '```', 'mesh not-in-a-block'))
    expect(p.commands.map((c) => [c.line, c.command, c.source])).toEqual([
      [4, 'mesh lab up', 'sh'],
      [5, 'mesh canary shift 90/10', 'sh'],
    ])
    expect(p.commands[1]!.comment).toBe('weights')
  })

  it('takes only `$ ` lines of a plain block: the rest is sample output', () => {
    const p = extractFromMarkdown('x.md', md('```', '$ mesh call --from legacy', '000 connection reset', 'mesh lab up', '```'))
    expect(p.commands.map((c) => [c.command, c.source])).toEqual([['mesh call --from legacy', 'transcript']])
  })

  it('ignores yaml, json and markdown blocks, and sh blocks nested in a longer fence', () => {
    const p = extractFromMarkdown('x.md', md('````markdown', '```sh', 'mesh canary shift 50/50', '```', '````', '```yaml', 'kind: Pod', '```', '```sh', 'mesh lab status', '```'))
    expect(p.commands.map((c) => c.command)).toEqual(['mesh lab status'])
    expect(p.fences).toBe(3)
  })

  it('reads `# exit N` with the codes it names, and `# docs-test: skip <reason>`', () => {
    const p = extractFromMarkdown('x.md', md('```sh', 'mesh canary shift 90/20   # exit 65, MESH_WEIGHTS_SUM', 'npm ci   # docs-test: skip needs the network', 'mesh verify   # exit 2 when the budget runs out', '```'))
    expect(p.commands.map((c) => [c.expectExit, c.expectCodes, c.skip])).toEqual([
      [65, ['MESH_WEIGHTS_SUM'], undefined],
      [undefined, [], 'needs the network'],
      [2, [], undefined],
    ])
    expect(() => extractFromMarkdown('x.md', md('```sh', 'npm ci  # docs-test: skip', '```'))).toThrow(/needs a reason/)
    expect(() => extractFromMarkdown('x.md', md('```sh', 'npm ci  # docs-test: maybe', '```'))).toThrow(/unknown docs-test directive/)
  })

  it('joins lines continued with a backslash', () => {
    const p = extractFromMarkdown('x.md', md('```sh', 'mesh verify split \\', '  --expect 90/10 \\', '  --budget 3000   # exit 0', 'mesh lab status', '```'))
    expect(p.commands.map((c) => [c.line, c.command])).toEqual([
      [2, 'mesh verify split --expect 90/10 --budget 3000'],
      [5, 'mesh lab status'],
    ])
  })

  it('does not take a # inside quotes or inside a word for a comment', () => {
    expect(splitComment(`kubectl get pods -o jsonpath='{.items[#]}' # pods`)).toEqual({command: `kubectl get pods -o jsonpath='{.items[#]}'`, comment: 'pods'})
    expect(splitComment('curl http://x/#frag')).toEqual({command: 'curl http://x/#frag'})
    expect(splitAnd(`npm ci && npm run demo`)).toEqual(['npm ci', 'npm run demo'])
    expect(splitAnd(`echo 'a && b' && mesh lab up`)).toEqual([`echo 'a && b'`, 'mesh lab up'])
  })

  it('finds README.md and docs/*.md, not ADRs or internal notes', () => {
    const pages = docPages(root)
    expect(pages[0]).toBe('README.md')
    expect(pages).toContain('docs/canary.md')
    expect(pages.every((p) => p === 'README.md' || /^docs\/[^/]+\.md$/.test(p))).toBe(true)
  })

  it('finds the README quick start', () => {
    const cmds = extractPage(root, 'README.md').commands.map((c) => c.command)
    expect(cmds).toContain('npm ci && npm run demo')
    expect(cmds).toContain('./bin/run.js canary shift 90/10')
  })
})

describe('planning a documented command', () => {
  const doc = (command: string, expectExit?: number) => ({page: 'x.md', line: 1, command, source: 'sh' as const, expectCodes: [], ...(expectExit === undefined ? {} : {expectExit})})

  it('runs npm run demo without its build and records npm ci as checked, not run', () => {
    const p = planCommand(doc('npm ci && npm run demo'), root)
    expect(p.shell).toMatch(/^MESH_DEMO_SKIP_BUILD=1 node '.*scripts\/demo\.mjs'$/)
    expect(p.notRun.map((n) => n.part)).toEqual(['npm ci'])
    expect(p.notRun[0]!.verify(root)).toBeUndefined() // .ci/run really runs npm ci
  })

  it('fails the check behind a toolchain command that is not run when CI no longer runs it', () => {
    const fake = mkdtempSync(join(tmpdir(), 'mesh-docs-unit-'))
    try {
      mkdirSync(join(fake, '.ci'))
      writeFileSync(join(fake, '.ci', 'run'), '#!/bin/sh\nnpm ci --no-audit\n')
      const p = planCommand(doc('npm ci && npm test'), root)
      expect(p.shell).toBeUndefined()
      expect(p.notRun.map((n) => [n.part, n.verify(fake)])).toEqual([
        ['npm ci', undefined],
        ['npm test', '.ci/run does not run ^npm test\\b'],
      ])
      expect(p.notRun[1]!.verify(root)).toBeUndefined()
    } finally {
      rmSync(fake, {recursive: true, force: true})
    }
  })

  it('runs ./bin/run.js as mesh and bench scripts from the package', () => {
    expect(planCommand(doc('./bin/run.js lab up'), root).shell).toBe('mesh lab up')
    expect(planCommand(doc('node bench/split-simulation.mjs --runs 10'), root).shell).toMatch(/^node '\/.*\/bench\/split-simulation\.mjs' --runs 10$/)
  })

  it('expects a real-cluster command to stop at MESH_CONTEXT_NOT_FOUND unless the page says otherwise', () => {
    expect(realContextOf('mesh lab up --context kind-mesh --yes')).toBe('kind-mesh')
    expect(realContextOf('mesh lab status --context mesh-local')).toBeUndefined()
    const p = planCommand(doc('mesh lab up --context kind-mesh --yes'), root)
    expect([p.expectExit, p.expectCodes]).toEqual([65, ['MESH_CONTEXT_NOT_FOUND']])
    expect(planCommand(doc('mesh lab up --context prod --yes', 0), root).expectExit).toBe(0)
  })
})
