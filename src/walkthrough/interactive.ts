// Drives the session state machine: waits for keys, runs steps, saves progress and tells a
// renderer what to show. Keys and rendering are injected, so tests drive it without a terminal.
import type {LabProgress, ResumeReason, StepRecord} from './progress.js'
import type {OutputStream, StepHooks} from './runner.js'
import {initialState, isInterrupt, keyToAction, reduce, type Key, type SessionState} from './session.js'
import type {Lab, Step, StepVerdict} from './types.js'

/** Keys in arrival order; `next()` waits for one. Only one waiter at a time. */
export class KeyQueue {
  private queued: Key[] = []
  private waiter: {promise: Promise<Key>; resolve: (k: Key) => void} | undefined

  push(key: Key): void {
    if (this.waiter) {
      const w = this.waiter
      this.waiter = undefined
      w.resolve(key)
    } else this.queued.push(key)
  }

  next(): Promise<Key> {
    const k = this.queued.shift()
    if (k) return Promise.resolve(k)
    if (!this.waiter) {
      let resolve!: (k: Key) => void
      const promise = new Promise<Key>((r) => (resolve = r))
      this.waiter = {promise, resolve}
    }
    return this.waiter.promise
  }

  /** Forget keys typed while a command ran, so a stray Enter doesn't run the next step. */
  drain(): void {
    this.queued = []
  }
}

export interface WalkthroughRenderer {
  /** the lab's title and summary, and where the participant starts */
  intro(lab: Lab, start: {index: number; reason: ResumeReason}): void
  /** a step's title, explanation and command, with the keys that apply */
  step(lab: Lab, index: number, record: StepRecord | undefined): void
  /** the step's command is about to run */
  running(lab: Lab, index: number): void
  output(chunk: string, stream: OutputStream): void
  /** a verifying command is about to run */
  checkRun(command: string): void
  verdict(lab: Lab, index: number, verdict: StepVerdict): void
  notice(text: string): void
  done(lab: Lab, progress: LabProgress): void
  quit(lab: Lab, progress: LabProgress): void
}

export interface InteractiveOptions {
  lab: Lab
  keys: KeyQueue
  renderer: WalkthroughRenderer
  runStep: (step: Step, hooks: StepHooks) => Promise<StepVerdict>
  start: {index: number; reason: ResumeReason}
  progress: LabProgress
  save: (p: LabProgress) => void
}

export async function runInteractive(o: InteractiveOptions): Promise<SessionState> {
  const {lab, keys, renderer} = o
  let state = initialState(lab, o.progress, o.start.index)
  o.save(state.progress)
  renderer.intro(lab, o.start)
  renderer.step(lab, state.index, state.progress.steps[lab.steps[state.index]!.id])
  while (state.phase !== 'done' && state.phase !== 'quit') {
    const action = keyToAction(state, await keys.next())
    if (!action) continue
    if (action.type === 'run') {
      const verdict = await runWithInterrupt(o, state.index)
      keys.drain()
      state = reduce(lab, state, {type: 'verdict', verdict})
      o.save(state.progress)
      renderer.verdict(lab, state.index, verdict)
      continue
    }
    state = reduce(lab, state, action)
    o.save(state.progress)
    if (state.notice) renderer.notice(state.notice)
    else if (state.phase === 'step') renderer.step(lab, state.index, state.progress.steps[lab.steps[state.index]!.id])
  }
  if (state.phase === 'done') renderer.done(lab, state.progress)
  else renderer.quit(lab, state.progress)
  return state
}

/** Runs the shown step; Ctrl-C while it runs stops the command (the step then fails). */
async function runWithInterrupt(o: InteractiveOptions, index: number): Promise<StepVerdict> {
  const step = o.lab.steps[index]!
  const ac = new AbortController()
  o.renderer.running(o.lab, index)
  let finished = false
  const run = o
    .runStep(step, {signal: ac.signal, onOutput: (c, s) => o.renderer.output(c, s), onCheckRun: (c) => o.renderer.checkRun(c)})
    .finally(() => (finished = true))
  const done = run.then(
    () => undefined,
    () => undefined,
  )
  while (!finished) {
    const k = await Promise.race([o.keys.next(), done])
    if (k && isInterrupt(k)) ac.abort()
  }
  return run
}
