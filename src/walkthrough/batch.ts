// Unattended runs (CI): setup, prerequisites, then every step in order, stopping at the first
// failed check. Returns a report; the command decides how to print it.
import {EXIT, MeshError} from '../lib/errors.js'
import {evaluateCheck, tail} from './checks.js'
import type {CommandRunner, OutputStream, StepHooks} from './runner.js'
import type {Lab, ProcessResult, Step, StepVerdict} from './types.js'

const SETUP_TIMEOUT_MS = 300_000

/** Runs the lab's setup commands in order; MESH_LAB_SETUP_FAILED (exit 69) at the first failure. */
export async function runSetup(
  lab: Lab,
  run: CommandRunner,
  o: {onStart?: (command: string) => void; onOutput?: (chunk: string, stream: OutputStream, command: string) => void; signal?: AbortSignal} = {},
): Promise<ProcessResult[]> {
  const results: ProcessResult[] = []
  const {onOutput} = o
  for (const command of lab.setup) {
    o.onStart?.(command)
    const r = await run(command, {timeoutMs: SETUP_TIMEOUT_MS, signal: o.signal, onOutput: onOutput && ((c, s) => onOutput(c, s, command))})
    results.push(r)
    if (r.exitCode !== 0) {
      const why = r.interrupted ? 'was interrupted' : r.timedOut ? `timed out after ${Math.round(r.durationMs / 1000)} s` : `exited ${r.exitCode ?? 'on a signal'}`
      throw new MeshError('MESH_LAB_SETUP_FAILED', `setup of lab "${lab.id}": \`${command}\` ${why}: ${tail(r.stderr || r.stdout, 2)}`, {
        suggestion: 'Fix what the setup command reports (often: run `mesh lab up`), then run the walkthrough with --reset again.',
        exit: EXIT.unavailable,
        field: 'setup',
      })
    }
  }
  return results
}

export interface PrerequisiteResult {
  title: string
  /** undefined when the prerequisite has no check (shown, not verified) */
  ok?: boolean
  message?: string
  hint?: string
}

export async function checkPrerequisites(lab: Lab, run: CommandRunner): Promise<PrerequisiteResult[]> {
  const out: PrerequisiteResult[] = []
  for (const pre of lab.prerequisites) {
    if (!pre.check?.run) {
      out.push({title: pre.title, ...(pre.hint ? {hint: pre.hint} : {})})
      continue
    }
    const r = await run(pre.check.run, {timeoutMs: 60_000})
    const bad = evaluateCheck(pre.check, r).find((c) => !c.ok)
    out.push({
      title: pre.title,
      ok: !bad,
      ...(bad ? {message: `\`${pre.check.run}\`: expected ${bad.expectation}${bad.actual ? `; got ${bad.actual}` : ''}`} : {}),
      ...(pre.hint ? {hint: pre.hint} : {}),
    })
  }
  return out
}

/** Throws MESH_LAB_PREREQUISITE (exit 69) naming the first unmet prerequisite. */
export function requirePrerequisites(lab: Lab, results: readonly PrerequisiteResult[]): void {
  const bad = results.find((r) => r.ok === false)
  if (!bad) return
  throw new MeshError('MESH_LAB_PREREQUISITE', `lab "${lab.id}" needs: ${bad.title} (${bad.message})`, {
    suggestion: bad.hint ?? `Run the walkthrough with --reset to run the lab's setup first.`,
    exit: EXIT.unavailable,
    field: 'prerequisites',
  })
}

export type ReportStatus = 'pass' | 'fail' | 'skipped' | 'not-run'

export interface StepReport {
  /** 1-based */
  number: number
  id: string
  title: string
  command: string
  status: ReportStatus
  message: string
  durationMs: number
  exitCode?: number | null
  /** tail of the step command's output */
  output?: string
  checks?: Array<{run?: string; exitCode?: number | null; ok: boolean; criteria: StepVerdict['checks'][number]['criteria']}>
}

export interface WalkthroughReport {
  lab: {id: string; title: string; file: string}
  status: 'pass' | 'fail'
  total: number
  passed: number
  failed: number
  skipped: number
  notRun: number
  /** the step that stopped the run */
  failedStep?: {number: number; id: string; title: string; message: string}
  startedAt: string
  durationMs: number
  steps: StepReport[]
}

export interface BatchOptions {
  /** 0-based index of the first step to run (steps before it are reported as skipped) */
  from?: number
  runStep: (step: Step, hooks: StepHooks) => Promise<StepVerdict>
  onStepStart?: (step: Step, index: number) => void
  onStepDone?: (step: Step, index: number, verdict: StepVerdict) => void
  onOutput?: StepHooks['onOutput']
  /** aborting stops the running command; the step fails and the run stops */
  signal?: AbortSignal
}

const outputTail = (r: ProcessResult): string => {
  const text = [r.stdout.trimEnd(), r.stderr.trimEnd()].filter(Boolean).join('\n')
  const lines = text.split('\n')
  return lines.length > 40 ? lines.slice(-40).join('\n') : text
}

/** Every step from `from` in order; stops at the first failed check. */
export async function runAll(lab: Lab, o: BatchOptions): Promise<WalkthroughReport> {
  const started = Date.now()
  const from = o.from ?? 0
  const steps: StepReport[] = []
  let failedStep: WalkthroughReport['failedStep']
  for (const [i, step] of lab.steps.entries()) {
    const base = {number: i + 1, id: step.id, title: step.title, command: step.command}
    if (i < from) {
      steps.push({...base, status: 'skipped', message: 'before --from', durationMs: 0})
      continue
    }
    if (failedStep) {
      steps.push({...base, status: 'not-run', message: `not run: step ${failedStep.number} (${failedStep.id}) failed`, durationMs: 0})
      continue
    }
    o.onStepStart?.(step, i)
    const v = await o.runStep(step, {onOutput: o.onOutput, signal: o.signal})
    o.onStepDone?.(step, i, v)
    steps.push({...base, status: v.status, message: v.message, durationMs: v.durationMs, exitCode: v.command.exitCode, output: outputTail(v.command), checks: v.checks.map((c) => ({...(c.run ? {run: c.run, exitCode: c.process?.exitCode} : {}), ok: c.ok, criteria: c.criteria}))})
    if (v.status === 'fail') failedStep = {number: i + 1, id: step.id, title: step.title, message: v.message}
  }
  const count = (s: ReportStatus) => steps.filter((x) => x.status === s).length
  return {
    lab: {id: lab.id, title: lab.title, file: lab.file},
    status: failedStep ? 'fail' : 'pass',
    total: steps.length,
    passed: count('pass'),
    failed: count('fail'),
    skipped: count('skipped'),
    notRun: count('not-run'),
    ...(failedStep ? {failedStep} : {}),
    startedAt: new Date(started).toISOString(),
    durationMs: Date.now() - started,
    steps,
  }
}
