#!/usr/bin/env node
// mTLS cost on the embedded data plane, plaintext and mTLS side by side in one run.
// Build first: npm run build (or npx tsc -p tsconfig.json --noEmitOnError false)
//   node bench/mtls.mjs [--duration 3] [--rounds 7] [--connections 10] [--json]
//
// Path (each box its own process, all on 127.0.0.1, kept-alive connections everywhere):
//   autocannon → gateway (undici Pool, pool.stream) → inbound sidecar listener
//   (createMtlsAwareServer + AuthorizationPolicy check + XFCC) → app (node:http)
// The only difference between the two variants is the gateway → sidecar hop: plaintext to a
// port whose PeerAuthentication is DISABLE, or ISTIO_MUTUAL to a STRICT port. Rounds alternate
// plaintext/mTLS so drift on a shared machine hits both; medians are reported.
import {fork} from 'node:child_process'
import {mkdtemp, rm} from 'node:fs/promises'
import http from 'node:http'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'

const role = process.argv[2]?.startsWith('--role=') ? process.argv[2].slice(7) : 'main'
const dist = new URL('../dist/', import.meta.url)
const load = (p) => import(new URL(p, dist).href)
const send = (m) => process.send?.(m)
const APP_BODY = 'Hello version: v1, instance: bench'

// ------------------------------------------------------------------ child roles

async function runApp() {
  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      res.setHeader('content-type', 'text/plain')
      res.end(APP_BODY)
    })
  })
  server.keepAliveTimeout = 60_000
  server.listen(0, '127.0.0.1', () => send({ready: server.address().port}))
}

async function runSidecar({appPort, secret, plainPort, mtlsPort}) {
  const {Pool} = await import('undici')
  const tlsLib = await load('local/dataplane/security/tls.js')
  const {evaluate, RBAC_ACCESS_DENIED_BODY} = await load('local/dataplane/security/authz.js')
  const app = new Pool(`http://127.0.0.1:${appPort}`, {connections: 32, pipelining: 1, keepAliveTimeout: 60_000})
  const ctx = tlsLib.serverContextOptions(secret)
  // one realistic policy on both variants, so authorization cost is the same
  const policies = [{apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: {name: 'hello-get', namespace: 'mesh-lab'},
    spec: {selector: {matchLabels: {app: 'hello'}}, rules: [{to: [{operation: {methods: ['GET'], paths: ['/hello']}}]}]}}]
  const modes = new Map([[plainPort, 'DISABLE'], [mtlsPort, 'STRICT']])
  const listeners = []
  for (const port of [plainPort, mtlsPort]) {
    const s = tlsLib.createMtlsAwareServer({
      tlsPolicy: (p) => modes.get(p) ?? 'STRICT',
      secureContext: () => ctx,
      identity: () => secret.spiffeId,
      onRequest: (req, res, info) => {
        const d = evaluate(policies, {namespace: 'mesh-lab', labels: {app: 'hello'}}, {
          method: req.method, path: req.url, host: req.headers.host, port: info.localPort, headers: req.headers, peer: info.peer, protocol: 'http',
        })
        if (d.decision === 'DENY') {
          res.writeHead(403).end(RBAC_ACCESS_DENIED_BODY)
          return
        }
        app
          .stream({path: req.url, method: req.method, headers: req.headers, body: req.method === 'GET' ? null : req}, ({statusCode, headers}) => {
            res.writeHead(statusCode, headers)
            return res
          })
          .catch(() => {
            if (!res.headersSent) res.writeHead(503)
            res.end()
          })
      },
    })
    s.httpServer.keepAliveTimeout = 60_000
    listeners.push(await s.listen(port, '127.0.0.1'))
  }
  send({ready: listeners.map((a) => a.port)})
}

async function runGateway({sidecarPlain, sidecarMtls, secret, serverId}) {
  const {Pool} = await import('undici')
  const {clientTlsOptions} = await load('local/dataplane/security/tls.js')
  const tlsOpts = clientTlsOptions(secret, {expectedSpiffeIds: serverId, servername: 'outbound_.5000_._.hello.mesh-lab.svc.cluster.local'})
  const pools = {
    plain: new Pool(`http://127.0.0.1:${sidecarPlain}`, {connections: 32, pipelining: 1, keepAliveTimeout: 60_000}),
    mtls: new Pool(`https://127.0.0.1:${sidecarMtls}`, {connections: 32, pipelining: 1, keepAliveTimeout: 60_000, connect: tlsOpts}),
  }
  const ports = {}
  for (const kind of ['plain', 'mtls']) {
    const pool = pools[kind]
    const server = http.createServer((req, res) => {
      pool
        .stream({path: req.url, method: req.method, headers: {host: 'hello.mesh-lab:5000', 'x-request-id': req.headers['x-request-id'] ?? ''}, body: null}, ({statusCode, headers}) => {
          res.writeHead(statusCode, headers)
          return res
        })
        .catch(() => {
          if (!res.headersSent) res.writeHead(503)
          res.end()
        })
    })
    server.keepAliveTimeout = 60_000
    await new Promise((r) => server.listen(0, '127.0.0.1', r))
    ports[kind] = server.address().port
  }
  send({ready: ports})
}

