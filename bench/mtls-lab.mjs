#!/usr/bin/env node
// What mTLS costs on a real embedded lab: autocannon → ingress gateway → hello-v1's sidecar →
// hello app, kept-alive connections, with the lab's default (PERMISSIVE, auto mTLS: the gateway
// speaks ISTIO_MUTUAL to the sidecar) against the same lab with the hello DestinationRule's
// `tls: {mode: DISABLE}` (plaintext gateway → sidecar). Rounds alternate the two, so drift on a
// shared machine hits both; the headline is the median of per-round throughput ratios.
// Build first: npm run build (or npx tsc -p tsconfig.json --noEmitOnError false)
//   node bench/mtls-lab.mjs [--duration 3] [--rounds 6] [--connections 10] [--json]
//
// A second, shorter series repeats the comparison with a new upstream connection per request
// (DR connectionPool.http.maxRequestsPerConnection: 1), which prices the handshake itself.
//
// Each round checks at hello-v1's sidecar (istio_requests_total, reporter=destination) that the
// requests really arrived with the intended connection_security_policy, and reads the CPU time
// of the gateway and hello-v1's pod process (/proc) per request served.
import {spawnSync} from 'node:child_process'
import {mkdtempSync, readdirSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {parseArgs} from 'node:util'
import autocannon from 'autocannon'
import {dump, load as loadYaml} from 'js-yaml'
import {Agent, request} from 'undici'

const {values} = parseArgs({
  options: {
    duration: {type: 'string', default: '3'},
    rounds: {type: 'string', default: '6'},
    connections: {type: 'string', default: '10'},
    json: {type: 'boolean', default: false},
  },
})
const duration = Math.max(1, Math.min(30, Number(values.duration)))
const rounds = Math.max(1, Math.min(20, Number(values.rounds)))
const connections = Math.max(1, Math.min(100, Number(values.connections)))
const root = new URL('..', import.meta.url).pathname
const home = mkdtempSync(join(tmpdir(), 'mesh-bench-mtls-lab-'))
const env = {...process.env, MESH_HOME: home, CI: 'true', NO_COLOR: '1', MESH_CONTEXT: ''}
const mesh = (...args) => spawnSync(process.execPath, [join(root, 'bin/run.js'), ...args], {env, encoding: 'utf8', timeout: 120_000})
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}
const CLK = 100 // USER_HZ on Linux
const cpuTicks = (pid) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(f[11]) + Number(f[12]) // utime + stime
}
const childrenOf = (pid) => {
  const out = []
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8')
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push({pid: Number(d), cmd: readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ').trim()})
    } catch {
      // gone
    }
  }
  return out
}

function cleanup() {
  let pid
  try {
    pid = Number(readFileSync(join(home, 'local/meshd.pid'), 'utf8').trim())
  } catch {
    // not running
  }
  const children = pid ? childrenOf(pid) : []
  mesh('lab', 'down', '--purge', '--timeout', '15')
  for (const c of children) {
    try {
      process.kill(c.pid, 'SIGKILL')
    } catch {
      // gone
    }
  }
  try {
    if (pid && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(home)) process.kill(pid, 'SIGKILL')
  } catch {
    // gone
  }
  rmSync(home, {recursive: true, force: true})
}

