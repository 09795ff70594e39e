// Runs documented commands the way a reader would type them, against one embedded lab in a
// temporary home (docs/adr/0140). `mesh` and `./bin/run.js` are `node bin/run.js`, `kubectl`
// gets the lab's kubeconfig, `npm run demo` runs scripts/demo.mjs without its build step.
import {existsSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {execa} from 'execa'
import {splitAnd, type DocCommand} from './extract.js'

export interface Sandbox {
  root: string
  /** HOME for every command, so `~/.mesh` and `~/.kube` never touch the real ones */
  home: string
  /** MESH_HOME = <home>/.mesh */
  meshHome: string
  /** per-page working directory (files a command writes land here) */
  cwd: string
  /** directory with the `mesh` and `kubectl` wrappers, first on PATH */
  shims: string
  env: Record<string, string>
}

export function createSandbox(root: string, dir: string): Sandbox {
  const home = join(dir, 'home')
  const meshHome = join(home, '.mesh')
  const shims = join(dir, 'bin')
  const cwd = join(dir, 'work')
  const kubeCache = join(dir, 'kube-cache')
  for (const d of [home, shims, cwd, kubeCache]) mkdirSync(d, {recursive: true})
  const kubectl = findOnPath('kubectl')
  writeFileSync(join(shims, 'mesh'), `#!/bin/sh\nexec "${process.execPath}" "${join(root, 'bin', 'run.js')}" "$@"\n`, {mode: 0o755})
  if (kubectl) {
    // the lab's kubeconfig unless the command names its own
    writeFileSync(
      join(shims, 'kubectl'),
      `#!/bin/sh\ncase " $* " in *" --kubeconfig"*) exec "${kubectl}" --cache-dir "${kubeCache}" "$@" ;; esac\n` +
        `exec "${kubectl}" --kubeconfig "${join(meshHome, 'kubeconfig')}" --cache-dir "${kubeCache}" "$@"\n`,
      {mode: 0o755},
    )
  }
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) {
    // the reader's own targets and vitest's worker settings stay out of the commands
    if (v === undefined || k.startsWith('MESH_') || k.startsWith('VITEST') || k === 'KUBECONFIG' || k === 'NODE_OPTIONS') continue
    env[k] = v
  }
  Object.assign(env, {
    HOME: home,
    MESH_HOME: meshHome,
    KUBECONFIG: join(meshHome, 'kubeconfig'),
    PATH: `${shims}:${process.env.PATH ?? ''}`,
    CI: 'true',
    NO_COLOR: '1',
  })
  return {root, home, meshHome, cwd, shims, env}
}

function findOnPath(bin: string): string | undefined {
  for (const d of (process.env.PATH ?? '').split(':')) if (d && existsSync(join(d, bin))) return join(d, bin)
  return undefined
}

/** What the test does with one `&&` part of a documented command. */
export type Step =
  | {kind: 'run'; shell: string; note?: string}
  | {kind: 'not-run'; reason: string; /** a check that what the part stands for is really done elsewhere */ verify: (root: string) => string | undefined}

const fileHas = (root: string, file: string, needle: RegExp): string | undefined =>
  needle.test(readFileSync(join(root, file), 'utf8')) ? undefined : `${file} does not run ${needle.source}`

