// Every failure a user can see is a MeshError: a stable code, a message naming the bad
// value, a one-line suggestion and a sysexits-style exit code (see EXIT_CODES).

export const EXIT = {
  ok: 0,
  checkFailed: 1,
  inconclusive: 2,
  usage: 64,
  invalidInput: 65,
  unavailable: 69,
  internal: 70,
} as const

export type ExitCode = (typeof EXIT)[keyof typeof EXIT]

export const EXIT_CODES: ReadonlyArray<{code: ExitCode; meaning: string}> = [
  {code: 0, meaning: 'ok'},
  {code: 1, meaning: 'a check failed'},
  {code: 2, meaning: 'inconclusive (e.g. request budget used up before a decision)'},
  {code: 64, meaning: 'usage error (unknown flag, missing argument)'},
  {code: 65, meaning: 'invalid input (weights, YAML, policy fields)'},
  {code: 69, meaning: 'cluster or lab unavailable'},
  {code: 70, meaning: 'internal error'},
]

export interface FieldCause {
  field: string
  message: string
  value?: unknown
}

export interface MeshErrorOptions {
  suggestion?: string
  exit?: ExitCode
  field?: string
  causes?: FieldCause[]
  cause?: unknown
}

export class MeshError extends Error {
  readonly code: string
  readonly suggestion: string
  readonly exit: ExitCode
  readonly field?: string
  readonly causes: FieldCause[]

  constructor(code: string, message: string, opts: MeshErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : {cause: opts.cause})
    this.name = 'MeshError'
    this.code = code
    this.suggestion = opts.suggestion ?? ''
    this.exit = opts.exit ?? EXIT.invalidInput
    this.field = opts.field
    this.causes = opts.causes ?? (opts.field ? [{field: opts.field, message}] : [])
  }

  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      suggestion: this.suggestion,
      exitCode: this.exit,
      ...(this.field ? {field: this.field} : {}),
      ...(this.causes.length > 0 ? {causes: this.causes} : {}),
    }
  }
}

export const isMeshError = (e: unknown): e is MeshError => e instanceof MeshError

/** Input the user gave is wrong (exit 65). */
export const invalid = (code: string, message: string, suggestion: string, field?: string): MeshError =>
  new MeshError(code, message, {suggestion, field, exit: EXIT.invalidInput})

/** The cluster or lab cannot be reached (exit 69). */
export const unavailable = (code: string, message: string, suggestion: string, cause?: unknown): MeshError =>
  new MeshError(code, message, {suggestion, exit: EXIT.unavailable, cause})

/** Wrong use of the command line (exit 64). */
export const usage = (code: string, message: string, suggestion: string): MeshError =>
  new MeshError(code, message, {suggestion, exit: EXIT.usage})
