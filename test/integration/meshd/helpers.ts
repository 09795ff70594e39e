// Shared by the meshd integration tests: build once, temp mesh homes, the real CLI and kubectl,
// and a cleanup that stops every meshd a test started (lab down, then the pid file).
import {buildIfStale, ROOT} from '../../helpers/build.js'
import {alive, killLeftoverMeshd, meshdPid, until} from '../../helpers/lab-process.js'
import {execFileSync, spawnSync, type SpawnSyncReturns} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

export {ROOT}

/** Compiles src/ into dist/ when dist/ is older than the sources. */
export const ensureBuilt = (): void => buildIfStale('dist/local/meshd.js')

export function tempHome(prefix = 'mesh-it-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

export interface Run {
  status: number | null
  stdout: string
  stderr: string
  json?: any // eslint-disable-line @typescript-eslint/no-explicit-any
}

const wrap = (r: SpawnSyncReturns<string>, parse: boolean): Run => {
  let json
  if (parse) {
    try {
      json = JSON.parse(r.stdout)
    } catch {
      json = undefined
    }
  }
  return {status: r.status, stdout: r.stdout, stderr: r.stderr, json}
}

/** `mesh <args>` with MESH_HOME=home, as a user runs it. */
export function mesh(home: string, ...args: string[]): Run {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/run.js'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: {...process.env, MESH_HOME: home, CI: 'true', NO_COLOR: '1'},
    timeout: 90_000,
  })
  return wrap(r, args.includes('--json'))
}

/** The real kubectl against the lab's kubeconfig, with its own discovery cache. */
export function kubectl(home: string, ...args: string[]): Run {
  const r = spawnSync('kubectl', ['--kubeconfig', join(home, 'kubeconfig'), '--cache-dir', join(home, 'kube-cache'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 90_000,
  })
  return wrap(r, args.includes('json'))
}



/** Stops the lab of `home` (lab down; SIGKILL through the pid file if that fails) and removes the home. */
export function cleanup(home: string | undefined): void {
  if (!home) return
  const pid = meshdPid(home)
  try {
    mesh(home, 'lab', 'down', '--timeout', '10')
  } catch {
    // fall through to the pid file
  }
  killLeftoverMeshd(home, pid)
  rmSync(home, {recursive: true, force: true})
}


export const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, {encoding: 'utf8'})

export {alive, meshdPid, until}
