#!/usr/bin/env node
// `mesh lab up` start times. Each run uses a fresh temp MESH_HOME.
// Build first: npm run build (or npx tsc -p tsconfig.json --noEmitOnError false)
//   node bench/lab-up.mjs [--runs 5] [--json]
//
// The CLI runs from a temp copy of the package with its oclif manifest, as `npm install` would
// lay it out (bin/, dist/, package.json; node_modules, manifests/, configs/ linked): in a checkout
// bin/run.js drops a manifest older than dist/ (every tsc run), which would make every command
// import all the others and measure that instead.
//
// Rows, measured in the same run:
//   cold, virtual pods   meshd alone, from spawn to /readyz: token, CA and serving certificate,
//                        mesh CA, empty store
//   warm, virtual pods   the same home again after `lab down` (state loaded from disk)
//   cold, process pods   as cold, plus the ingress gateway process meshd starts and waits for
//   lab up, virtual      the whole `mesh lab up` command (oclif start-up included), cold:
//                        meshd, the lab applied, Deployments Available, pods Ready (no processes)
//   lab up, full         THE target row: `mesh lab up` as a user runs it (process pods, the
//                        default), cold, until every pod is Ready and every proxy SYNCED
//   lab up, again        `mesh lab up` on the running lab: nothing changes (all unchanged)
// After the full row: the CPU time each process of that lab up used (the machine has 2 cores, so
// the sum over 2 bounds how fast the lab can come up), read from /proc when the command returns.
import {spawnSync} from 'node:child_process'
import {cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {parseArgs} from 'node:util'

const {values} = parseArgs({options: {runs: {type: 'string', default: '5'}, json: {type: 'boolean', default: false}}})
const runs = Math.max(1, Math.min(20, Number(values.runs)))
const root = new URL('..', import.meta.url).pathname

// the package as installed, with its manifest
const pkg = mkdtempSync(join(tmpdir(), 'mesh-bench-pkg-'))
cpSync(join(root, 'package.json'), join(pkg, 'package.json'))
cpSync(join(root, 'bin'), join(pkg, 'bin'), {recursive: true})
cpSync(join(root, 'dist'), join(pkg, 'dist'), {recursive: true})
for (const d of ['node_modules', 'manifests', 'configs', 'labs']) if (existsSync(join(root, d))) symlinkSync(join(root, d), join(pkg, d))
spawnSync('npx', ['oclif', 'manifest'], {cwd: pkg, stdio: 'ignore', timeout: 120_000})
if (!existsSync(join(pkg, 'oclif.manifest.json'))) throw new Error('oclif manifest failed in the package copy')
const {spawnMeshd, stopMeshd} = await import(new URL(`file://${join(pkg, 'dist/cluster/meshd-process.js')}`).href)

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]
}

const homes = []
const newHome = () => {
  const h = mkdtempSync(join(tmpdir(), 'mesh-bench-'))
  homes.push(h)
  return h
}
const mesh = (home, ...args) => spawnSync(process.execPath, [join(pkg, 'bin/run.js'), ...args], {env: {...process.env, MESH_HOME: home, CI: 'true', MESH_CONTEXT: ''}, encoding: 'utf8'})

const TICK_MS = 1000 / Number(spawnSync('getconf', ['CLK_TCK'], {encoding: 'utf8'}).stdout.trim() || 100)
/** user+system CPU ms of a process, and its command name */
const cpuOf = (pid) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return {ms: (Number(f[11]) + Number(f[12])) * TICK_MS, name: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))}
}
const childrenOf = (pid) =>
  readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const st = readFileSync(`/proc/${d}/stat`, 'utf8')
        return Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]) === pid
      } catch {
        return false
      }
    })
    .map(Number)
/** CPU ms of meshd, the gateway and the pods of a running lab */
function labCpu(home) {
  const meshd = Number(readFileSync(join(home, 'local/meshd.pid'), 'utf8').trim())
  const out = {meshd: cpuOf(meshd).ms, gateway: 0, sidecarPods: [], plainPods: []}
  for (const c of childrenOf(meshd)) {
    try {
      const {ms} = cpuOf(c)
      const cmd = readFileSync(`/proc/${c}/cmdline`, 'utf8')
      if (cmd.includes('gateway-main')) out.gateway = ms
      else if (cmd.startsWith('mesh-pod ')) {
        // a pod's log says whether its sidecar started (`mesh-pod <ns>/<name>` → <ns>_<name>.log)
        const log = join(home, 'local/pods', `${cmd.slice('mesh-pod '.length).replace(/\0/g, '').trim().replace('/', '_')}.log`)
        ;(existsSync(log) && readFileSync(log, 'utf8').includes('"src":"sidecar"') ? out.sidecarPods : out.plainPods).push(ms)
      }
    } catch {
      // exited meanwhile
    }
  }
  return out
}

