// `mesh lab list` and unattended `mesh lab walkthrough` through the compiled CLI, against the
// fixture labs in test/fixtures/labs (plain shell commands) and a temporary MESH_HOME.
// Build first: npm run build (or npx tsc -p tsconfig.json --noEmitOnError false).
import {spawn} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {XMLParser} from 'fast-xml-parser'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const fixtures = join(root, 'test/fixtures/labs')
const homes: string[] = []
afterAll(() => homes.forEach((h) => rmSync(h, {recursive: true, force: true})))
const newHome = () => {
  const h = mkdtempSync(join(tmpdir(), 'mesh-wt-cli-'))
  homes.push(h)
  return h
}

interface Run {
  status: number | null
  stdout: string
  stderr: string
}
function mesh(args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve, reject) => {
    // stdin is not a terminal here; CI is unset so the automatic switch is what's tested
    const {CI: _ci, ...base} = process.env
    const p = spawn(process.execPath, [join(root, 'bin/run.js'), ...args], {cwd: root, env: {...base, NO_COLOR: '1', ...env}, stdio: ['ignore', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d) => (stdout += d))
    p.stderr.on('data', (d) => (stderr += d))
    p.on('error', reject)
    p.on('close', (status) => resolve({status, stdout, stderr}))
  })
}

beforeAll(() => {
  if (!existsSync(join(root, 'dist/commands/lab/walkthrough.js'))) throw new Error('dist/ is not built: run `npx tsc -p tsconfig.json --noEmitOnError false` first')
})