const results = {mtls: [], plaintext: []}
const ratios = []
const perConn = {mtls: [], plaintext: []}
const perConnRatios = []
let loadavg = ''
try {
  const up = mesh('lab', 'up')
  if (up.status !== 0) throw new Error(`lab up failed: ${up.stdout}\n${up.stderr}`)
  const state = JSON.parse(readFileSync(join(home, 'local/meshd.json'), 'utf8'))
  const kc = loadYaml(readFileSync(join(home, 'kubeconfig'), 'utf8'))
  const server = kc.clusters[0].cluster.server
  const token = kc.users[0].user.token
  const ca = Buffer.from(kc.clusters[0].cluster['certificate-authority-data'], 'base64').toString('utf8')
  const dispatcher = new Agent({connect: {ca}})
  const api = async (method, path, body, contentType) => {
    const r = await request(`${server}${path}`, {dispatcher, method, headers: {authorization: `Bearer ${token}`, ...(contentType ? {'content-type': contentType} : {})}, body})
    const text = await r.body.text()
    if (r.statusCode >= 300) throw new Error(`${method} ${path}: ${r.statusCode} ${text.slice(0, 300)}`)
    return JSON.parse(text)
  }
  const drPath = '/apis/networking.istio.io/v1/namespaces/mesh-lab/destinationrules/hello'
  const base = await api('GET', drPath)
  const pods = await api('GET', '/api/v1/namespaces/mesh-lab/pods?labelSelector=app%3Dhello%2Cversion%3Dv1')
  const v1 = pods.items.find((p) => p.metadata.labels['mesh.lab/faulty'] !== 'true')
  const v1Pid = childrenOf(state.pid).find((c) => c.cmd === `mesh-pod mesh-lab/${v1.metadata.name}`)?.pid
  const gwPid = state.gateway.pid
  const url = `http://127.0.0.1:${state.ingressPort}/hello`

  // switch the DR's tls between auto mTLS (no tls block) and DISABLE, and wait for every proxy
  const setMode = async (variant, perConnection = false) => {
    const policy = {...(base.spec.trafficPolicy ?? {})}
    if (variant === 'plaintext') policy.tls = {mode: 'DISABLE'}
    else delete policy.tls
    if (perConnection) {
      const pool = policy.connectionPool ?? {}
      policy.connectionPool = {...pool, http: {...(pool.http ?? {}), maxRequestsPerConnection: 1}}
    }
    const written = await api('PATCH', drPath, JSON.stringify([{op: 'replace', path: '/spec/trafficPolicy', value: policy}]), 'application/json-patch+json')
    const report = await api('GET', `/mesh/v1/proxy-status?wait=${written.metadata.resourceVersion}&timeoutMs=10000`)
    if (!report.synced) throw new Error(`DR change not acknowledged: ${dump(report)}`)
  }
  const inbound = async () => {
    const r = await request(`http://${v1.status.podIP}:15090/stats/prometheus`)
    const text = await r.body.text()
    const out = {mutual_tls: 0, none: 0}
    for (const line of text.split('\n')) {
      if (!line.startsWith('istio_requests_total{') || !line.includes('reporter="destination"')) continue
      const m = /connection_security_policy="([^"]+)"/.exec(line)
      if (m && m[1] in out) out[m[1]] += Number(line.slice(line.lastIndexOf(' ') + 1))
    }
    return out
  }
  const run = (seconds) => autocannon({url, connections, duration: seconds, pipelining: 1})

  const measure = async (variant, perConnection) => {
    await setMode(variant, perConnection)
    await run(1) // warm-up: connections and pools for this mode
    const before = await inbound()
    const cpu0 = cpuTicks(gwPid) + (v1Pid ? cpuTicks(v1Pid) : 0)
    const res = await run(duration)
    const cpu1 = cpuTicks(gwPid) + (v1Pid ? cpuTicks(v1Pid) : 0)
    const after = await inbound()
    const served = res.requests.total
    const expectKey = variant === 'mtls' ? 'mutual_tls' : 'none'
    const otherKey = variant === 'mtls' ? 'none' : 'mutual_tls'
    if (after[expectKey] - before[expectKey] < served * 0.9 || after[otherKey] !== before[otherKey]) {
      throw new Error(`${variant}: hello-v1 saw ${JSON.stringify({before, after})} for ${served} requests`)
    }
    if (res.non2xx > 0 || res.errors > 0) throw new Error(`${variant}: ${res.non2xx} non-2xx, ${res.errors} errors`)
    return {rps: res.requests.average, p50: res.latency.p50, p99: res.latency.p99, cpuUsPerRequest: (((cpu1 - cpu0) / CLK) * 1e6) / served}
  }
  for (const perConnection of [false, true]) {
    const n = perConnection ? Math.max(1, Math.ceil(rounds / 3)) : rounds
    for (let r = 0; r < n; r++) {
      const order = r % 2 === 0 ? ['mtls', 'plaintext'] : ['plaintext', 'mtls']
      const round = {}
      for (const variant of order) {
        round[variant] = await measure(variant, perConnection)
        ;(perConnection ? perConn : results)[variant].push(round[variant])
      }
      ;(perConnection ? perConnRatios : ratios).push(round.mtls.rps / round.plaintext.rps)
    }
  }
  loadavg = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')
  await setMode('mtls')
  await dispatcher.close()
} finally {
  cleanup()
}

const summary = (xs) => ({rps: median(xs.map((x) => x.rps)), p50: median(xs.map((x) => x.p50)), p99: median(xs.map((x) => x.p99)), cpuUsPerRequest: median(xs.map((x) => x.cpuUsPerRequest))})
const out = {
  rounds, duration, connections, loadavg,
  mtls: summary(results.mtls), plaintext: summary(results.plaintext), ratios, medianRatio: median(ratios),
  perConnection: {mtls: summary(perConn.mtls), plaintext: summary(perConn.plaintext), ratios: perConnRatios, medianRatio: median(perConnRatios)},
}
if (values.json) console.log(JSON.stringify(out, null, 2))
else {
  console.log(`${rounds} rounds × ${duration} s per variant, ${connections} kept-alive connections, load average ${loadavg}`)
  console.log('| variant | requests/s | p50 ms | p99 ms | gateway+hello CPU µs/request |')
  console.log('|---|---|---|---|---|')
  const row = (name, s) => console.log(`| ${name} | ${Math.round(s.rps)} | ${s.p50} | ${s.p99} | ${Math.round(s.cpuUsPerRequest)} |`)
  row('DR tls DISABLE', out.plaintext)
  row('mTLS (auto, PERMISSIVE)', out.mtls)
  row('DR tls DISABLE, new upstream connection per request', out.perConnection.plaintext)
  row('mTLS, new upstream connection per request', out.perConnection.mtls)
  console.log(`kept-alive: per-round mTLS/plaintext throughput ${ratios.map((r) => r.toFixed(2)).join(' ')}; median ${out.medianRatio.toFixed(3)} → mTLS costs ${((1 - out.medianRatio) * 100).toFixed(1)}% (target ≤ 15%: ${1 - out.medianRatio <= 0.15 ? 'met' : 'MISSED'})`)
  console.log(`new connection per request: per-round ratios ${perConnRatios.map((r) => r.toFixed(2)).join(' ')}; median ${out.perConnection.medianRatio.toFixed(3)}`)
}
