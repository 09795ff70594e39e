// Where human output goes and whether it may be decorated. Commands print results to
// stdout; progress and diagnostics go to stderr, and vanish under --json.
import {createRequire} from 'node:module'
import {Chalk, type ChalkInstance} from 'chalk'
import type {Ora} from 'ora'

/** ora (~40 ms to import) is loaded only when a spinner is shown: not under --json, in CI or into a pipe. */
const loadOra = (): typeof import('ora').default => (createRequire(import.meta.url)('ora') as typeof import('ora')).default

export interface OutputMode {
  json: boolean
  /** true when stderr is a terminal and we are not in CI: spinners and colour allowed */
  interactive: boolean
}

export function detectMode(json: boolean, env: NodeJS.ProcessEnv = process.env): OutputMode {
  const ci = Boolean(env.CI && env.CI !== 'false' && env.CI !== '0')
  return {json, interactive: Boolean(process.stderr.isTTY) && !ci && env.TERM !== 'dumb'}
}

export interface Progress {
  stage(text: string): void
  succeed(text?: string): void
  fail(text?: string): void
  info(text: string): void
}

/** Staged progress: an ora spinner on a TTY, plain lines on stderr otherwise, nothing under --json. */
export function progress(mode: OutputMode): Progress {
  if (mode.json) return {stage() {}, succeed() {}, fail() {}, info() {}}
  if (!mode.interactive) {
    let current = ''
    return {
      stage(text) {
        current = text
        process.stderr.write(`… ${text}\n`)
      },
      succeed(text) {
        process.stderr.write(`✔ ${text ?? current}\n`)
      },
      fail(text) {
        process.stderr.write(`× ${text ?? current}\n`)
      },
      info(text) {
        process.stderr.write(`  ${text}\n`)
      },
    }
  }
  let spinner: Ora | undefined
  return {
    stage(text) {
      if (spinner) spinner.text = text
      else spinner = loadOra()({text, stream: process.stderr}).start()
    },
    succeed(text) {
      spinner?.succeed(text)
      spinner = undefined
    },
    fail(text) {
      spinner?.fail(text)
      spinner = undefined
    },
    info(text) {
      if (spinner) spinner.info(text)
      else process.stderr.write(`ℹ ${text}\n`)
      spinner = undefined
    },
  }
}

/** Colour only on an interactive terminal without NO_COLOR. */
export function colors(mode: OutputMode): ChalkInstance {
  return new Chalk({level: mode.interactive && !process.env.NO_COLOR ? 1 : 0})
}
