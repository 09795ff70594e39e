// A lab is data: metadata, setup commands and ordered steps, each with a command a person
// would type and a check that decides pass or fail (ADR 0090).

/** One JSON assertion on a command's stdout, parsed as JSON. */
export interface JsonCheck {
  /** dotted path into the document, e.g. `result.verdict` or `result.checks[0].status` */
  path: string
  /** deep-equal to this value */
  equals?: unknown
  /** substring of a string value, or an element of an array value */
  contains?: unknown
  /** true: the path resolves to a value (not undefined); false: it does not */
  exists?: boolean
  /** regular expression the string value matches */
  matches?: string
}

/**
 * Criteria that must all hold. Without `run` they apply to the step's own command; with
 * `run` a separate verifying command is run after the step's command and they apply to it.
 */
export interface Check {
  run?: string
  exitCode?: number
  stdoutContains?: string[]
  stdoutNotContains?: string[]
  stdoutMatches?: string
  stderrContains?: string[]
  json?: JsonCheck[]
}

export interface Step {
  id: string
  title: string
  /** Markdown shown to the participant before the command */
  explanation: string
  /** exactly what a person would type */
  command: string
  /** all must pass */
  checks: Check[]
  /** budget for the command and its verifying commands together */
  timeoutMs: number
  /** 1-based line of the step heading in the lab file */
  line: number
}

/** Something that must hold before the first step; checked when `check` is given. */
export interface Prerequisite {
  title: string
  check?: Check
  /** what to do when it does not hold */
  hint?: string
}

export interface Lab {
  id: string
  title: string
  summary: string
  minutes: number
  prerequisites: Prerequisite[]
  /** commands that return the lab to this lab's starting state (`--reset`) */
  setup: string[]
  /** Markdown before the first step */
  intro: string
  steps: Step[]
  /** path the lab was read from */
  file: string
}

export const DEFAULT_STEP_TIMEOUT_MS = 120_000

/** The result of one shell command. */
export interface ProcessResult {
  command: string
  /** null when killed by a signal (timeout, interrupt) */
  exitCode: number | null
  stdout: string
  stderr: string
  durationMs: number
  timedOut: boolean
  interrupted: boolean
  /** set when output beyond the capture limit was dropped */
  truncated?: boolean
}

export interface CriterionResult {
  ok: boolean
  /** the expectation, e.g. `exit code 0`, `stdout contains "v2"` */
  expectation: string
  /** what was seen when it failed */
  actual?: string
}

export interface CheckOutcome {
  /** the verifying command, when the check had one */
  run?: string
  process?: ProcessResult
  criteria: CriterionResult[]
  ok: boolean
}

export type StepStatus = 'pass' | 'fail'

export interface StepVerdict {
  stepId: string
  status: StepStatus
  /** one line: why */
  message: string
  command: ProcessResult
  checks: CheckOutcome[]
  durationMs: number
}
