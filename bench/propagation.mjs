#!/usr/bin/env node
// Config propagation on a real embedded lab: a weight change written to the API → every proxy
// (ingress gateway + the pods' sidecars) has applied and acknowledged it, read with meshd's
// long poll /mesh/v1/proxy-status?wait=<resourceVersion>.
// Build first: npm run build (or npx tsc -p tsconfig.json --noEmitOnError false)
//   node bench/propagation.mjs [--changes 100] [--json]
//
// Each change is one JSON patch of the gateway VirtualService's two weights (a different split
// every time, so every change is a new config generation for every proxy). Rows:
//   write                   PATCH sent → API answered (the change is durable)
//   write → all SYNCED      PATCH sent → the long poll reports every proxy acknowledged it
//   wait after the write    the long poll alone (what `mesh canary shift` waits for)
import {spawnSync} from 'node:child_process'
import {mkdtempSync, readdirSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {parseArgs} from 'node:util'
import {load as loadYaml} from 'js-yaml'
import {Agent, request} from 'undici'

const {values} = parseArgs({options: {changes: {type: 'string', default: '100'}, json: {type: 'boolean', default: false}}})
const changes = Math.max(5, Math.min(1000, Number(values.changes)))
const root = new URL('..', import.meta.url).pathname
const home = mkdtempSync(join(tmpdir(), 'mesh-bench-prop-'))
const env = {...process.env, MESH_HOME: home, CI: 'true', NO_COLOR: '1', MESH_CONTEXT: ''}
const mesh = (...args) => spawnSync(process.execPath, [join(root, 'bin/run.js'), ...args], {env, encoding: 'utf8', timeout: 120_000})

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]
}
const stats = (xs) => ({p50: quantile(xs, 0.5), p90: quantile(xs, 0.9), p99: quantile(xs, 0.99), max: Math.max(...xs)})

function cleanup() {
  let pid
  try {
    pid = Number(readFileSync(join(home, 'local/meshd.pid'), 'utf8').trim())
  } catch {
    // not running
  }
  mesh('lab', 'down', '--purge', '--timeout', '15')
  // fallback: meshd's own children (pods, gateway) and meshd, by pid
  if (pid) {
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue
      try {
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8')
        if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) process.kill(Number(d), 'SIGKILL')
      } catch {
        // gone
      }
    }
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(home)) process.kill(pid, 'SIGKILL')
    } catch {
      // gone
    }
  }
  rmSync(home, {recursive: true, force: true})
}

const rows = {write: [], synced: [], wait: []}
let proxies = 0
let loadavg = ''
try {
  const up = mesh('lab', 'up')
  if (up.status !== 0) throw new Error(`lab up failed: ${up.stdout}\n${up.stderr}`)
  const kc = loadYaml(readFileSync(join(home, 'kubeconfig'), 'utf8'))
  const server = kc.clusters[0].cluster.server
  const token = kc.users[0].user.token
  const ca = Buffer.from(kc.clusters[0].cluster['certificate-authority-data'], 'base64').toString('utf8')
  const dispatcher = new Agent({connect: {ca}, keepAliveTimeout: 60_000})
  const auth = {authorization: `Bearer ${token}`}
  const vsPath = '/apis/networking.istio.io/v1/namespaces/mesh-lab/virtualservices/hello-ingress'
  const call = async (method, path, body, contentType) => {
    const r = await request(`${server}${path}`, {dispatcher, method, headers: {...auth, ...(contentType ? {'content-type': contentType} : {})}, body})
    const text = await r.body.text()
    if (r.statusCode !== 200) throw new Error(`${method} ${path}: ${r.statusCode} ${text.slice(0, 300)}`)
    return JSON.parse(text)
  }
  const vs = await call('GET', vsPath)
  if ((vs.spec?.http?.[0]?.route ?? []).length !== 2) throw new Error('hello-ingress has no two-destination route')

  for (let i = 0; i < changes; i++) {
    const w = 5 + ((i * 37) % 91) // 5..95, consecutive values differ
    const patch = [
      {op: 'replace', path: '/spec/http/0/route/0/weight', value: w},
      {op: 'replace', path: '/spec/http/0/route/1/weight', value: 100 - w},
    ]
    const t0 = performance.now()
    const written = await call('PATCH', vsPath, JSON.stringify(patch), 'application/json-patch+json')
    const t1 = performance.now()
    const rv = Number(written.metadata.resourceVersion)
    const report = await call('GET', `/mesh/v1/proxy-status?wait=${rv}&timeoutMs=10000`)
    const t2 = performance.now()
    if (!report.synced || report.covered < rv) throw new Error(`not SYNCED after 10 s at ${rv}: ${JSON.stringify(report)}`)
    proxies = report.proxies.length
    rows.write.push(t1 - t0)
    rows.synced.push(t2 - t0)
    rows.wait.push(t2 - t1)
  }
  loadavg = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')
  await dispatcher.close()
} finally {
  cleanup()
}

const out = {changes, proxies, loadavg, write: stats(rows.write), synced: stats(rows.synced), wait: stats(rows.wait)}
if (values.json) console.log(JSON.stringify(out, null, 2))
else {
  const f = (x) => x.toFixed(1)
  console.log(`${changes} weight changes, ${proxies} proxies acknowledging, load average ${loadavg}`)
  console.log('| row (ms) | p50 | p90 | p99 | max |')
  console.log('|---|---|---|---|---|')
  for (const [name, k] of [['write (PATCH → durable)', 'write'], ['write → all proxies SYNCED', 'synced'], ['… of which the wait', 'wait']]) {
    const s = out[k]
    console.log(`| ${name} | ${f(s.p50)} | ${f(s.p90)} | ${f(s.p99)} | ${f(s.max)} |`)
  }
  console.log(`target: p99 write → all SYNCED ≤ 200 ms: ${out.synced.p99 <= 200 ? 'met' : 'MISSED'}`)
}
