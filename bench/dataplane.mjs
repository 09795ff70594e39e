#!/usr/bin/env node
// Data plane cost, measured side by side in one run (ratios, not absolute times).
// Build first: npm run build (or npx tsc -p tsconfig.json --noEmitOnError false)
//   node bench/dataplane.mjs [--duration 5] [--rounds 3] [--connections 10] [--rate 1000] [--json]
//
// Paths (each box its own process, kept-alive connections everywhere):
//   direct:   autocannon → hello (node:http)
//   gateway:  autocannon → gateway proxy → hello
//   two hops: autocannon → gateway proxy → inbound sidecar → hello app (containerPort + 30000)
//   pod:      autocannon → inbound sidecar → hello app: straight to a meshed hello pod, which in
//             the lab (as in Istio) is always through its sidecar; two hops ÷ pod is what the
//             gateway costs on the lab's own path
//   bare:     autocannon → a 30-line proxy, node:http in front, raw keep-alive sockets behind (no
//             routing, telemetry or limits) → hello: what a minimal Node HTTP proxy costs here
//   raw:      autocannon → a proxy with no HTTP machinery at all (one upstream socket per client
//             socket, GET without a body, bytes passed through) → hello: the ceiling for any
//             Node proxy process on this machine, whatever its HTTP code
// Rounds alternate the order of the paths so drift on a shared machine hits all of them; medians
// are reported. Then a fixed-rate run (default 1,000 req/s) for the p50 the gateway adds, and
// ejection detection: time from the faulty upstream sending the threshold-reaching 503 to the
// proxy ejecting it (proxy and upstream share one process so both clocks are the same).
import {fork} from 'node:child_process'
import http from 'node:http'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'

const role = process.argv[2]?.startsWith('--role=') ? process.argv[2].slice(7) : 'main'
const dist = new URL('../dist/', import.meta.url)
const load = (p) => import(new URL(p, dist).href)
const send = (m) => process.send?.(m)
const BODY = 'Hello version: v1, instance: hello-v1-bench\n'
const NS = 'mesh-lab'
const APP_PORT_OFFSET = 30000

// ------------------------------------------------------------------ child roles

function helloServer(host, port) {
  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      res.writeHead(200, {'content-type': 'text/plain', 'content-length': Buffer.byteLength(BODY)})
      res.end(BODY)
    })
  })
  server.keepAliveTimeout = 65_000
  return new Promise((resolve) => server.listen(port, host, () => resolve(server)))
}

function snapshotFor(endpointAddr, targetPort) {
  const meta = (kind, name) => ({apiVersion: 'networking.istio.io/v1', kind, metadata: {name, namespace: NS, creationTimestamp: '2026-01-01T00:00:00Z'}})
  return {
    generation: 1,
    trustDomain: 'cluster.local',
    rootNamespace: 'istio-system',
    services: [{name: 'hello', namespace: NS, selector: {app: 'hello'}, ports: [{name: 'http', port: 5000, targetPort, protocol: 'TCP'}]}],
    endpoints: [{address: endpointAddr, podName: 'hello-v1-6d9f7c8b4-bench', namespace: NS, labels: {app: 'hello', version: 'v1'}, serviceAccount: 'hello', sidecar: true, ready: true, ports: [targetPort]}],
    gateways: [{...meta('Gateway', 'hello-gateway'), spec: {selector: {istio: 'ingressgateway'}, servers: [{port: {number: 80, name: 'http', protocol: 'HTTP'}, hosts: ['*']}]}}],
    virtualServices: [{...meta('VirtualService', 'hello'), spec: {hosts: ['*'], gateways: ['hello-gateway'], http: [{match: [{uri: {exact: '/hello'}}], route: [{destination: {host: 'hello', port: {number: 5000}}}]}]}}],
    destinationRules: [],
    peerAuthentications: [],
    authorizationPolicies: [],
  }
}

async function runHello({host, port}) {
  const s = await helloServer(host, port)
  send({ready: s.address().port})
}

async function runGateway({endpointAddr, targetPort}) {
  const {createProxy} = await load('local/dataplane/proxy.js')
  const identity = {id: 'istio-ingressgateway.istio-system', kind: 'gateway', podName: 'istio-ingressgateway', namespace: 'istio-system', labels: {istio: 'ingressgateway', app: 'istio-ingressgateway'}, serviceAccount: 'istio-ingressgateway-service-account', address: '127.0.0.1'}
  const proxy = await createProxy({identity, listeners: [{role: 'gateway', host: '127.0.0.1', port: 0}], snapshot: snapshotFor(endpointAddr, targetPort)})
  send({ready: proxy.addresses[0].port})
}

