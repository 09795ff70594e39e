#!/usr/bin/env node
// `mesh canary shift` time including the wait for the proxies to acknowledge, on a real
// embedded lab (meshd with process pods and the ingress gateway) in a temp MESH_HOME.
// Build first: npm run build (or npx tsc -p tsconfig.json --noEmitOnError false)
//   node bench/canary-shift.mjs [--shifts 20] [--json]
//
// The CLI runs from a temp copy of the package with its oclif manifest, as `npm install` lays it
// out (bin/, dist/, package.json; node_modules, manifests/, configs/ linked). In a checkout,
// bin/run.js drops a manifest older than dist/ (every tsc run), and oclif then imports every
// command at start-up: that case is its own row.
//
// Rows, measured in the same run, shifts alternating 90/10 ↔ 50/50:
//   mesh canary shift (CLI)   THE target row: the whole command as a user runs it: node + oclif
//                             start-up, target selection, lock, read, server-side apply of both
//                             VirtualServices, propagation wait, output
//   propagation only          the part of it spent waiting for proxy acks
//   CLI without manifest      the same command when oclif has no manifest (a stale one in a checkout)
//   shiftCanary (library)     the same work in-process (what the command does after start-up)
//   node bin/run.js --version the CLI's start-up alone, for reference
import {spawnSync} from 'node:child_process'
import {cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {parseArgs} from 'node:util'

const {values} = parseArgs({options: {shifts: {type: 'string', default: '20'}, json: {type: 'boolean', default: false}}})
const shifts = Math.max(2, Math.min(100, Number(values.shifts)))
const root = new URL('..', import.meta.url).pathname

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]
}
const home = mkdtempSync(join(tmpdir(), 'mesh-bench-shift-'))
const env = {...process.env, MESH_HOME: home, CI: 'true', NO_COLOR: '1', MESH_CONTEXT: ''}
// the package as installed, with its oclif manifest; a second copy without one (the repo itself is left untouched)
const copyPackage = (manifest) => {
  const dir = mkdtempSync(join(tmpdir(), 'mesh-bench-pkg-'))
  cpSync(join(root, 'package.json'), join(dir, 'package.json'))
  cpSync(join(root, 'bin'), join(dir, 'bin'), {recursive: true})
  cpSync(join(root, 'dist'), join(dir, 'dist'), {recursive: true})
  for (const d of ['node_modules', 'manifests', 'configs', 'labs']) if (existsSync(join(root, d))) symlinkSync(join(root, d), join(dir, d))
  if (manifest) spawnSync('npx', ['oclif', 'manifest'], {cwd: dir, stdio: 'ignore', timeout: 120_000})
  if (manifest && !existsSync(join(dir, 'oclif.manifest.json'))) throw new Error('oclif manifest failed in the package copy')
  return dir
}
const pkg = copyPackage(true)
const bare = copyPackage(false)
const dist = new URL(`file://${pkg}/dist/`)
const {openLab} = await import(new URL('lab/open-target.js', dist).href)
const {shiftCanary} = await import(new URL('lab/canary.js', dist).href)

const mesh = (...args) => meshFrom(pkg, ...args)
const meshFrom = (dir, ...args) => {
  const t = performance.now()
  const r = spawnSync(process.execPath, [join(dir, 'bin/run.js'), ...args], {env, encoding: 'utf8', timeout: 120_000})
  const ms = performance.now() - t
  if (r.status !== 0) throw new Error(`mesh ${args.join(' ')} exited ${r.status}: ${r.stderr}`)
  return {ms, stdout: r.stdout}
}

const rows = {cli: [], cliSync: [], cliNoManifest: [], lib: [], libSync: [], startup: []}
let proxies = 0
try {
  mesh('lab', 'up')
  mesh('lab', 'reset')
  const splits = ['90/10', '50/50']
  for (let i = 0; i < shifts; i++) {
    // CLI and library interleaved so both see the same machine load
    const r = mesh('canary', 'shift', splits[i % 2], '--json')
    const res = JSON.parse(r.stdout).result
    rows.cli.push(r.ms)
    rows.cliSync.push(res.sync.waitedMs)
    proxies = res.sync.proxies
    const lab = await openLab({home, env})
    const t = performance.now()
    const l = await shiftCanary(lab, splits[(i + 1) % 2])
    rows.lib.push(performance.now() - t)
    rows.libSync.push(l.sync.waitedMs)
    await lab.close()
    rows.cliNoManifest.push(meshFrom(bare, 'canary', 'shift', splits[i % 2]).ms)
    if (i % 4 === 0) rows.startup.push(mesh('--version').ms)
  }
} finally {
  spawnSync(process.execPath, [join(pkg, 'bin/run.js'), 'lab', 'down', '--purge'], {env, timeout: 60_000})
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(home)) process.kill(Number(d), 'SIGKILL')
    } catch {
      // gone
    }
  }
  rmSync(home, {recursive: true, force: true})
  rmSync(pkg, {recursive: true, force: true})
  rmSync(bare, {recursive: true, force: true})
}

const summary = Object.fromEntries(Object.entries(rows).filter(([, xs]) => xs.length).map(([k, xs]) => [k, {n: xs.length, p50: quantile(xs, 0.5), p99: quantile(xs, 0.99)}]))
const ratio = summary.cli.p50 / summary.lib.p50
if (values.json) {
  console.log(JSON.stringify({shifts, proxies, summary, cliOverLibraryP50: ratio}, null, 2))
} else {
  const f = (x) => x.toFixed(1).padStart(8)
  console.log(`canary shift, ${shifts} shifts alternating 90/10 ↔ 50/50, ${proxies} proxies acknowledging (load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')})`)
  console.log('row                                   p50 ms    p99 ms')
  console.log(`mesh canary shift (CLI)             ${f(summary.cli.p50)}  ${f(summary.cli.p99)}`)
  console.log(`  of which propagation wait         ${f(summary.cliSync.p50)}  ${f(summary.cliSync.p99)}`)
  console.log(`CLI without an oclif manifest       ${f(summary.cliNoManifest.p50)}  ${f(summary.cliNoManifest.p99)}`)
  console.log(`shiftCanary (library, in-process)   ${f(summary.lib.p50)}  ${f(summary.lib.p99)}`)
  console.log(`  of which propagation wait         ${f(summary.libSync.p50)}  ${f(summary.libSync.p99)}`)
  console.log(`node bin/run.js --version           ${f(summary.startup.p50)}  ${f(summary.startup.p99)}`)
  console.log(`CLI / library p50: ${ratio.toFixed(1)}×  (target: CLI p50 ≤ 500 ms)`)
}
