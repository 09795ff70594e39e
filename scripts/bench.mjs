#!/usr/bin/env node
// npm run bench: build once, then every benchmark in bench/ in turn (each prints its own table).
// Results are recorded in docs/benchmarks.md with the command that produced them.
import {spawnSync} from 'node:child_process'
import {readdirSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const only = process.argv.slice(2)
const run = (cmd, args) => spawnSync(cmd, args, {cwd: root, stdio: 'inherit'}).status ?? 1
if (run('npm', ['run', '--silent', 'build']) !== 0) process.exit(1)
let failed = 0
for (const f of readdirSync(join(root, 'bench')).filter((f) => f.endsWith('.mjs')).sort()) {
  if (only.length && !only.some((o) => f.includes(o))) continue
  console.log(`\n=== bench/${f}`)
  if (run(process.execPath, [join('bench', f)]) !== 0) failed++
}
process.exit(failed ? 1 : 0)
