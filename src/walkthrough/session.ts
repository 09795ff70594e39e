// The interactive walkthrough as a state machine: which step is shown, whether its verdict is
// on screen, and the progress to save. Pure: keys in, state out; running a step is the
// driver's job (interactive.ts).
import type {LabProgress} from './progress.js'
import type {Lab, StepVerdict} from './types.js'

export type Phase = 'step' | 'result' | 'done' | 'quit'

export interface SessionState {
  index: number
  phase: Phase
  /** the current step's verdict while phase is 'result' */
  last?: StepVerdict
  /** a one-off message for the renderer, e.g. "already at the first step" */
  notice?: string
  progress: LabProgress
}

export type Action =
  | {type: 'run'}
  | {type: 'verdict'; verdict: StepVerdict}
  | {type: 'next'}
  | {type: 'back'}
  | {type: 'skip'}
  | {type: 'quit'}

/** A key as node:readline's keypress event reports it. */
export interface Key {
  name?: string
  sequence?: string
  ctrl?: boolean
  meta?: boolean
}

export const isInterrupt = (k: Key): boolean => Boolean(k.ctrl && (k.name === 'c' || k.name === 'd'))

/**
 * Keys: Enter runs the shown step; after a pass Enter goes on, after a failure it runs the
 * step again; `r` re-runs, `b` back, `s` skip, `q` (or Ctrl-C) quits.
 */
export function keyToAction(state: SessionState, key: Key): Action | undefined {
  if (state.phase === 'done' || state.phase === 'quit') return undefined
  if (isInterrupt(key)) return {type: 'quit'}
  if (key.ctrl || key.meta) return undefined
  const name = key.name ?? key.sequence
  if (name === 'return' || name === 'enter') {
    if (state.phase === 'result' && state.last?.status === 'pass') return {type: 'next'}
    return {type: 'run'}
  }
  switch (name) {
    case 'r':
      return {type: 'run'}
    case 'b':
      return {type: 'back'}
    case 's':
      return {type: 'skip'}
    case 'n':
      return state.phase === 'result' && state.last?.status === 'pass' ? {type: 'next'} : undefined
    case 'q':
    case 'escape':
      return {type: 'quit'}
    default:
      return undefined
  }
}

export function initialState(lab: Lab, progress: LabProgress, index: number, now = new Date()): SessionState {
  return {index, phase: 'step', progress: at(lab, progress, index, now)}
}

/** Progress pointing at step `index` (or completed when past the end). */
function at(lab: Lab, p: LabProgress, index: number, now: Date): LabProgress {
  const done = index >= lab.steps.length
  return {...p, current: done ? null : lab.steps[index]!.id, index: done ? lab.steps.length : index, completed: done, updatedAt: now.toISOString()}
}

export function reduce(lab: Lab, state: SessionState, action: Action, now = new Date()): SessionState {
  const {notice: _, ...s} = state
  const step = lab.steps[s.index]!
  switch (action.type) {
    case 'run':
      return s
    case 'verdict': {
      const v = action.verdict
      const steps = {...s.progress.steps, [step.id]: {status: v.status, at: now.toISOString(), durationMs: v.durationMs}}
      // after a pass, a participant who quits resumes at the next step
      const progress = at(lab, {...s.progress, steps}, v.status === 'pass' ? s.index + 1 : s.index, now)
      return {...s, phase: 'result', last: v, progress}
    }
    case 'next':
    case 'skip': {
      let steps = s.progress.steps
      if (action.type === 'skip' && steps[step.id]?.status !== 'pass') steps = {...steps, [step.id]: {status: 'skipped', at: now.toISOString()}}
      const next = s.index + 1
      const progress = at(lab, {...s.progress, steps}, next, now)
      if (next >= lab.steps.length) return {index: s.index, phase: 'done', progress}
      return {index: next, phase: 'step', progress}
    }
    case 'back': {
      if (s.index === 0) return {...s, phase: 'step', last: undefined, progress: at(lab, s.progress, 0, now), notice: 'Already at the first step.'}
      const prev = s.index - 1
      return {index: prev, phase: 'step', progress: at(lab, s.progress, prev, now)}
    }
    case 'quit':
      return {...s, phase: 'quit'}
  }
}