async function runBare({endpointAddr, targetPort}) {
  // the least a Node HTTP/1.1 proxy can do: node:http in front, one raw keep-alive socket per request in flight
  const net = await import('node:net')
  const idle = []
  const conn = () => {
    let c = idle.pop()
    if (c) return c
    c = net.connect(targetPort, endpointAddr)
    c.setNoDelay(true)
    c.buf = null
    c.on('data', (d) => {
      const b = (c.buf = c.buf ? Buffer.concat([c.buf, d]) : d)
      const he = b.indexOf('\r\n\r\n')
      if (he < 0) return
      const lines = b.toString('latin1', 0, he).split('\r\n')
      const headers = []
      let cl = 0
      for (let i = 1; i < lines.length; i++) {
        const k = lines[i].indexOf(':')
        const name = lines[i].slice(0, k)
        const v = lines[i].slice(k + 1).trim()
        const lower = name.toLowerCase()
        if (lower === 'content-length') cl = Number(v)
        if (lower !== 'connection' && lower !== 'keep-alive') headers.push(name, v)
      }
      if (b.length < he + 4 + cl) return
      c.buf = null
      const res = c.res
      c.res = null
      idle.push(c)
      res.writeHead(Number(lines[0].slice(9, 12)), headers)
      res.end(b.subarray(he + 4, he + 4 + cl))
    })
    return c
  }
  const server = http.createServer((req, res) => {
    const c = conn()
    c.res = res
    let h = `${req.method} ${req.url} HTTP/1.1\r\n`
    for (let i = 0; i < req.rawHeaders.length; i += 2) h += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`
    c.write(h + '\r\n', 'latin1')
  })
  server.listen(0, '127.0.0.1', () => send({ready: server.address().port}))
}

async function runRaw({endpointAddr, targetPort}) {
  const net = await import('node:net')
  const server = net.createServer({noDelay: true}, (down) => {
    const up = net.connect(targetPort, endpointAddr)
    up.setNoDelay(true)
    let dbuf = null
    let ubuf = null
    down.on('data', (d) => {
      dbuf = dbuf ? Buffer.concat([dbuf, d]) : d
      const he = dbuf.indexOf('\r\n\r\n')
      if (he < 0) return
      up.write(dbuf.subarray(0, he + 4))
      dbuf = null
    })
    up.on('data', (d) => {
      ubuf = ubuf ? Buffer.concat([ubuf, d]) : d
      const he = ubuf.indexOf('\r\n\r\n')
      if (he < 0) return
      const m = /content-length: *(\d+)/i.exec(ubuf.toString('latin1', 0, he))
      if (ubuf.length < he + 4 + (m ? Number(m[1]) : 0)) return
      down.write(ubuf)
      ubuf = null
    })
    down.on('close', () => up.destroy())
    up.on('close', () => down.destroy())
    down.on('error', () => {})
    up.on('error', () => {})
  })
  server.listen(0, '127.0.0.1', () => send({ready: server.address().port}))
}

async function runSidecar({podIP, containerPort}) {
  const {createProxy} = await load('local/dataplane/proxy.js')
  const identity = {id: `hello-v1-bench.${NS}`, kind: 'sidecar', podName: 'hello-v1-6d9f7c8b4-bench', namespace: NS, labels: {app: 'hello', version: 'v1'}, serviceAccount: 'hello', address: podIP}
  await helloServer(podIP, containerPort + APP_PORT_OFFSET)
  const proxy = await createProxy({identity, listeners: [{role: 'inbound', host: podIP, port: containerPort}], snapshot: snapshotFor(podIP, containerPort)})
  send({ready: proxy.addresses[0].port})
}


// ------------------------------------------------------------------ main

function child(roleName, msg) {
  const c = fork(fileURLToPath(import.meta.url), [`--role=${roleName}`], {stdio: ['ignore', 'inherit', 'inherit', 'ipc']})
  return new Promise((resolve, reject) => {
    c.once('message', (m) => resolve({proc: c, port: m.ready}))
    c.once('exit', (code) => reject(new Error(`${roleName} exited with ${code}`)))
    c.send(msg)
  })
}

const quantile = (sorted, q) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))])
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

async function cannon(url, {duration, connections, rate}) {
  const {default: autocannon} = await import('autocannon')
  const lat = []
  let non2xx = 0
  const result = await autocannon({
    url,
    connections,
    duration,
    ...(rate ? {overallRate: rate} : {}),
    setupClient(client) {
      client.on('response', (status, _bytes, ms) => {
        lat.push(ms)
        if (status !== 200) non2xx++
      })
    },
  })
  lat.sort((a, b) => a - b)
  return {rps: result.requests.average, total: result.requests.total, p50: quantile(lat, 0.5), p99: quantile(lat, 0.99), non2xx: non2xx + result.errors + result.timeouts}
}

async function ejectionDetection(trials) {
  // proxy + upstreams in this process: one clock for "threshold response sent" and "ejected"
  const {createProxy} = await load('local/dataplane/proxy.js')
  const {request} = await import('undici')
  const port = 20000 + Math.floor(Math.random() * 15000)
  const addrs = ['127.78.0.2', '127.78.0.3', '127.78.0.4']
  const sentAt = []
  const servers = []
  for (const [i, a] of addrs.entries()) {
    const faulty = i === 2
    const s = http.createServer((req, res) => {
      req.resume()
      res.writeHead(faulty ? 503 : 200, {'content-length': '2'})
      res.end('ok', () => faulty && sentAt.push(performance.now()))
    })
    await new Promise((r) => s.listen(port, a, r))
    servers.push(s)
  }
  const base = snapshotFor(addrs[0], port)
  base.endpoints = addrs.map((a, i) => ({...base.endpoints[0], address: a, podName: `hello-v1-6d9f7c8b4-p${i}`}))
  const identity = {id: 'gw', kind: 'gateway', podName: 'istio-ingressgateway', namespace: 'istio-system', labels: {istio: 'ingressgateway'}, serviceAccount: 'sa', address: '127.0.0.1'}
  const proxy = await createProxy({identity, listeners: [{role: 'gateway', host: '127.0.0.1', port: 0}]})
  const url = `http://127.0.0.1:${proxy.addresses[0].port}/hello`
  const threshold = 5
  const results = []
  let leaks = 0
  for (let t = 0; t < trials; t++) {
    // a new DR each trial replaces the cluster, so every trial starts with fresh outlier state
    proxy.applySnapshot({
      ...base,
      generation: t + 2,
      destinationRules: [{apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: {name: 'hello', namespace: NS}, spec: {host: 'hello', trafficPolicy: {outlierDetection: {consecutive5xxErrors: threshold, interval: `${10 + t}s`, baseEjectionTime: '30s', maxEjectionPercent: 100}}}}],
    })
    sentAt.length = 0
    const cluster = () => proxy.clusterStatus().find((c) => c.name.startsWith('outbound|5000||'))
    for (let i = 0; i < 200; i++) {
      await (await request(url)).body.dump()
      if (cluster().hosts.some((h) => h.ejected)) break
    }
    const h = cluster().hosts.find((x) => x.ejected)
    if (!h || sentAt.length < threshold) throw new Error('no ejection observed')
    const ejectedAt = h.lastEjectedAt - performance.timeOrigin
    results.push(ejectedAt - sentAt[threshold - 1])
    const before = sentAt.length
    for (let i = 0; i < 30; i++) await (await request(url)).body.dump()
    leaks += sentAt.length - before
  }
  await proxy.close()
  for (const s of servers) {
    s.closeAllConnections()
    s.close()
  }
  results.sort((a, b) => a - b)
  return {trials, p50: quantile(results, 0.5), max: results[results.length - 1], requestsToEjectedHostAfterwards: leaks}
}

async function main() {
  const {values} = parseArgs({options: {duration: {type: 'string', default: '5'}, rounds: {type: 'string', default: '3'}, connections: {type: 'string', default: '10'}, rate: {type: 'string', default: '1000'}, json: {type: 'boolean', default: false}}})
  const duration = Number(values.duration)
  const rounds = Number(values.rounds)
  const connections = Number(values.connections)
  const rate = Number(values.rate)
  const port = 20000 + Math.floor(Math.random() * 15000)
  const kids = []
  try {
    const hello = await child('hello', {host: '127.77.0.2', port})
    kids.push(hello.proc)
    const gw1 = await child('gateway', {endpointAddr: '127.77.0.2', targetPort: port})
    kids.push(gw1.proc)
    const side = await child('sidecar', {podIP: '127.77.0.3', containerPort: port})
    kids.push(side.proc)
    const gw2 = await child('gateway', {endpointAddr: '127.77.0.3', targetPort: port})
    kids.push(gw2.proc)
    const bare = await child('bare', {endpointAddr: '127.77.0.2', targetPort: port})
    kids.push(bare.proc)
    const raw = await child('raw', {endpointAddr: '127.77.0.2', targetPort: port})
    kids.push(raw.proc)
    const paths = {
      direct: `http://127.77.0.2:${port}/hello`,
      gateway: `http://127.0.0.1:${gw1.port}/hello`,
      twoHops: `http://127.0.0.1:${gw2.port}/hello`,
      pod: `http://127.77.0.3:${side.port}/hello`,
      bare: `http://127.0.0.1:${bare.port}/hello`,
      raw: `http://127.0.0.1:${raw.port}/hello`,
    }
    // warm-up
    for (const u of Object.values(paths)) await cannon(u, {duration: 1, connections})
    const runs = {direct: [], gateway: [], twoHops: [], pod: [], bare: [], raw: []}
    const order = Object.keys(paths)
    for (let r = 0; r < rounds; r++) {
      const o = r % 2 === 0 ? order : [...order].reverse()
      for (const k of o) runs[k].push(await cannon(paths[k], {duration, connections}))
    }
    const summary = (k) => ({rps: median(runs[k].map((x) => x.rps)), p50: median(runs[k].map((x) => x.p50)), p99: median(runs[k].map((x) => x.p99)), errors: runs[k].reduce((s, x) => s + x.non2xx, 0)})
    const thr = {direct: summary('direct'), gateway: summary('gateway'), twoHops: summary('twoHops'), pod: summary('pod'), bare: summary('bare'), raw: summary('raw')}
    // ratios per round (the paths of one round run back to back), then the median
    const ratio = (k) => median(runs[k].map((x, i) => x.rps / runs.direct[i].rps))
    const fixed = {}
    for (const k of ['direct', 'gateway', 'twoHops']) fixed[k] = await cannon(paths[k], {duration, connections, rate})
    const ejection = await ejectionDetection(20)
    const out = {
      machine: {node: process.version, cpus: (await import('node:os')).cpus().length},
      params: {duration, rounds, connections, rate},
      throughput: thr,
      ratios: {gatewayVsDirect: ratio('gateway'), twoHopsVsDirect: ratio('twoHops'), twoHopsVsPod: median(runs.twoHops.map((x, i) => x.rps / runs.pod[i].rps)), bareVsDirect: ratio('bare'), rawVsDirect: ratio('raw'), gatewayVsBare: median(runs.gateway.map((x, i) => x.rps / runs.bare[i].rps)), gatewayVsRaw: median(runs.gateway.map((x, i) => x.rps / runs.raw[i].rps))},
      rounds: Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, v.map((x) => Math.round(x.rps))])),
      fixedRate: {...fixed, addedP50ms: {gateway: fixed.gateway.p50 - fixed.direct.p50, twoHops: fixed.twoHops.p50 - fixed.direct.p50}},
      ejectionDetectionMs: ejection,
      targets: {
        gatewayAtLeast40PctOfDirect: ratio('gateway') >= 0.4,
        addedP50AtMost0_5ms: fixed.gateway.p50 - fixed.direct.p50 <= 0.5,
        ejectionWithin100ms: ejection.max <= 100,
      },
    }
    if (values.json) console.log(JSON.stringify(out, null, 2))
    else {
      const f = (x) => x.toFixed(2)
      console.log(`throughput (${connections} connections, ${duration}s × ${rounds} rounds, medians):`)
      for (const k of Object.keys(thr)) console.log(`  ${k.padEnd(8)} ${Math.round(thr[k].rps).toString().padStart(7)} req/s  p50 ${f(thr[k].p50)} ms  p99 ${f(thr[k].p99)} ms  errors ${thr[k].errors}`)
      const pct = (x) => `${(x * 100).toFixed(1)}%`
      console.log(`  per-round req/s: ${Object.entries(out.rounds).map(([k, v]) => `${k} ${v.join('/')}`).join(', ')}`)
      console.log(`  median per-round ratio: gateway/direct ${pct(out.ratios.gatewayVsDirect)}, two hops/direct ${pct(out.ratios.twoHopsVsDirect)}, two hops/pod ${pct(out.ratios.twoHopsVsPod)}, bare/direct ${pct(out.ratios.bareVsDirect)}, raw/direct ${pct(out.ratios.rawVsDirect)}, gateway/bare ${pct(out.ratios.gatewayVsBare)}, gateway/raw ${pct(out.ratios.gatewayVsRaw)}`)
      console.log(`fixed rate ${rate} req/s (${duration}s):`)
      for (const k of Object.keys(fixed)) console.log(`  ${k.padEnd(8)} p50 ${f(fixed[k].p50)} ms  p99 ${f(fixed[k].p99)} ms  (${fixed[k].total} requests)`)
      console.log(`  added p50: gateway ${f(out.fixedRate.addedP50ms.gateway)} ms, two hops ${f(out.fixedRate.addedP50ms.twoHops)} ms`)
      console.log(`ejection detection over ${ejection.trials} trials: p50 ${f(ejection.p50)} ms, max ${f(ejection.max)} ms; requests to the ejected host afterwards: ${ejection.requestsToEjectedHostAfterwards}`)
      console.log(`targets: ${JSON.stringify(out.targets)}`)
    }
  } finally {
    for (const k of kids) k.kill()
  }
}

if (role !== 'main') {
  process.on('message', (m) => {
    const fn = {hello: runHello, gateway: runGateway, sidecar: runSidecar, bare: runBare, raw: runRaw}[role]
    fn(m).catch((e) => {
      console.error(e)
      process.exit(1)
    })
  })
} else {
  await main()
}
