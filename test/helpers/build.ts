// Test suites run the compiled CLI and daemons from dist/: compile when dist/ is older than src/.
// Plain `tsc` (never `rm -rf dist`), so other tests running compiled files at the same time are
// not pulled from under them; errors in files still being written do not stop the emit.
import {spawnSync} from 'node:child_process'
import {existsSync, readdirSync, statSync} from 'node:fs'
import {join, resolve} from 'node:path'

export const ROOT = resolve(import.meta.dirname, '../..')

/** Newest modification time of any file under dir. */
export function newest(dir: string): number {
  let m = 0
  for (const e of readdirSync(dir, {withFileTypes: true})) {
    const p = join(dir, e.name)
    m = Math.max(m, e.isDirectory() ? newest(p) : statSync(p).mtimeMs)
  }
  return m
}

/** Builds unless `entry` exists and dist/<sub> is newer than src/<sub>; throws if entry is still missing. */
export function buildIfStale(entry: string, sub = ''): void {
  const path = join(ROOT, entry)
  if (existsSync(path) && newest(join(ROOT, 'dist', sub)) >= newest(join(ROOT, 'src', sub))) return
  spawnSync('npx', ['tsc', '-p', 'tsconfig.json', '--noEmitOnError', 'false'], {cwd: ROOT, stdio: 'ignore'})
  if (!existsSync(path)) throw new Error(`build failed: ${entry} missing`)
}
