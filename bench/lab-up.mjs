#!/usr/bin/env node
// `mesh lab up` start times. Each run uses a fresh temp MESH_HOME.
// Build first: npm run build (or npx tsc -p tsconfig.json --noEmitOnError false)
//   node bench/lab-up.mjs [--runs 5] [--json]
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
import {spawnSync} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {parseArgs} from 'node:util'

const {values} = parseArgs({options: {runs: {type: 'string', default: '5'}, json: {type: 'boolean', default: false}}})
const runs = Math.max(1, Math.min(20, Number(values.runs)))
const dist = new URL('../dist/', import.meta.url)
const {spawnMeshd, stopMeshd} = await import(new URL('cluster/meshd-process.js', dist).href)
const root = new URL('..', import.meta.url).pathname

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

const rows = {cold: [], warm: [], coldProcess: [], cli: [], full: [], again: []}
const lib = []
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
    const r = spawnSync(process.execPath, [join(root, 'bin/run.js'), 'lab', 'up', '--runtime', 'virtual'], {env: {...process.env, MESH_HOME: hc, CI: 'true'}, encoding: 'utf8'})
    rows.cli.push(performance.now() - t)
    if (r.status !== 0) throw new Error(`mesh lab up failed: ${r.stderr}`)
    await stopMeshd({home: hc, purge: true})

    const hf = newHome()
    t = performance.now()
    const full = spawnSync(process.execPath, [join(root, 'bin/run.js'), 'lab', 'up', '--json'], {env: {...process.env, MESH_HOME: hf, CI: 'true'}, encoding: 'utf8'})
    rows.full.push(performance.now() - t)
    if (full.status !== 0) throw new Error(`mesh lab up failed: ${full.stdout} ${full.stderr}`)
    const res = JSON.parse(full.stdout).result
    if (res.rollout.ready !== res.rollout.pods || !res.proxies.synced) throw new Error(`mesh lab up returned before the lab was ready: ${full.stdout}`)
    lib.push({ms: res.elapsedMs, pods: res.rollout.ready, proxies: res.proxies.count, stages: res.stagesMs})
    t = performance.now()
    const again = spawnSync(process.execPath, [join(root, 'bin/run.js'), 'lab', 'up', '--json'], {env: {...process.env, MESH_HOME: hf, CI: 'true'}, encoding: 'utf8'})
    rows.again.push(performance.now() - t)
    if (again.status !== 0 || JSON.parse(again.stdout).result.changed !== false) throw new Error(`second mesh lab up changed something: ${again.stdout}`)
    await stopMeshd({home: hf, purge: true})
  }
} finally {
  for (const h of homes) {
    await stopMeshd({home: h, purge: true}).catch(() => undefined)
    rmSync(h, {recursive: true, force: true})
  }
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
if (values.json) {
  console.log(JSON.stringify({...result, fullStagesMedianMs: stages}, null, 2))
} else {
  console.log(`meshd start to ready, ${runs} runs each (ms)`)
  console.log('| start | median | p90 |')
  console.log('|---|---|---|')
  for (const r of Object.values(result)) console.log(`| ${r.label} | ${r.p50.toFixed(0)} | ${r.p90.toFixed(0)} |`)
  console.log(`warm/cold ratio (median): ${(result.warm.p50 / result.cold.p50).toFixed(2)}; CLI overhead over the daemon (median): ${(result.cli.p50 - result.cold.p50).toFixed(0)} ms`)
  console.log(`inside the full lab up, median ms per stage: ${stageNames.map((k) => `${k} ${stages[k]}`).join(', ')}`)
  console.log(`full lab up: ${lib[0]?.pods} pods Ready, ${lib[0]?.proxies} proxies SYNCED; median ${result.full.p50.toFixed(0)} ms = ${(result.full.p50 / TARGET_MS).toFixed(2)} × the 3 s target; full/meshd-alone (process) ratio ${(result.full.p50 / result.coldProcess.p50).toFixed(2)}`)
}