/** The rules for the project's own toolchain commands (docs/adr/0140). */
export function planStep(part: string, root: string): Step {
  if (/^npm ci\b/.test(part)) {
    return {
      kind: 'not-run',
      reason: 'reinstalls node_modules under the running test suite; CI (.ci/run) runs it before npm test',
      verify: (r) => fileHas(r, '.ci/run', /^npm ci\b/m),
    }
  }
  if (/^npm (test|t)\b|^npm run test\b/.test(part)) {
    return {kind: 'not-run', reason: 'is this test suite itself; CI (.ci/run) runs it', verify: (r) => fileHas(r, '.ci/run', /^npm test\b/m)}
  }
  if (/^npm run build\b|^npx tsc\b/.test(part)) {
    return {
      kind: 'not-run',
      reason: 'rebuilding dist/ while other test files import it would break them; npm test builds before the suite runs',
      verify: (r) => fileHas(r, 'scripts/test.mjs', /npm run build/) ?? fileHas(r, 'package.json', /"build": "[^"]*tsc -p tsconfig\.json/),
    }
  }
  const demo = /^npm run demo\b(.*)$/.exec(part)
  if (demo) {
    return {kind: 'run', shell: `MESH_DEMO_SKIP_BUILD=1 node ${q(join(root, 'scripts', 'demo.mjs'))}${demo[1]}`, note: 'npm run demo with the build skipped (the suite runs on a fresh build)'}
  }
  const bin = /^(?:\.\/)?bin\/run\.js\b(.*)$/.exec(part)
  if (bin) return {kind: 'run', shell: `mesh${bin[1]}`}
  const node = /^node\s+(\S+)(.*)$/.exec(part)
  if (node && !node[1]!.startsWith('/') && !node[1]!.startsWith('-') && existsSync(join(root, node[1]!))) {
    return {kind: 'run', shell: `node ${q(join(root, node[1]!))}${node[2]}`}
  }
  return {kind: 'run', shell: part}
}

const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`

/** `--context X` on a mesh command, X not the embedded lab's context. */
export function realContextOf(shell: string): string | undefined {
  if (!/^mesh\b/.test(shell)) return undefined
  const m = /--context(?:=|\s+)(\S+)/.exec(shell)
  return m && m[1] !== 'mesh-local' ? m[1] : undefined
}

export interface CommandPlan {
  doc: DocCommand
  /** the shell line that runs (undefined: nothing runs) */
  shell?: string
  expectExit: number
  expectCodes: string[]
  notRun: Array<{part: string; reason: string; verify: (root: string) => string | undefined}>
  notes: string[]
}

export function planCommand(doc: DocCommand, root: string): CommandPlan {
  const plan: CommandPlan = {doc, expectExit: doc.expectExit ?? 0, expectCodes: [...doc.expectCodes], notRun: [], notes: []}
  if (doc.skip) return plan
  const run: string[] = []
  for (const part of splitAnd(doc.command)) {
    const s = planStep(part, root)
    if (s.kind === 'not-run') plan.notRun.push({part, reason: s.reason, verify: s.verify})
    else {
      run.push(s.shell)
      if (s.note) plan.notes.push(s.note)
      const ctx = realContextOf(s.shell)
      if (ctx !== undefined && doc.expectExit === undefined) {
        // a real-cluster command: the sandbox kubeconfig has no such context, so mesh must parse
        // every flag and then stop before contacting anything
        plan.expectExit = 65
        plan.expectCodes.push('MESH_CONTEXT_NOT_FOUND')
        plan.notes.push(`real-cluster context "${ctx}": checked to parse and to stop at MESH_CONTEXT_NOT_FOUND`)
      }
    }
  }
  if (run.length > 0) plan.shell = run.join(' && ')
  return plan
}

export interface RunResult {
  exitCode: number
  stdout: string
  stderr: string
  ms: number
  timedOut: boolean
}

export async function runShell(sb: Sandbox, shell: string, timeoutMs: number): Promise<RunResult> {
  const started = performance.now()
  const r = await execa('bash', ['-o', 'pipefail', '-c', shell], {
    cwd: sb.cwd,
    env: sb.env,
    extendEnv: false,
    reject: false,
    timeout: timeoutMs,
    forceKillAfterDelay: 5_000,
    stdin: 'ignore',
    killSignal: 'SIGINT',
  })
  return {
    exitCode: r.exitCode ?? (r.timedOut ? 124 : 1),
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? ''),
    ms: Math.round(performance.now() - started),
    timedOut: Boolean(r.timedOut),
  }
}

export const tail = (s: string, n = 12): string =>
  s
    .trimEnd()
    .split('\n')
    .slice(-n)
    .map((l) => `      ${l}`)
    .join('\n')