describe('mesh lab walkthrough (unattended, fixture labs)', () => {
  it('runs every step of a passing lab, one line each, and writes a JUnit report', async () => {
    const home = newHome()
    const xml = join(home, 'basics.xml')
    const r = await mesh(['lab', 'walkthrough', 'basics', '--non-interactive', '--output', xml], {MESH_HOME: home, MESH_LABS_DIR: fixtures})
    expect(r.status, r.stderr).toBe(0)
    const lines = r.stdout.split('\n').filter((l) => /^[✔×–] /.test(l))
    expect(lines.slice(0, 5).map((l) => l.replace(/ \(\d+\.\ds\)$/, ''))).toEqual([
      '✔ 1/5 greet  Say hello',
      '✔ 2/5 exit-code  Expect a particular exit code',
      '✔ 3/5 json  Read a JSON result',
      '✔ 4/5 verify-run  Verify with a second command',
      '✔ 5/5 mesh-shim  Run mesh itself',
    ])
    expect(lines[5]).toMatch(/^✔ basics: 5\/5 steps passed in [\d.]+s$/)
    expect(r.stderr).toContain(`Wrote JUnit report to ${xml}`)
    const doc = new XMLParser({ignoreAttributes: false, attributeNamePrefix: '@_', isArray: (n) => n === 'testcase'}).parse(readFileSync(xml, 'utf8'))
    const suite = doc.testsuites.testsuite
    expect([Number(suite['@_tests']), Number(suite['@_failures']), Number(suite['@_skipped'])]).toEqual([5, 0, 0])
    expect(suite.testcase.map((t: Record<string, unknown>) => t['@_name'])).toEqual([
      '1. greet: Say hello',
      '2. exit-code: Expect a particular exit code',
      '3. json: Read a JSON result',
      '4. verify-run: Verify with a second command',
      '5. mesh-shim: Run mesh itself',
    ])
    // the step really ran in MESH_HOME, and setup did not (no --reset)
    expect(readFileSync(join(home, 'made.txt'), 'utf8')).toBe('made\n')
    expect(existsSync(join(home, 'setup-marker'))).toBe(false)
    // unattended runs leave the participant's progress alone
    expect(existsSync(join(home, 'walkthroughs', 'basics.json'))).toBe(false)
  })

  it('stops at the first failed check with exit 1, names the step, and never runs the rest', async () => {
    const home = newHome()
    const r = await mesh(['lab', 'walkthrough', 'failing'], {MESH_HOME: home, MESH_LABS_DIR: fixtures})
    expect(r.status).toBe(1)
    expect(r.stderr).toContain('running every step unattended')
    expect(r.stdout).toContain('× 2/3 broken  A step whose check fails')
    expect(r.stdout).toContain('expected output contains "Hello version v2"; got stdout: not what you wanted')
    expect(r.stdout).toMatch(/× failing: stopped at step 2\/3 \(broken\)/)
    expect(r.stdout).not.toContain('3/3 never')
    expect(existsSync(join(home, 'never-ran'))).toBe(false)
  })

  it('prints a JSON report with --format json, and the envelope with --json', async () => {
    const home = newHome()
    const r = await mesh(['lab', 'walkthrough', 'failing', '--format', 'json'], {MESH_HOME: home, MESH_LABS_DIR: fixtures})
    expect(r.status).toBe(1)
    const report = JSON.parse(r.stdout)
    expect(report.failedStep).toMatchObject({number: 2, id: 'broken'})
    expect(report.steps.map((s: {status: string}) => s.status)).toEqual(['pass', 'fail', 'not-run'])
    // step lines moved to stderr so stdout stays parseable
    expect(r.stderr).toContain('× 2/3 broken')

    const j = await mesh(['lab', 'walkthrough', 'failing', '--json'], {MESH_HOME: home, MESH_LABS_DIR: fixtures})
    expect(j.status).toBe(1)
    const env = JSON.parse(j.stdout)
    expect(env).toMatchObject({ok: false, command: 'lab walkthrough', result: {mode: 'non-interactive', status: 'fail', failedStep: {id: 'broken'}}})
  })

  it('--reset runs the setup first; --from starts later', async () => {
    const home = newHome()
    const r = await mesh(['lab', 'walkthrough', 'basics', '--reset', '--from', 'json', '--format', 'junit'], {MESH_HOME: home, MESH_LABS_DIR: fixtures})
    expect(r.status, r.stderr).toBe(0)
    expect(readFileSync(join(home, 'setup-marker'), 'utf8')).toBe('setup-ran\n')
    const doc = new XMLParser({ignoreAttributes: false, attributeNamePrefix: '@_', isArray: (n) => n === 'testcase'}).parse(r.stdout)
    const cases = doc.testsuites.testsuite.testcase as Array<Record<string, unknown>>
    expect(cases.map((c) => (c.skipped ? 'skipped' : c.failure ? 'failure' : 'pass'))).toEqual(['skipped', 'skipped', 'pass', 'pass', 'pass'])
  })

  it('refuses an unknown lab (65, listing ids), an invalid lab file (65, naming file, step and field) and a bad --from', async () => {
    const home = newHome()
    const nf = await mesh(['lab', 'walkthrough', 'nope', '--json'], {MESH_HOME: home, MESH_LABS_DIR: fixtures})
    expect(nf.status).toBe(65)
    expect(JSON.parse(nf.stdout).error).toMatchObject({code: 'MESH_LAB_NOT_FOUND', message: 'no lab "nope"; labs: basics, failing, tour'})

    const dir = join(home, 'labs')
    mkdirSync(dir)
    writeFileSync(join(dir, '01-bad.md'), readFileSync(join(fixtures, '02-failing.md'), 'utf8').replace('id: failing', 'id: bad').replace('check:\n  stdoutContains: Hello version v2', 'check: {}'))
    const bad = await mesh(['lab', 'walkthrough', 'bad'], {MESH_HOME: home, MESH_LABS_DIR: dir})
    expect(bad.status).toBe(65)
    expect(bad.stderr).toMatch(/MESH_LAB_INVALID.*01-bad\.md: step "broken" \(line \d+\): check: has no criteria/)

    const from = await mesh(['lab', 'walkthrough', 'basics', '--from', 'nine'], {MESH_HOME: home, MESH_LABS_DIR: fixtures})
    expect(from.status).toBe(65)
    expect(from.stderr).toContain('MESH_LAB_STEP_NOT_FOUND')

    const out = await mesh(['lab', 'walkthrough', 'basics', '--format', 'text', '--output', join(home, 'x.txt')], {MESH_HOME: home, MESH_LABS_DIR: fixtures})
    expect(out.status).toBe(64)
  })
})

describe('mesh lab list', () => {
  it('lists labs with progress from MESH_HOME, as text and JSON', async () => {
    const home = newHome()
    mkdirSync(join(home, 'walkthroughs'))
    writeFileSync(
      join(home, 'walkthroughs', 'tour.json'),
      JSON.stringify({version: 1, lab: 'tour', current: 'beta', index: 1, completed: false, steps: {alpha: {status: 'pass', at: 'x'}}, updatedAt: 'x'}),
    )
    const r = await mesh(['lab', 'list'], {MESH_HOME: home, MESH_LABS_DIR: fixtures})
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/^tour\s+Fixture tour\s+2\s+3\s+step 2\/3$/m)
    expect(r.stdout).toMatch(/^basics\s+Fixture basics\s+1\s+5\s+-$/m)
    const j = JSON.parse((await mesh(['lab', 'list', '--json'], {MESH_HOME: home, MESH_LABS_DIR: fixtures})).stdout)
    expect(j.result.labs.map((l: {id: string}) => l.id)).toEqual(['basics', 'failing', 'tour'])
    expect(j.result.labs[2].progress).toMatchObject({passed: 1, total: 3, current: 2, completed: false})
  })
})