// ------------------------------------------------------------------ main

function startChild(name, cfg) {
  const child = fork(fileURLToPath(import.meta.url), [`--role=${name}`], {stdio: ['ignore', 'inherit', 'inherit', 'ipc']})
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${name} did not start`)), 15_000)
    child.once('message', (m) => {
      clearTimeout(t)
      resolve({child, ready: m.ready})
    })
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code}`)))
    child.send(cfg)
  })
}

async function freePort() {
  const net = await import('node:net')
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port
      s.close(() => resolve(p))
    })
  })
}

function cpuOf(children) {
  return Promise.all(
    children.map(
      (c) =>
        new Promise((resolve) => {
          const on = (m) => {
            if (m?.cpu) {
              c.off('message', on)
              resolve(m.cpu.user + m.cpu.system)
            }
          }
          c.on('message', on)
          c.send('cpu')
        }),
    ),
  )
}

function quantile(sorted, q) {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function measure(autocannon, url, duration, connections) {
  const lat = []
  let non2xx = 0
  const result = await autocannon({
    url,
    connections,
    duration,
    pipelining: 1,
    setupClient: (client) => {
      client.on('response', (status, _bytes, ms) => {
        if (status >= 200 && status < 300) lat.push(ms)
        else non2xx++
      })
    },
  })
  lat.sort((a, b) => a - b)
  return {
    rps: lat.length / duration,
    p50: quantile(lat, 0.5),
    p99: quantile(lat, 0.99),
    ok: lat.length,
    non2xx,
    errors: result.errors + result.timeouts,
  }
}

async function main() {
  const {values: args} = parseArgs({
    args: process.argv.slice(2),
    options: {
      duration: {type: 'string', default: '3'},
      rounds: {type: 'string', default: '7'},
      connections: {type: 'string', default: '10'},
      json: {type: 'boolean', default: false},
    },
  })
  const duration = Math.min(30, Math.max(1, Number(args.duration)))
  const rounds = Math.min(15, Math.max(1, Number(args.rounds)))
  const connections = Math.min(100, Math.max(1, Number(args.connections)))
  const {default: autocannon} = await import('autocannon')
  const {loadOrCreateMeshCa} = await load('local/pki/ca.js')

  const dir = await mkdtemp(join(tmpdir(), 'mesh-bench-mtls-'))
  const children = []
  try {
    const ca = await loadOrCreateMeshCa(join(dir, 'ca'))
    const helloSecret = await ca.issueFor('mesh-lab', 'hello')
    const gwSecret = await ca.issueFor('istio-system', 'istio-ingressgateway-service-account')

    const app = await startChild('app', {})
    children.push(app.child)
    const sidecar = await startChild('sidecar', {appPort: app.ready, secret: helloSecret, plainPort: await freePort(), mtlsPort: await freePort()})
    children.push(sidecar.child)
    const [sidecarPlain, sidecarMtls] = sidecar.ready
    const gw = await startChild('gateway', {sidecarPlain, sidecarMtls, secret: gwSecret, serverId: helloSecret.spiffeId})
    children.push(gw.child)
    const url = (kind) => `http://127.0.0.1:${gw.ready[kind]}/hello`

    // sanity: both paths answer the app's body
    for (const kind of ['plain', 'mtls']) {
      const body = await (await fetch(url(kind))).text()
      if (body !== APP_BODY) throw new Error(`${kind} path answered ${JSON.stringify(body)}`)
    }
    // warm-up (JIT, connection pools, TLS sessions)
    for (const kind of ['plain', 'mtls']) await measure(autocannon, url(kind), 1, connections)

    const runs = {plain: [], mtls: []}
    for (let r = 0; r < rounds; r++) {
      for (const kind of r % 2 === 0 ? ['plain', 'mtls'] : ['mtls', 'plain']) {
        const before = await cpuOf(children)
        const m = await measure(autocannon, url(kind), duration, connections)
        const after = await cpuOf(children)
        // CPU of gateway + sidecar + app per successful request (µs), the proxies' real cost
        m.cpuUsPerReq = after.reduce((a, v, i) => a + v - before[i], 0) / Math.max(1, m.ok)
        m.cpuSplit = after.map((v, i) => Math.round((v - before[i]) / Math.max(1, m.ok)))
        runs[kind].push(m)
        if (!args.json) console.error(`round ${r + 1} ${kind.padEnd(5)} ${m.rps.toFixed(0).padStart(6)} req/s  p50 ${m.p50.toFixed(2)} ms  p99 ${m.p99.toFixed(2)} ms  cpu ${m.cpuUsPerReq.toFixed(0)} µs/req (app/sidecar/gateway ${m.cpuSplit.join('/')})  non-2xx ${m.non2xx}  errors ${m.errors}`)
      }
    }
    const summary = (kind) => ({
      rps: median(runs[kind].map((m) => m.rps)),
      p50: median(runs[kind].map((m) => m.p50)),
      p99: median(runs[kind].map((m) => m.p99)),
      cpuUsPerReq: median(runs[kind].map((m) => m.cpuUsPerReq)),
      non2xx: runs[kind].reduce((a, m) => a + m.non2xx, 0),
      errors: runs[kind].reduce((a, m) => a + m.errors, 0),
    })
    const plain = summary('plain')
    const mtls = summary('mtls')
    // each round measures both variants back to back; the median of the per-round ratios is
    // less sensitive to other load on the machine than a ratio of medians
    const pairedRatio = median(runs.mtls.map((m, i) => m.rps / runs.plain[i].rps))
    const cost = 1 - pairedRatio
    const out = {
      duration, rounds, connections, node: process.version,
      plain, mtls,
      throughputRatio: pairedRatio,
      roundRatios: runs.mtls.map((m, i) => +(m.rps / runs.plain[i].rps).toFixed(3)),
      mtlsThroughputCostPct: 100 * cost,
      p99Ratio: mtls.p99 / plain.p99,
      cpuPerRequestRatio: mtls.cpuUsPerReq / plain.cpuUsPerReq,
      target: 'mTLS costs <= 15% of throughput',
      targetMet: cost <= 0.15,
    }
    if (args.json) console.log(JSON.stringify(out, null, 2))
    else {
      console.log(`\nmTLS vs plaintext, gateway → sidecar → app, ${connections} kept-alive connections, ${rounds} × ${duration}s per variant (medians)`)
      console.log(`| variant   | requests/s | p50 ms | p99 ms | proxy+app CPU µs/request |`)
      console.log(`|---|---|---|---|---|`)
      console.log(`| plaintext | ${plain.rps.toFixed(0)} | ${plain.p50.toFixed(2)} | ${plain.p99.toFixed(2)} | ${plain.cpuUsPerReq.toFixed(0)} |`)
      console.log(`| mTLS      | ${mtls.rps.toFixed(0)} | ${mtls.p50.toFixed(2)} | ${mtls.p99.toFixed(2)} | ${mtls.cpuUsPerReq.toFixed(0)} |`)
      console.log(`per-round throughput ratios mTLS/plaintext: ${out.roundRatios.join(' ')}`)
      console.log(`throughput ratio mTLS/plaintext (median of rounds) ${out.throughputRatio.toFixed(3)} (cost ${out.mtlsThroughputCostPct.toFixed(1)}%), p99 ratio ${out.p99Ratio.toFixed(2)}, CPU/request ratio ${out.cpuPerRequestRatio.toFixed(2)}`)
      console.log(`target (cost <= 15%): ${out.targetMet ? 'met' : 'NOT met'}; non-2xx ${plain.non2xx + mtls.non2xx}, errors ${plain.errors + mtls.errors}`)
    }
  } finally {
    for (const c of children) c.kill()
    await rm(dir, {recursive: true, force: true})
  }
}

// ------------------------------------------------------------------ entry

if (role !== 'main') {
  process.on('message', (m) => {
    if (m === 'cpu') send({cpu: process.cpuUsage()})
  })
  process.once('message', (cfg) => {
    const run = {app: runApp, sidecar: runSidecar, gateway: runGateway}[role]
    run(cfg).catch((e) => {
      console.error(`${role}:`, e)
      process.exit(1)
    })
  })
  process.on('disconnect', () => process.exit(0))
} else {
  await main()
}
