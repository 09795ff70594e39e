// The interactive state machine and its driver, with keys from a queue, a recording renderer
// and a fake step runner; progress is persisted to a temporary MESH_HOME.
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {
  KeyQueue,
  emptyProgress,
  initialState,
  keyToAction,
  loadProgress,
  progressFile,
  progressSummary,
  reduce,
  resumePoint,
  runInteractive,
  saveProgress,
  type Key,
  type Lab,
  type LabProgress,
  type Step,
  type StepVerdict,
  type WalkthroughRenderer,
} from '../../../src/walkthrough/index.js'

const home = mkdtempSync(join(tmpdir(), 'mesh-wt-home-'))
afterAll(() => rmSync(home, {recursive: true, force: true}))

const step = (id: string): Step => ({id, title: `Title ${id}`, explanation: 'x', command: `echo ${id}`, checks: [{exitCode: 0}], timeoutMs: 1000, line: 1})
const lab: Lab = {id: 'demo', title: 'Demo', summary: 's', minutes: 1, prerequisites: [], setup: [], intro: '', steps: [step('a'), step('b'), step('c')], file: '/x/01-demo.md'}
const verdict = (stepId: string, status: 'pass' | 'fail'): StepVerdict => ({
  stepId,
  status,
  message: status,
  command: {command: 'x', exitCode: status === 'pass' ? 0 : 1, stdout: '', stderr: '', durationMs: 1, timedOut: false, interrupted: false},
  checks: [],
  durationMs: 1,
})
const ENTER: Key = {name: 'return'}
const k = (name: string): Key => ({name, sequence: name})

describe('keys and transitions', () => {
  const s0 = initialState(lab, emptyProgress('demo'), 0)

  it('Enter runs the shown step; after a pass Enter goes on, after a failure it runs again', () => {
    expect(keyToAction(s0, ENTER)).toEqual({type: 'run'})
    const passed = reduce(lab, s0, {type: 'verdict', verdict: verdict('a', 'pass')})
    expect(keyToAction(passed, ENTER)).toEqual({type: 'next'})
    const failed = reduce(lab, s0, {type: 'verdict', verdict: verdict('a', 'fail')})
    expect(keyToAction(failed, ENTER)).toEqual({type: 'run'})
    expect(keyToAction(s0, k('b'))).toEqual({type: 'back'})
    expect(keyToAction(s0, k('s'))).toEqual({type: 'skip'})
    expect(keyToAction(s0, k('q'))).toEqual({type: 'quit'})
    expect(keyToAction(s0, {name: 'c', ctrl: true})).toEqual({type: 'quit'})
    expect(keyToAction(s0, k('x'))).toBeUndefined()
  })

  it('a pass moves the saved resume point to the next step; a failure keeps it', () => {
    const passed = reduce(lab, s0, {type: 'verdict', verdict: verdict('a', 'pass')})
    expect(passed.progress).toMatchObject({current: 'b', index: 1, completed: false})
    expect(passed.progress.steps.a!.status).toBe('pass')
    const failed = reduce(lab, s0, {type: 'verdict', verdict: verdict('a', 'fail')})
    expect(failed.progress).toMatchObject({current: 'a', index: 0})
  })

  it('skip records a skip unless the step passed; back stops at the first step', () => {
    const skipped = reduce(lab, s0, {type: 'skip'})
    expect(skipped).toMatchObject({index: 1, phase: 'step'})
    expect(skipped.progress.steps.a!.status).toBe('skipped')
    const passedThenBack = reduce(lab, reduce(lab, reduce(lab, s0, {type: 'verdict', verdict: verdict('a', 'pass')}), {type: 'next'}), {type: 'back'})
    expect(passedThenBack.index).toBe(0)
    expect(reduce(lab, passedThenBack, {type: 'skip'}).progress.steps.a!.status).toBe('pass')
    expect(reduce(lab, s0, {type: 'back'})).toMatchObject({index: 0, notice: 'Already at the first step.'})
  })

  it('going past the last step completes the lab', () => {
    const last = initialState(lab, emptyProgress('demo'), 2)
    const done = reduce(lab, reduce(lab, last, {type: 'verdict', verdict: verdict('c', 'pass')}), {type: 'next'})
    expect(done.phase).toBe('done')
    expect(done.progress).toMatchObject({completed: true, current: null})
  })
})

describe('progress', () => {
  it('round-trips through <MESH_HOME>/walkthroughs/<lab>.json', () => {
    const p: LabProgress = {...emptyProgress('demo'), current: 'b', index: 1, steps: {a: {status: 'pass', at: 'now'}}}
    saveProgress(home, p)
    expect(progressFile(home, 'demo')).toBe(join(home, 'walkthroughs', 'demo.json'))
    expect(loadProgress(home, 'demo')).toEqual(p)
    expect(resumePoint(lab, p)).toEqual({index: 1, reason: 'resumed'})
    expect(progressSummary(lab, p)).toMatchObject({passed: 1, total: 3, current: 2, label: 'step 2/3'})
  })

  it('treats a corrupt file as no progress', () => {
    writeFileSync(progressFile(home, 'broken'), '{not json')
    expect(loadProgress(home, 'broken')).toBeUndefined()
  })

  it('restarts a completed lab, and falls back to the index when a step id vanished', () => {
    expect(resumePoint(lab, {...emptyProgress('demo'), completed: true, current: null, index: 3})).toEqual({index: 0, reason: 'completed-before'})
    expect(resumePoint(lab, {...emptyProgress('demo'), current: 'renamed', index: 2})).toEqual({index: 2, reason: 'lab-changed'})
    expect(resumePoint(lab, undefined)).toEqual({index: 0, reason: 'new'})
  })
})

