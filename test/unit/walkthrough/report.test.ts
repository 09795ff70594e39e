// Unattended runs and their reports: JUnit parsed back, JSON shape, one terminal line per step.
import {Chalk} from 'chalk'
import {XMLParser} from 'fast-xml-parser'
import {describe, expect, it} from 'vitest'
import {
  TerminalRenderer,
  emptyProgress,
  formatMarkdown,
  runAll,
  runSetup,
  stepLine,
  walkthroughJunit,
  type Lab,
  type ProcessResult,
  type Step,
  type StepVerdict,
} from '../../../src/walkthrough/index.js'

const plain = new Chalk({level: 0})
const step = (id: string): Step => ({id, title: `Title ${id}`, explanation: 'x', command: `echo ${id}`, checks: [{exitCode: 0}], timeoutMs: 1000, line: 1})
const lab: Lab = {id: 'demo', title: 'Demo', summary: 's', minutes: 1, prerequisites: [], setup: ['setup-1', 'setup-2'], intro: '', steps: ['a', 'b', 'c', 'd'].map(step), file: '/x/01-demo.md'}
const proc = (over: Partial<ProcessResult> = {}): ProcessResult => ({command: 'x', exitCode: 0, stdout: '', stderr: '', durationMs: 3, timedOut: false, interrupted: false, ...over})
const fake = (fails: string[]) => async (s: Step): Promise<StepVerdict> => {
  const bad = fails.includes(s.id)
  return {
    stepId: s.id,
    status: bad ? 'fail' : 'pass',
    message: bad ? 'expected output contains "v2"; got stdout: v1 <&> \u0007' : 'exit code 0',
    command: proc({exitCode: 0, stdout: `output of ${s.id}\n`}),
    checks: [{criteria: [{ok: !bad, expectation: 'output contains "v2"', ...(bad ? {actual: 'stdout: v1'} : {})}], ok: !bad}],
    durationMs: 1500,
  }
}

describe('runAll', () => {
  it('runs every step in order when all pass', async () => {
    const ran: string[] = []
    const r = await runAll(lab, {runStep: async (s, h) => (ran.push(s.id), fake([])(s))})
    expect(ran).toEqual(['a', 'b', 'c', 'd'])
    expect(r).toMatchObject({status: 'pass', total: 4, passed: 4, failed: 0, notRun: 0})
    expect(r.failedStep).toBeUndefined()
  })

  it('stops at the first failed check and names that step', async () => {
    const ran: string[] = []
    const r = await runAll(lab, {runStep: async (s) => (ran.push(s.id), fake(['b'])(s))})
    expect(ran).toEqual(['a', 'b'])
    expect(r).toMatchObject({status: 'fail', passed: 1, failed: 1, notRun: 2, failedStep: {number: 2, id: 'b', title: 'Title b'}})
    expect(r.steps.map((s) => s.status)).toEqual(['pass', 'fail', 'not-run', 'not-run'])
    expect(r.steps[2]!.message).toBe('not run: step 2 (b) failed')
  })

  it('starts at --from and reports earlier steps as skipped', async () => {
    const r = await runAll(lab, {from: 2, runStep: fake([])})
    expect(r.steps.map((s) => s.status)).toEqual(['skipped', 'skipped', 'pass', 'pass'])
  })

  it('setup stops at the first failing command with MESH_LAB_SETUP_FAILED (exit 69)', async () => {
    const ran: string[] = []
    const run = async (c: string) => (ran.push(c), proc({command: c, exitCode: c === 'setup-1' ? 69 : 0, stderr: 'Error [MESH_LAB_DOWN]: not running'}))
    await expect(runSetup(lab, run)).rejects.toMatchObject({code: 'MESH_LAB_SETUP_FAILED', exit: 69, message: expect.stringContaining('`setup-1` exited 69: Error [MESH_LAB_DOWN]')})
    expect(ran).toEqual(['setup-1'])
  })
})

