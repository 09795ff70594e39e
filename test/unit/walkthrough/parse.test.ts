import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {MeshError} from '../../../src/lib/errors.js'
import {loadCatalog, loadLab, parseLab, stepIndex} from '../../../src/walkthrough/index.js'

const FM = `---
id: demo
title: Demo
summary: A lab used by the parser tests.
minutes: 3
setup:
  - mesh lab reset
---
`

const step = (title: string, command: string, meta: string, extra = 'Explain it.') => `
## ${title}

${extra}

\`\`\`sh
${command}
\`\`\`

\`\`\`yaml step
${meta}
\`\`\`
`

function invalid(text: string, file = '/labs/01-demo.md'): MeshError {
  try {
    parseLab(text, file)
  } catch (e) {
    expect(e).toBeInstanceOf(MeshError)
    const err = e as MeshError
    expect(err.code).toBe('MESH_LAB_INVALID')
    expect(err.exit).toBe(65)
    expect(err.message).toContain('01-demo.md')
    return err
  }
  throw new Error('expected MESH_LAB_INVALID')
}

describe('parseLab', () => {
  it('reads metadata, intro, steps, commands, explanations and checks', () => {
    const text = `${FM}
# Demo

Intro paragraph.
${step('First', 'mesh canary shift 90/10', 'id: shift\ncheck:\n  - exitCode: 0\n  - run: mesh verify split --expect 90/10', 'Shift it.\n\n```text\n## not a heading inside a fence\n```')}
${step('Second', 'mesh call /hello --from ingress --json', 'id: call\ntimeout: 5\ncheck:\n  json: {path: result.status, equals: 200}\n  stdoutContains: v1')}`
    const lab = parseLab(text, '/labs/01-demo.md')
    expect(lab).toMatchObject({id: 'demo', title: 'Demo', minutes: 3, setup: ['mesh lab reset'], intro: 'Intro paragraph.'})
    expect(lab.steps.map((s) => s.id)).toEqual(['shift', 'call'])
    const [a, b] = lab.steps
    expect(a!.command).toBe('mesh canary shift 90/10')
    // other fences stay in the explanation; the command and step blocks do not
    expect(a!.explanation).toContain('## not a heading inside a fence')
    expect(a!.explanation).not.toContain('yaml step')
    expect(a!.explanation).not.toContain('mesh canary shift')
    expect(a!.checks).toEqual([{exitCode: 0}, {run: 'mesh verify split --expect 90/10', exitCode: 0}])
    expect(a!.timeoutMs).toBe(120_000)
    expect(b!.timeoutMs).toBe(5000)
    expect(b!.checks).toEqual([{json: [{path: 'result.status', equals: 200}], stdoutContains: ['v1']}])
  })

  it('a verifying command alone means it must exit 0', () => {
    const lab = parseLab(FM + step('S', 'true', 'id: s\ncheck: {run: "true"}'), '/x/demo.md')
    expect(lab.steps[0]!.checks).toEqual([{run: 'true', exitCode: 0}])
  })

  it('reads string and checked prerequisites', () => {
    const fm = FM.replace('setup:', 'prerequisites:\n  - A terminal\n  - title: The lab is up\n    check: {run: mesh lab status, exitCode: 0}\n    hint: run mesh lab up\nsetup:')
    const lab = parseLab(fm + step('S', 'true', 'id: s\ncheck: {exitCode: 0}'), '/x/01-demo.md')
    expect(lab.prerequisites).toEqual([{title: 'A terminal'}, {title: 'The lab is up', check: {run: 'mesh lab status', exitCode: 0}, hint: 'run mesh lab up'}])
  })

  it('names the file, the step and the field of a missing check', () => {
    const err = invalid(FM + step('Shift', 'mesh canary shift 90/10', 'id: shift'))
    expect(err.message).toMatch(/step "shift" \(line \d+\): check: is required/)
    expect(err.field).toBe('step "shift" (line 10).check')
  })

  it('collects every problem as a cause', () => {
    const err = invalid(FM.replace('minutes: 3', 'minutes: -1').replace('id: demo', 'id: demo\ncolour: red') + step('A', 'true', 'id: a\ncheck: {exitcode: 0}'))
    const fields = err.causes.map((c) => c.field)
    expect(fields).toEqual(expect.arrayContaining(['colour', 'minutes', 'step "a" (line 11).check.exitcode', 'step "a" (line 11).check']))
    expect(err.message).toMatch(/and \d+ more problems/)
  })

  const cases: Array<[string, string, RegExp]> = [
    ['no front matter', '# just markdown\n', /front matter: missing/],
    ['unclosed front matter', '---\nid: demo\n', /front matter: not closed/],
    ['front matter YAML error', '---\nid: [demo\n---\n', /front matter: YAML does not parse/],
    ['no steps', FM + '\nJust an intro.\n', /steps: none found/],
    ['id that does not match the file', FM.replace('id: demo', 'id: other') + step('A', 'true', 'id: a\ncheck: {exitCode: 0}'), /id: "other" does not match the file name 01-demo.md/],
    ['step without a command', FM + '\n## A\n\nText.\n\n```yaml step\nid: a\ncheck: {exitCode: 0}\n```\n', /step "a" \(line \d+\): command: missing/],
    ['two commands in one block', FM + step('A', 'true\nfalse', 'id: a\ncheck: {exitCode: 0}'), /command: the ```sh block \(line \d+\) must hold exactly one command line, found 2/],
    ['a $ prompt', FM + step('A', '$ mesh lab up', 'id: a\ncheck: {exitCode: 0}'), /command: write the command without a "\$ " prompt/],
    ['no yaml step block', FM + '\n## A\n\nText.\n\n```sh\ntrue\n```\n', /step 1 "A" \(line \d+\): yaml step: block missing/],
    ['bad step id', FM + step('A', 'true', 'id: Bad_Id\ncheck: {exitCode: 0}'), /id: is required: lower-case/],
    ['duplicate step ids', FM + step('A', 'true', 'id: a\ncheck: {exitCode: 0}') + step('B', 'true', 'id: a\ncheck: {exitCode: 0}'), /step "a" \(line \d+\): id: duplicates the step at line \d+/],
    ['empty explanation', FM + step('A', 'true', 'id: a\ncheck: {exitCode: 0}', ''), /explanation: is empty/],
    ['json check on mesh without --json', FM + step('A', 'mesh verify split --expect 90/10', 'id: a\ncheck: {json: {path: result.verdict, equals: pass}}'), /check.json: needs JSON output: add --json/],
    ['json check without an operator', FM + step('A', 'mesh lab status --json', 'id: a\ncheck: {json: {path: result.kubeconfig}}'), /check.json: needs one of equals, contains, exists or matches/],
    ['bad regex', FM + step('A', 'true', 'id: a\ncheck: {stdoutMatches: "("}'), /check.stdoutMatches: is not a valid regular expression/],
    ['exit code out of range', FM + step('A', 'true', 'id: a\ncheck: {exitCode: 300}'), /check.exitCode: must be a whole number 0–255/],
    ['empty check list', FM + step('A', 'true', 'id: a\ncheck: []'), /check: is an empty list/],
    ['bad timeout', FM + step('A', 'true', 'id: a\ntimeout: 0\ncheck: {exitCode: 0}'), /timeout: must be seconds/],
    ['bad list item', FM + step('A', 'true', 'id: a\ncheck:\n  - exitCode: 0\n  - stdoutContains: []'), /check\[1\].stdoutContains: must be a non-empty string/],
    ['prerequisite check without run', FM.replace('setup:', 'prerequisites:\n  - {title: Up, check: {exitCode: 0}}\nsetup:') + step('A', 'true', 'id: a\ncheck: {exitCode: 0}'), /prerequisites\[0\]: check.run: is required here/],
  ]
  for (const [name, text, re] of cases) {
    it(`rejects ${name}`, () => {
      expect(invalid(text).message).toMatch(re)
    })
  }
})

