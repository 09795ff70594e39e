// Shared by the lab integration tests: the real CLI in a temp MESH_HOME with extra env, and a
// cleanup that stops every meshd a test started (lab down, then the pid file as a fallback).
import {alive, killLeftoverMeshd, meshdPid, until} from '../../helpers/lab-process.js'
import {spawn, spawnSync} from 'node:child_process'
import {existsSync, mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join, resolve} from 'node:path'

export const ROOT = resolve(import.meta.dirname, '../../..')
export const FAKE_ISTIOCTL = join(ROOT, 'test/fixtures/istioctl/istioctl')
export const FAKE_KUBECTL = join(ROOT, 'test/fixtures/istioctl/kubectl-stand-in')

export interface Run {
  status: number | null
  stdout: string
  stderr: string
  json?: any // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** Compiles src/ into dist/ (no `rm -rf dist`; errors in other people's files do not stop the emit). */
export function build(): void {
  spawnSync('npx', ['tsc', '-p', 'tsconfig.json', '--noEmitOnError', 'false'], {cwd: ROOT, stdio: 'ignore'})
  if (!existsSync(join(ROOT, 'dist/local/meshd.js'))) throw new Error('build failed: dist/local/meshd.js missing')
}

export const tempHome = (prefix = 'mesh-lab-it-') => mkdtempSync(join(tmpdir(), prefix))

/** `mesh <args>` as a user runs it (not on a TTY, CI=true), asynchronously so the test process stays responsive. */
export function mesh(home: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin/run.js'), ...args], {
      cwd: ROOT,
      env: {...process.env, MESH_HOME: home, CI: 'true', NO_COLOR: '1', ...env},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000)
    child.on('error', reject)
    child.on('close', (status) => {
      clearTimeout(timer)
      let json
      if (args.includes('--json')) {
        try {
          json = JSON.parse(stdout)
        } catch {
          json = undefined
        }
      }
      resolvePromise({status, stdout, stderr, json})
    })
  })
}



/** Stop the embedded lab of `home` (lab down, then SIGKILL via the pid file if that failed) and remove the home. */
export async function cleanup(home: string | undefined): Promise<void> {
  if (!home) return
  const pid = meshdPid(home)
  await mesh(home, ['lab', 'down', '--purge', '--timeout', '10'], {MESH_CONTEXT: ''}).catch(() => undefined)
  killLeftoverMeshd(home, pid)
  rmSync(home, {recursive: true, force: true})
}

export {alive, meshdPid, until}