const rows = {cold: [], warm: [], coldProcess: [], cli: [], full: [], again: []}
const lib = []
const cpu = []
try {
  for (let i = 0; i < runs; i++) {
    const h = newHome()
    let t = performance.now()
    await spawnMeshd({home: h, runtime: 'virtual'})
    rows.cold.push(performance.now() - t)
    await stopMeshd({home: h})
    t = performance.now()
    await spawnMeshd({home: h, runtime: 'virtual'})
    rows.warm.push(performance.now() - t)
    await stopMeshd({home: h, purge: true})

    const hp = newHome()
    t = performance.now()
    await spawnMeshd({home: hp, runtime: 'process'})
    rows.coldProcess.push(performance.now() - t)
    await stopMeshd({home: hp, purge: true})

    const hc = newHome()
    t = performance.now()
    const r = mesh(hc, 'lab', 'up', '--runtime', 'virtual')
    rows.cli.push(performance.now() - t)
    if (r.status !== 0) throw new Error(`mesh lab up failed: ${r.stderr}`)
    await stopMeshd({home: hc, purge: true})

    const hf = newHome()
    const childBefore = readFileSync('/proc/self/stat', 'utf8')
    t = performance.now()
    const full = mesh(hf, 'lab', 'up', '--json')
    rows.full.push(performance.now() - t)
    if (full.status !== 0) throw new Error(`mesh lab up failed: ${full.stdout} ${full.stderr}`)
    const res = JSON.parse(full.stdout).result
    if (res.rollout.ready !== res.rollout.pods || !res.proxies.synced) throw new Error(`mesh lab up returned before the lab was ready: ${full.stdout}`)
    // the CLI's CPU from this process's cutime+cstime (waited-for children); the lab's from /proc
    const reaped = (st) => {
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ')
      return (Number(f[13]) + Number(f[14])) * TICK_MS
    }
    const cliMs = reaped(readFileSync('/proc/self/stat', 'utf8')) - reaped(childBefore)
    cpu.push({cli: cliMs, ...labCpu(hf)})
    lib.push({ms: res.elapsedMs, pods: res.rollout.ready, proxies: res.proxies.count, stages: res.stagesMs})
    t = performance.now()
    const again = mesh(hf, 'lab', 'up', '--json')
    rows.again.push(performance.now() - t)
    if (again.status !== 0 || JSON.parse(again.stdout).result.changed !== false) throw new Error(`second mesh lab up changed something: ${again.stdout}`)
    await stopMeshd({home: hf, purge: true})
  }
} finally {
  for (const h of homes) {
    await stopMeshd({home: h, purge: true}).catch(() => undefined)
    rmSync(h, {recursive: true, force: true})
  }
  rmSync(pkg, {recursive: true, force: true})
}

const labels = {
  cold: 'meshd cold start, virtual pods',
  warm: 'meshd warm start (existing state), virtual pods',
  coldProcess: 'meshd cold start, process pods + ingress gateway',
  cli: '`mesh lab up` command, cold, virtual pods (lab applied, pods Ready)',
  full: '`mesh lab up` command, cold, process pods: all pods Ready + proxies SYNCED',
  again: '`mesh lab up` again on the running lab (nothing changes)',
}
const result = Object.fromEntries(Object.entries(rows).map(([k, xs]) => [k, {label: labels[k], runs: xs.length, p50: quantile(xs, 0.5), p90: quantile(xs, 0.9)}]))
const libMs = lib.map((x) => x.ms)
result.fullInside = {label: '  of which inside the command (meshd spawn → Ready + SYNCED)', runs: libMs.length, p50: quantile(libMs, 0.5), p90: quantile(libMs, 0.9)}
const TARGET_MS = 3000
const stageNames = Object.keys(lib[0]?.stages ?? {})
const stages = Object.fromEntries(stageNames.map((k) => [k, quantile(lib.map((x) => x.stages[k]), 0.5)]))
const med = (f) => Math.round(quantile(cpu.map(f), 0.5))
const cpuMedian = {
  cli: med((c) => c.cli),
  meshd: med((c) => c.meshd),
  gateway: med((c) => c.gateway),
  sidecarPod: med((c) => quantile(c.sidecarPods, 0.5) ?? 0),
  sidecarPods: cpu[0]?.sidecarPods.length ?? 0,
  plainPod: med((c) => quantile(c.plainPods, 0.5) ?? 0),
  plainPods: cpu[0]?.plainPods.length ?? 0,
  total: med((c) => c.cli + c.meshd + c.gateway + c.sidecarPods.reduce((a, b) => a + b, 0) + c.plainPods.reduce((a, b) => a + b, 0)),
}
const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')
if (values.json) {
  console.log(JSON.stringify({...result, fullStagesMedianMs: stages, fullCpuMedianMs: cpuMedian, load}, null, 2))
} else {
  console.log(`meshd start to ready, ${runs} runs each (ms), load average ${load}`)
  console.log('| start | median | p90 |')
  console.log('|---|---|---|')
  for (const r of Object.values(result)) console.log(`| ${r.label} | ${r.p50.toFixed(0)} | ${r.p90.toFixed(0)} |`)
  console.log(`warm/cold ratio (median): ${(result.warm.p50 / result.cold.p50).toFixed(2)}; CLI overhead over the daemon (median): ${(result.cli.p50 - result.cold.p50).toFixed(0)} ms`)
  console.log(`inside the full lab up, median ms per stage: ${stageNames.map((k) => `${k} ${stages[k]}`).join(', ')}`)
  console.log(
    `CPU of the full lab up, median ms: CLI ${cpuMedian.cli}, meshd ${cpuMedian.meshd}, gateway ${cpuMedian.gateway}, ` +
      `${cpuMedian.sidecarPods} pods with a sidecar ${cpuMedian.sidecarPod} each, ${cpuMedian.plainPods} without ${cpuMedian.plainPod} each; total ${cpuMedian.total}`,
  )
  console.log(`full lab up: ${lib[0]?.pods} pods Ready, ${lib[0]?.proxies} proxies SYNCED; median ${result.full.p50.toFixed(0)} ms = ${(result.full.p50 / TARGET_MS).toFixed(2)} × the 3 s target; full/meshd-alone (process) ratio ${(result.full.p50 / result.coldProcess.p50).toFixed(2)}`)
}
