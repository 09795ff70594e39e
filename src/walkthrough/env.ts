// The environment steps run in: `mesh` on PATH (a shim to this package's bin/run.js when the
// participant has none), and KUBECONFIG pointing at the lab's cluster for kubectl steps,
// learnt from `mesh lab status --json` (result.kubeconfig) the first time a step needs it.
import {accessSync, constants, mkdirSync, readFileSync, writeFileSync, chmodSync} from 'node:fs'
import {delimiter, join} from 'node:path'
import {runShell, runStep, type CommandRunner, type StepHooks} from './runner.js'
import type {Step, StepVerdict} from './types.js'

/** The first executable called `name` on a PATH string, or undefined. */
export function findOnPath(name: string, path: string | undefined): string | undefined {
  for (const dir of (path ?? '').split(delimiter)) {
    if (!dir) continue
    const candidate = join(dir, name)
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // not here
    }
  }
  return undefined
}

const shQuote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`

/** Writes `<dir>/mesh`, a POSIX shell script running `node <runJs>`; returns the directory. */
export function writeMeshShim(dir: string, runJs: string, node = process.execPath): string {
  const file = join(dir, 'mesh')
  const text = `#!/bin/sh\n# written by mesh lab walkthrough: runs this package's CLI\nexec ${shQuote(node)} ${shQuote(runJs)} "$@"\n`
  mkdirSync(dir, {recursive: true})
  let current = ''
  try {
    current = readFileSync(file, 'utf8')
  } catch {
    // first time
  }
  if (current !== text) writeFileSync(file, text)
  chmodSync(file, 0o755)
  return dir
}

export const usesKubectl = (command: string): boolean => /(^|[\s;&|(`$])kubectl(\s|$)/.test(command)

export interface StepEnvironmentOptions {
  /** environment the walkthrough was started with */
  baseEnv: NodeJS.ProcessEnv
  /** working directory for every command (the package root, so `configs/…` paths resolve) */
  cwd: string
  /** this package's bin/run.js */
  meshRunJs: string
  /** where the `mesh` shim goes when `mesh` is not on PATH */
  shimDir: string
}

/** Builds each command's environment and runs commands in it. */
export class StepEnvironment {
  readonly cwd: string
  private env: NodeJS.ProcessEnv
  private kubeconfig: string | undefined
  /** why KUBECONFIG could not be learnt, for the hint shown when a kubectl step fails */
  lastKubeconfigProblem: string | undefined

  private needsShim: boolean

  constructor(readonly opts: StepEnvironmentOptions) {
    this.cwd = opts.cwd
    this.env = {...opts.baseEnv}
    this.needsShim = !findOnPath('mesh', this.env.PATH)
  }

  /** Puts the `mesh` shim first on PATH, the first time a command needs it. */
  private ensureMesh(): void {
    if (!this.needsShim) return
    const dir = writeMeshShim(this.opts.shimDir, this.opts.meshRunJs)
    this.env.PATH = this.env.PATH ? `${dir}${delimiter}${this.env.PATH}` : dir
    this.needsShim = false
  }

  /** The environment for one command; asks the lab for its kubeconfig before kubectl runs. */
  async envFor(command: string): Promise<NodeJS.ProcessEnv> {
    if (/(^|[^\w-])mesh(\s|$)/.test(command)) this.ensureMesh()
    if (usesKubectl(command) && this.kubeconfig === undefined) await this.learnKubeconfig()
    return {...this.env}
  }

  private async learnKubeconfig(): Promise<void> {
    this.ensureMesh()
    const r = await runShell('mesh lab status --json', {cwd: this.cwd, env: this.env, timeoutMs: 60_000})
    let found: unknown
    try {
      found = (JSON.parse(r.stdout) as {result?: {kubeconfig?: unknown}}).result?.kubeconfig
    } catch {
      found = undefined
    }
    if (typeof found === 'string' && found !== '') {
      this.kubeconfig = found
      this.env.KUBECONFIG = found
      this.lastKubeconfigProblem = undefined
    } else {
      // not cached: the lab may come up in a later step
      this.lastKubeconfigProblem = `\`mesh lab status --json\` gave no kubeconfig (exit ${r.exitCode ?? 'none'}); is the lab up?`
    }
  }

  /** A CommandRunner bound to this environment. */
  readonly run: CommandRunner = async (command, o) => runShell(command, {cwd: this.cwd, env: await this.envFor(command), ...o})
}

/** Runs steps in this environment; a failed kubectl step says when the lab gave no kubeconfig. */
export function stepExecutor(env: StepEnvironment): (step: Step, hooks?: StepHooks) => Promise<StepVerdict> {
  return async (step, hooks) => {
    const v = await runStep(step, env.run, hooks)
    if (v.status === 'fail' && usesKubectl(step.command) && env.lastKubeconfigProblem) return {...v, message: `${v.message} (${env.lastKubeconfigProblem})`}
    return v
  }
}
