// Base class for every mesh command: one JSON envelope, one error format, sysexits codes.
import {Command, Errors, Interfaces} from '@oclif/core'
import {EXIT, MeshError, isMeshError} from './errors.js'
import {colors, detectMode, progress, type OutputMode, type Progress} from './output.js'

export interface Envelope<T> {
  ok: boolean
  command: string
  result?: T
  error?: Record<string, unknown>
  warnings?: Array<{code: string; message: string}>
}

export abstract class MeshCommand<T> extends Command {
  static override enableJsonFlag = true
  protected warnings: Array<{code: string; message: string}> = []

  protected get mode(): OutputMode {
    return detectMode(this.jsonEnabled())
  }

  private progressUi?: Progress

  /** One progress object per run: a spinner started by stage() must be the one succeed() stops. */
  protected get ui(): Progress {
    this.progressUi ??= progress(this.mode)
    return this.progressUi
  }

  protected get c() {
    return colors(this.mode)
  }

  /**
   * Runs work that reports stages (lab up, lab down): each stage shows as a spinner, `done` ticks
   * it off, `info` prints a line; if work throws, the stage it was in is marked failed.
   */
  protected async withStages<R>(work: (onProgress: (p: {kind: 'stage' | 'done' | 'info'; text: string}) => void) => Promise<R>): Promise<R> {
    const ui = this.ui
    let current = ''
    try {
      return await work((p) => {
        if (p.kind === 'stage') ui.stage((current = p.text))
        else if (p.kind === 'done') ui.succeed(p.text)
        else ui.info(p.text)
      })
    } catch (error) {
      if (current) ui.fail(current)
      throw error
    }
  }

  /** Human-readable result lines go to stdout; silent under --json. */
  protected out(text = ''): void {
    if (!this.jsonEnabled()) process.stdout.write(text + '\n')
  }

  /** A warning with a code: stderr for people, `warnings` in the JSON envelope. */
  protected meshWarn(code: string, message: string): void {
    this.warnings.push({code, message})
    if (!this.jsonEnabled()) process.stderr.write(`${this.c.yellow('‼')} ${message} [${code}]\n`)
  }

  /** Let a command finish with a non-zero code (e.g. a failed check) and still print its result. */
  protected setExit(code: number): void {
    process.exitCode = code
  }

  /** `render canary`, as the user typed it, not oclif's `render:canary` id */
  protected get commandName(): string {
    return (this.id ?? '').replaceAll(':', ' ')
  }

  override toSuccessJson(result: unknown): Envelope<unknown> {
    return {ok: (process.exitCode ?? 0) === 0, command: this.commandName, result, ...(this.warnings.length ? {warnings: this.warnings} : {})}
  }

  override async catch(err: Error & {exitCode?: number; oclif?: {exit?: number}}): Promise<void> {
    // oclif uses ExitError for this.exit(); pass it through untouched.
    if (err instanceof Errors.ExitError) throw err
    const meshErr = toMeshError(err)
    process.exitCode = meshErr.exit
    if (this.jsonEnabled()) {
      const env: Envelope<never> = {ok: false, command: this.commandName, error: meshErr.toJSON()}
      process.stdout.write(JSON.stringify(env, null, 2) + '\n')
      return
    }
    const c = colors(detectMode(false))
    process.stderr.write(`${c.red('Error')} [${meshErr.code}]: ${meshErr.message}\n`)
    for (const cause of meshErr.causes) {
      if (cause.message !== meshErr.message) process.stderr.write(`  - ${cause.field}: ${cause.message}\n`)
    }
    if (meshErr.suggestion) process.stderr.write(`  ${c.dim('Suggestion:')} ${meshErr.suggestion}\n`)
    if (meshErr.exit === EXIT.internal && process.env.MESH_DEBUG) process.stderr.write(String(err.stack) + '\n')
  }
}

export function toMeshError(err: unknown): MeshError {
  if (isMeshError(err)) return err
  const e = err as Error & {oclif?: {exit?: number}; parse?: unknown}
  // oclif parse errors (unknown flag, missing arg, bad option) are usage errors: exit 64.
  if (e && (e.parse !== undefined || /Unexpected argument|Nonexistent flag|Missing required|Expected --|Expected a|Parsing --|must be one of/i.test(e.message ?? ''))) {
    return new MeshError('MESH_USAGE', firstLine(e.message), {suggestion: 'Run the command with --help to see its arguments and flags.', exit: EXIT.usage, cause: e})
  }
  return new MeshError('MESH_INTERNAL', firstLine(e?.message ?? String(err)), {
    suggestion: 'This is a bug in mesh; re-run with MESH_DEBUG=1 and report the output.',
    exit: EXIT.internal,
    cause: err,
  })
}

// oclif's parse errors put the detail on later lines ("Missing 1 required arg:\nweights  …"); keep them, drop the "See more help" trailer.
const firstLine = (s: string) =>
  s
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^See more help/i.test(l))
    .join(' ')
    .replace(/:\s+/, ': ') || s

export type Flags<T extends typeof Command> = Interfaces.InferredFlags<T['flags'] & T['baseFlags']>
