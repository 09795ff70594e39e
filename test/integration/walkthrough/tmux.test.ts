// The interactive walkthrough as a person uses it: a real terminal (tmux), keys sent with
// send-keys, the screen read with capture-pane. Fixture lab `tour` (plain echo commands).
// Build first: npm run build (or npx tsc -p tsconfig.json --noEmitOnError false).
import {execFileSync, spawnSync} from 'node:child_process'
import {existsSync, mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const fixtures = join(root, 'test/fixtures/labs')
// a private tmux server, so nothing touches the user's sessions and cleanup is one command
const socket = `mesh-wt-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
const session = 'walk'
const home = mkdtempSync(join(tmpdir(), 'mesh-wt-tmux-'))

const tmux = (...args: string[]) => execFileSync('tmux', ['-L', socket, ...args], {encoding: 'utf8'})
const screen = () => tmux('capture-pane', '-p', '-t', session)
const keys = (...k: string[]) => tmux('send-keys', '-t', session, ...k)
const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`

/** The shell command the pane runs: the walkthrough, then its exit code, then it stays open. */
const walkthrough = (...args: string[]) =>
  `env -u CI MESH_HOME=${q(home)} MESH_LABS_DIR=${q(fixtures)} ${q(process.execPath)} ${q(join(root, 'bin/run.js'))} lab walkthrough tour ${args.join(' ')}; echo "[walkthrough exited $?]"; exec sleep 600`

async function until(what: string, ok: (s: string) => boolean, ms = 30_000): Promise<string> {
  const deadline = Date.now() + ms
  let last = ''
  for (;;) {
    last = screen()
    if (ok(last)) return last
    if (Date.now() > deadline) throw new Error(`screen never showed ${what}; last screen:\n${last}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
const has = (...parts: string[]) => (s: string) => parts.every((p) => s.includes(p))
const progress = () => JSON.parse(readFileSync(join(home, 'walkthroughs', 'tour.json'), 'utf8'))

beforeAll(() => {
  // fail, not skip: this is the test of the interactive mode
  if (spawnSync('sh', ['-c', 'command -v tmux']).status !== 0) throw new Error('tmux is not installed: apt-get install -y tmux (npm test installs it when run as root)')
  if (!existsSync(join(root, 'dist/commands/lab/walkthrough.js'))) throw new Error('dist/ is not built: run `npx tsc -p tsconfig.json --noEmitOnError false` first')
  tmux('new-session', '-d', '-x', '120', '-y', '40', '-s', session, walkthrough())
})

afterAll(() => {
  spawnSync('tmux', ['-L', socket, 'kill-server'])
  rmSync(home, {recursive: true, force: true})
})

describe('mesh lab walkthrough in a terminal', () => {
  it('shows the step text and command, and runs nothing until Enter', async () => {
    const s = await until('step 1', has('Fixture tour', 'Step 1/3 · First stop alpha', 'This step prints a marker word', '$ echo tour-output-alpha', 'Enter run it'))
    expect(s).not.toContain('│ tour-output-alpha')
    expect(s).not.toContain('Resuming')
  })

  it('Enter runs the command and shows its output and the ✔ verdict', async () => {
    keys('Enter')
    const s = await until('output and verdict', has('│ tour-output-alpha', '✔ Step 1 passed', 'output contains "tour-output-alpha"', 'Enter next step'))
    // the step text is still on screen above the result
    expect(s).toContain('Step 1/3 · First stop alpha')
  })

  it('q quits, saying where it will resume, and saves the next step', async () => {
    keys('q')
    const s = await until('exit', has('[walkthrough exited 0]'))
    expect(s).toContain('Progress saved. `mesh lab walkthrough tour` resumes at step 2/3 (Second stop beta).')
    expect(progress()).toMatchObject({current: 'beta', index: 1, completed: false, steps: {alpha: {status: 'pass'}}})
  })

  it('starting again resumes at the next step and says so', async () => {
    tmux('respawn-pane', '-k', '-t', session, walkthrough())
    const s = await until('resume', has('Resuming at step 2/3 (Second stop beta): you stopped here last time.', 'Step 2/3 · Second stop beta', '$ echo tour-output-beta'))
    expect(s).not.toContain('Step 1/3')
  })

  it('b goes back to the previous step, s skips forward', async () => {
    keys('b')
    let s = await until('back to step 1', has('Step 1/3 · First stop alpha', '(passed last time)'))
    expect(s).not.toContain('Step 2/3')
    keys('s')
    s = await until('step 2 again', has('Step 2/3 · Second stop beta'))
    expect(s).not.toContain('Step 1/3')
    keys('s')
    s = await until('step 3', has('Step 3/3 · Third stop gamma', "$ sh -c 'echo gamma-was-here; exit 1'"))
    expect(progress().steps).toMatchObject({alpha: {status: 'pass'}, beta: {status: 'skipped'}})
  })

  it('a failing check shows × with the reason; s on the last step finishes the lab', async () => {
    keys('Enter')
    await until('failure', has('│ gamma-was-here', '× Step 3 failed', 'expected exit code 0; got exit code 1', 'Enter run again'))
    keys('s')
    const s = await until('finish', has('Lab complete: Fixture tour', '[walkthrough exited 0]'))
    expect(s).toContain('1 passed, 2 skipped, 0 failed')
    expect(progress()).toMatchObject({completed: true, current: null})
  })

  it('a finished lab starts over at step 1; --reset runs the setup first', async () => {
    tmux('respawn-pane', '-k', '-t', session, walkthrough())
    await until('restart', has('You completed this lab before; starting again at step 1/3.', 'Step 1/3 · First stop alpha'))
    keys('q')
    await until('exit', has('[walkthrough exited 0]'))
    expect(existsSync(join(home, 'tour-setup-marker'))).toBe(false)
    tmux('respawn-pane', '-k', '-t', session, walkthrough('--reset'))
    const s = await until('reset start', has('Step 1/3 · First stop alpha', 'Enter run it'))
    expect(s).not.toContain('completed this lab before')
    expect(readFileSync(join(home, 'tour-setup-marker'), 'utf8')).toBe('tour-setup-ran\n')
    keys('q')
    await until('exit', has('[walkthrough exited 0]'))
  })
})
