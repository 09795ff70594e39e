// Runs a step: the command through a shell, then its verifying commands, all inside the
// step's time budget; evaluates the checks and returns a verdict. No terminal I/O here:
// output reaches the caller through `onOutput`.
import {StringDecoder} from 'node:string_decoder'
import {execa} from 'execa'
import {describeCheck, evaluateCheck} from './checks.js'
import type {Check, CheckOutcome, ProcessResult, Step, StepVerdict} from './types.js'

export type OutputStream = 'stdout' | 'stderr'

export interface ShellOptions {
  cwd: string
  env: NodeJS.ProcessEnv
  timeoutMs: number
  signal?: AbortSignal
  onOutput?: (chunk: string, stream: OutputStream) => void
  /** bytes kept per stream (the tail); default 1 MiB */
  maxOutputBytes?: number
}

const KILL_GRACE_MS = 2000

/**
 * Runs one command line with /bin/sh in its own process group, so a timeout or an interrupt
 * stops the whole pipeline, not only the shell. Never throws for a failing command.
 */
export async function runShell(command: string, opts: ShellOptions): Promise<ProcessResult> {
  const started = Date.now()
  const cap = opts.maxOutputBytes ?? 1024 * 1024
  const base: Omit<ProcessResult, 'durationMs'> = {command, exitCode: null, stdout: '', stderr: '', timedOut: false, interrupted: false}
  if (opts.timeoutMs <= 0) return {...base, timedOut: true, durationMs: 0}
  if (opts.signal?.aborted) return {...base, interrupted: true, durationMs: 0}
  const sub = execa(command, {
    shell: true,
    cwd: opts.cwd,
    env: opts.env,
    extendEnv: false,
    stdin: 'ignore',
    buffer: false,
    reject: false,
    detached: true,
    cleanup: true,
  })
  const collected = {stdout: [] as Buffer[], stderr: [] as Buffer[]}
  const sizes = {stdout: 0, stderr: 0}
  let truncated = false
  for (const name of ['stdout', 'stderr'] as const) {
    const decoder = new StringDecoder('utf8')
    sub[name]?.on('data', (chunk: Buffer) => {
      collected[name].push(chunk)
      sizes[name] += chunk.length
      while (sizes[name] > cap && collected[name].length > 1) {
        sizes[name] -= collected[name].shift()!.length
        truncated = true
      }
      if (opts.onOutput) {
        const text = decoder.write(chunk)
        if (text) opts.onOutput(text, name)
      }
    })
  }
  let timedOut = false
  let interrupted = false
  let killTimer: NodeJS.Timeout | undefined
  const killGroup = (sig: NodeJS.Signals) => {
    if (sub.pid === undefined) return
    try {
      process.kill(-sub.pid, sig)
    } catch {
      // already gone
    }
  }
  const stop = () => {
    killGroup('SIGTERM')
    killTimer ??= setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS)
    killTimer.unref()
  }
  const timer = setTimeout(() => {
    timedOut = true
    stop()
  }, opts.timeoutMs)
  const onAbort = () => {
    interrupted = true
    stop()
  }
  opts.signal?.addEventListener('abort', onAbort, {once: true})
  let spawnError: string | undefined
  let exitCode: number | null = null
  try {
    const r = await sub
    exitCode = typeof r.exitCode === 'number' ? r.exitCode : null
    if (r.failed && r.exitCode === undefined && !r.signal && !timedOut && !interrupted) spawnError = r.shortMessage
  } catch (e) {
    spawnError = (e as Error).message
  } finally {
    clearTimeout(timer)
    if (killTimer) clearTimeout(killTimer)
    opts.signal?.removeEventListener('abort', onAbort)
  }
  let stdout = Buffer.concat(collected.stdout).toString('utf8')
  let stderr = Buffer.concat(collected.stderr).toString('utf8')
  if (sizes.stdout > cap) stdout = stdout.slice(-cap)
  if (sizes.stderr > cap) stderr = stderr.slice(-cap)
  if (spawnError) stderr += (stderr && !stderr.endsWith('\n') ? '\n' : '') + spawnError
  return {
    command,
    exitCode: timedOut || interrupted ? null : exitCode,
    stdout,
    stderr,
    durationMs: Date.now() - started,
    timedOut,
    interrupted,
    ...(truncated ? {truncated} : {}),
  }
}

export interface StepHooks {
  signal?: AbortSignal
  /** output of the step's command and of its verifying commands, as it arrives */
  onOutput?: (chunk: string, stream: OutputStream, source: {kind: 'command' | 'check'; command: string}) => void
  /** a verifying command is about to run */
  onCheckRun?: (command: string) => void
}

/** Runs one command with the environment and working directory of the walkthrough. */
export type CommandRunner = (command: string, opts: {timeoutMs: number; signal?: AbortSignal; onOutput?: (chunk: string, stream: OutputStream) => void}) => Promise<ProcessResult>

/** One line saying why a step passed or failed. */
export function verdictMessage(outcomes: readonly CheckOutcome[]): string {
  for (const o of outcomes) {
    const bad = o.criteria.find((c) => !c.ok)
    if (bad) return `${o.run ? `\`${o.run}\`: ` : ''}expected ${bad.expectation}${bad.actual ? `; got ${bad.actual}` : ''}`
  }
  return outcomes
    .flatMap((o) => (o.run ? [`\`${o.run}\` passed`] : o.criteria.map((c) => c.expectation)))
    .join('; ')
}

/**
 * Runs the step's command, then each check (a verifying command when the check has `run`,
 * each distinct one once), all within `step.timeoutMs`. Every check must pass.
 */
export async function runStep(step: Step, run: CommandRunner, hooks: StepHooks = {}): Promise<StepVerdict> {
  const started = Date.now()
  const deadline = started + step.timeoutMs
  const remaining = () => deadline - Date.now()
  const command = await run(step.command, {
    timeoutMs: remaining(),
    signal: hooks.signal,
    onOutput: hooks.onOutput && ((c, s) => hooks.onOutput!(c, s, {kind: 'command', command: step.command})),
  })
  const outcomes: CheckOutcome[] = []
  const verifying = new Map<string, ProcessResult>()
  for (const check of step.checks) {
    let target = command
    if (check.run) {
      let r = verifying.get(check.run)
      if (!r) {
        const cmd = check.run
        // a failed command makes its verifying commands moot; don't spend the budget on them
        if (command.timedOut || command.interrupted) {
          outcomes.push({run: cmd, criteria: [{ok: false, expectation: describeCheck(check), actual: 'not run: the step command did not finish'}], ok: false})
          continue
        }
        hooks.onCheckRun?.(cmd)
        r = await run(cmd, {
          timeoutMs: remaining(),
          signal: hooks.signal,
          onOutput: hooks.onOutput && ((c, s) => hooks.onOutput!(c, s, {kind: 'check', command: cmd})),
        })
        verifying.set(cmd, r)
      }
      target = r
    }
    const criteria = evaluateCheck(check as Check, target)
    outcomes.push({...(check.run ? {run: check.run, process: target} : {}), criteria, ok: criteria.every((c) => c.ok)})
  }
  const ok = outcomes.every((o) => o.ok)
  return {stepId: step.id, status: ok ? 'pass' : 'fail', message: verdictMessage(outcomes), command, checks: outcomes, durationMs: Date.now() - started}
}