describe('catalog', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mesh-labs-'))
  afterAll(() => rmSync(dir, {recursive: true, force: true}))
  const good = (id: string) => FM.replace('id: demo', `id: ${id}`) + step('A', 'true', 'id: a\ncheck: {exitCode: 0}') + step('B', 'true', 'id: b\ncheck: {exitCode: 0}')
  writeFileSync(join(dir, '01-alpha.md'), good('alpha'))
  writeFileSync(join(dir, '02-beta.md'), good('beta'))
  writeFileSync(join(dir, '10-broken.md'), FM.replace('id: demo', 'id: broken'))
  writeFileSync(join(dir, 'README.md'), '# not a lab')

  it('finds a lab by id, file stem or number', () => {
    expect(loadLab(dir, 'beta').id).toBe('beta')
    expect(loadLab(dir, '02-beta').id).toBe('beta')
    expect(loadLab(dir, '2').id).toBe('beta')
    expect(loadLab(dir, '02').id).toBe('beta')
  })

  it('lists the ids when a lab is not found (exit 65)', () => {
    try {
      loadLab(dir, 'gamma')
      throw new Error('expected an error')
    } catch (e) {
      expect((e as MeshError).code).toBe('MESH_LAB_NOT_FOUND')
      expect((e as MeshError).exit).toBe(65)
      expect((e as MeshError).message).toBe('no lab "gamma"; labs: alpha, beta, broken')
    }
  })

  it('keeps good labs when one is broken, and reports the broken one', () => {
    const c = loadCatalog(dir)
    expect(c.labs.map((l) => l.id)).toEqual(['alpha', 'beta'])
    expect(c.invalid.map((i) => i.error.code)).toEqual(['MESH_LAB_INVALID'])
    expect(c.invalid[0]!.error.message).toContain('10-broken.md')
  })

  it('reports a missing labs directory', () => {
    expect(() => loadLab(join(dir, 'nope'), 'alpha')).toThrow(/no labs directory/)
  })

  it('resolves --from by number or id', () => {
    const lab = loadLab(dir, 'alpha')
    expect(stepIndex(lab, '2')).toBe(1)
    expect(stepIndex(lab, 'a')).toBe(0)
    expect(() => stepIndex(lab, '3')).toThrow(/has no step "3"; steps: 1 a, 2 b/)
  })

  it('flags two files with the same id', () => {
    const d2 = join(dir, 'dup')
    mkdirSync(d2)
    writeFileSync(join(d2, '01-same.md'), good('same'))
    writeFileSync(join(d2, '02-same.md'), good('same'))
    const c = loadCatalog(d2)
    expect(c.labs).toHaveLength(1)
    expect(c.invalid[0]!.error.message).toContain('02-same.md: id "same" is also the id of 01-same.md')
  })
})