describe('JUnit', () => {
  it('has one testcase per step: failure for the failed one, skipped for those not run', async () => {
    const report = await runAll(lab, {runStep: fake(['c'])})
    const xml = walkthroughJunit(report)
    const doc = new XMLParser({ignoreAttributes: false, attributeNamePrefix: '@_', isArray: (n) => n === 'testcase'}).parse(xml)
    const suite = doc.testsuites.testsuite
    expect(suite['@_name']).toBe('mesh lab walkthrough demo')
    expect(Number(suite['@_tests'])).toBe(4)
    expect(Number(suite['@_failures'])).toBe(1)
    expect(Number(suite['@_skipped'])).toBe(1)
    const cases = suite.testcase as Array<Record<string, unknown>>
    expect(cases.map((c) => c['@_name'])).toEqual(['1. a: Title a', '2. b: Title b', '3. c: Title c', '4. d: Title d'])
    expect(cases[0]!['@_time']).toBe('1.500')
    expect(cases[0]!.failure).toBeUndefined()
    expect(String(cases[0]!['system-out'])).toContain('output of a')
    const failure = cases[2]!.failure as Record<string, string>
    // control characters dropped, markup escaped and parsed back intact
    expect(failure['@_message']).toBe('expected output contains "v2"; got stdout: v1 <&>')
    expect(failure['#text']).toContain('$ echo c')
    expect(failure['#text']).toContain('× output contains "v2" — got stdout: v1')
    expect((cases[3]!.skipped as Record<string, string>)['@_message']).toBe('not run: step 3 (c) failed')
  })
})

describe('terminal text', () => {
  it('one line per step, with the reason under a failure', async () => {
    const r = await runAll(lab, {runStep: fake(['b'])})
    expect(r.steps.map((s) => stepLine(s, 4, plain))).toEqual([
      '✔ 1/4 a  Title a (1.5s)',
      '× 2/4 b  Title b (1.5s)\n    expected output contains "v2"; got stdout: v1 <&> \u0007',
      '– 3/4 c  Title c',
      '– 4/4 d  Title d',
    ])
  })

  it('formats the Markdown subset: wrapped paragraphs, bullets, code spans and blocks', () => {
    const md = 'Run `mesh canary shift 90/10` to send **ten percent** of the requests to version two of hello, then check.\n\n- first item that is long enough to wrap around the narrow width\n- second\n\n```yaml\nkey: value\n```'
    const out = formatMarkdown(md, 40, plain).split('\n')
    expect(out.every((l) => l.length <= 40)).toBe(true)
    expect(out.join(' ')).toContain('Run mesh canary shift 90/10 to send ten percent')
    expect(out).toContain('  - second')
    expect(out.find((l) => l.startsWith('  - first'))).toBeDefined()
    expect(out).toContain('    key: value')
    // punctuation glued to a code span wraps with it and never pushes a line past the width
    const glued = formatMarkdown('one endpoint (`consecutive5xxErrors: 3`) ejects, (`interval: 1s`), done.', 24, plain).split('\n')
    expect(glued.every((l) => l.length <= 24)).toBe(true)
    expect(glued.join(' ')).toBe('one endpoint (consecutive5xxErrors: 3) ejects, (interval: 1s), done.')
  })

  it('shows a step with its title, explanation, command and keys; resumes say so', () => {
    let screen = ''
    const r = new TerminalRenderer({write: (s) => (screen += s), columns: 80, chalk: plain, clear: false})
    r.intro(lab, {index: 2, reason: 'resumed'})
    r.step(lab, 2, {status: 'fail', at: 'x'})
    expect(screen).toContain('Resuming at step 3/4 (Title c): you stopped here last time.')
    expect(screen).toContain('Step 3/4 · Title c  (failed last time)')
    expect(screen).toContain('$ echo c')
    expect(screen).toContain('Enter run it  ·  s skip  ·  b back  ·  q quit')
    r.running(lab, 2)
    r.output('line one\nline', 'stdout')
    r.output(' two\n', 'stdout')
    expect(screen).toContain('  │ line one\n  │ line two\n')
    r.quit(lab, {...emptyProgress('demo'), current: 'c', index: 2})
    expect(screen).toContain('resumes at step 3/4 (Title c)')
  })
})