class Recorder implements WalkthroughRenderer {
  events: string[] = []
  intro(_l: Lab, s: {index: number; reason: string}) {
    this.events.push(`intro ${s.index} ${s.reason}`)
  }
  step(_l: Lab, i: number) {
    this.events.push(`step ${i}`)
  }
  running(_l: Lab, i: number) {
    this.events.push(`running ${i}`)
  }
  output(c: string) {
    this.events.push(`output ${c.trim()}`)
  }
  checkRun(c: string) {
    this.events.push(`check ${c}`)
  }
  verdict(_l: Lab, i: number, v: StepVerdict) {
    this.events.push(`verdict ${i} ${v.status}`)
  }
  notice(t: string) {
    this.events.push(`notice ${t}`)
  }
  done() {
    this.events.push('done')
  }
  quit(_l: Lab, p: LabProgress) {
    this.events.push(`quit at ${p.current}`)
  }
}

describe('runInteractive', () => {
  const drive = async (keys: Key[], results: Record<string, Array<'pass' | 'fail'>>, start = {index: 0, reason: 'new' as const}) => {
    const q = new KeyQueue()
    const r = new Recorder()
    const ran: string[] = []
    const saves: LabProgress[] = []
    const pending = runInteractive({
      lab,
      keys: q,
      renderer: r,
      start,
      progress: emptyProgress('demo'),
      save: (p) => {
        saves.push(p)
        saveProgress(home, p)
      },
      runStep: async (s, hooks) => {
        ran.push(s.id)
        hooks.onOutput?.(`out-${s.id}\n`, 'stdout', {kind: 'command', command: s.command})
        return verdict(s.id, results[s.id]!.shift()!)
      },
    })
    for (const key of keys) {
      q.push(key)
      await new Promise((res) => setImmediate(res))
    }
    return {state: await pending, events: r.events, ran, saves}
  }

  it('runs on Enter, shows output and verdict, and quitting after a pass resumes at the next step', async () => {
    const {state, events, ran} = await drive([ENTER, k('q')], {a: ['pass']})
    expect(ran).toEqual(['a'])
    expect(events).toEqual(['intro 0 new', 'step 0', 'running 0', 'output out-a', 'verdict 0 pass', 'quit at b'])
    expect(state.phase).toBe('quit')
    const saved = JSON.parse(readFileSync(progressFile(home, 'demo'), 'utf8')) as LabProgress
    expect(saved).toMatchObject({current: 'b', index: 1, completed: false})
    expect(resumePoint(lab, saved)).toEqual({index: 1, reason: 'resumed'})
  })

  it('re-runs a failed step on Enter, skips with s, goes back with b, and finishes', async () => {
    const {state, events, ran} = await drive([ENTER, ENTER, ENTER, k('s'), k('b'), k('s'), ENTER, ENTER], {a: ['fail', 'pass'], c: ['pass']})
    expect(ran).toEqual(['a', 'a', 'c'])
    expect(events.filter((e) => e.startsWith('step') || e.startsWith('verdict') || e === 'done')).toEqual([
      'step 0',
      'verdict 0 fail',
      'verdict 0 pass',
      'step 1',
      'step 2',
      'step 1',
      'step 2',
      'verdict 2 pass',
      'done',
    ])
    expect(state.progress.completed).toBe(true)
    expect(state.progress.steps).toMatchObject({a: {status: 'pass'}, b: {status: 'skipped'}, c: {status: 'pass'}})
  })

  it('ignores keys pressed while a step runs', async () => {
    const q = new KeyQueue()
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    const ran: string[] = []
    const pending = runInteractive({
      lab,
      keys: q,
      renderer: new Recorder(),
      start: {index: 0, reason: 'new'},
      progress: emptyProgress('demo'),
      save: () => {},
      runStep: async (s) => {
        ran.push(s.id)
        await gate
        return verdict(s.id, 'pass')
      },
    })
    q.push(ENTER)
    await new Promise((r) => setImmediate(r))
    q.push(ENTER) // typed while running: dropped
    q.push(k('s'))
    await new Promise((r) => setImmediate(r))
    release()
    await new Promise((r) => setTimeout(r, 10))
    q.push(k('q'))
    const s = await pending
    expect(ran).toEqual(['a'])
    expect(s.index).toBe(0)
  })

  it('Ctrl-C while a step runs stops that command, and the step fails', async () => {
    const q = new KeyQueue()
    const r = new Recorder()
    let started!: () => void
    const running = new Promise<void>((res) => (started = res))
    const pending = runInteractive({
      lab,
      keys: q,
      renderer: r,
      start: {index: 0, reason: 'new'},
      progress: emptyProgress('demo'),
      save: () => {},
      runStep: (s, hooks) =>
        new Promise<StepVerdict>((res) => {
          started()
          hooks.signal!.addEventListener('abort', () => res(verdict(s.id, 'fail')))
        }),
    })
    q.push(ENTER)
    await running
    q.push({name: 'c', ctrl: true})
    await new Promise((res) => setTimeout(res, 10))
    q.push(k('q'))
    const s = await pending
    expect(r.events).toContain('verdict 0 fail')
    expect(s.phase).toBe('quit')
    expect(s.progress.steps.a!.status).toBe('fail')
  })
})
