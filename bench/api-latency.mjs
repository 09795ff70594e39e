#!/usr/bin/env node
// Latency of the embedded Kubernetes API (meshd's API server + FileStore) over HTTPS with the
// bearer token, as kubectl and client-node see it. The server runs in its own process.
// Build first: npm run build (or npx tsc -p tsconfig.json --noEmitOnError false)
//   node bench/api-latency.mjs [--ops 1000] [--concurrency 16] [--json]
//
// Measured, sequentially (one request in flight) unless noted:
//   create   POST a ConfigMap                       (acknowledged = fsync'd journal line)
//   apply    PATCH application/apply-patch+yaml of a VirtualService that changes its weights
//   get      GET a ConfigMap
//   watch    write → watch event: from sending a merge PATCH until its MODIFIED event arrives on
//            an open watch; also where the event lands relative to the write's response
//   create xN  creates with N in flight (journal group commit), as operations per second
//   open     FileStore.open of the resulting state (snapshot + journal replay)
// The same run is repeated with fsync disabled so the cost of durability shows as a ratio.
import {fork} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {mkdtempSync, rmSync} from 'node:fs'
import https from 'node:https'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {parseArgs} from 'node:util'
import {fileURLToPath} from 'node:url'

const dist = new URL('../dist/', import.meta.url)
const load = (p) => import(new URL(p, dist).href)

// ------------------------------------------------------------------ server role

async function runServer(dir, fsync) {
  const {FileStore} = await load('local/api/store.js')
  const {createApiServer} = await load('local/api/server.js')
  const {createServingCa} = await load('local/api/serving-cert.js')
  const ca = await createServingCa(join(dir, 'pki'))
  const store = await FileStore.open({dir: join(dir, 'state'), fsync})
  const token = randomBytes(24).toString('hex')
  const server = createApiServer({store, token, tlsKey: ca.key, tlsCert: ca.cert})
  server.listen(0, '127.0.0.1', () => process.send({port: server.address().port, token, ca: ca.caCert}))
  process.on('message', async (m) => {
    if (m === 'stop') {
      server.closeAllConnections()
      server.close()
      await store.close()
      process.exit(0)
    }
  })
}

// ------------------------------------------------------------------ client side

function client({port, token, ca}, maxSockets = 1) {
  const agent = new https.Agent({ca, keepAlive: true, maxSockets})
  return {
    agent,
    request(method, path, body, contentType = 'application/json') {
      return new Promise((resolve, reject) => {
        const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body)
        const headers = {authorization: `Bearer ${token}`}
        if (data !== undefined) headers['content-type'] = contentType
        const req = https.request({host: '127.0.0.1', port, path, method, headers, agent}, (res) => {
          const chunks = []
          res.on('data', (c) => chunks.push(c))
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8')
            if (res.statusCode >= 300) reject(new Error(`${method} ${path}: ${res.statusCode} ${text}`))
            else resolve(JSON.parse(text))
          })
        })
        req.on('error', reject)
        req.end(data)
      })
    },
  }
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]
function summary(samples) {
  const s = [...samples].sort((a, b) => a - b)
  return {n: s.length, p50: pct(s, 50), p99: pct(s, 99), mean: s.reduce((a, b) => a + b, 0) / s.length}
}

async function timed(n, fn) {
  const out = []
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    await fn(i)
    out.push(performance.now() - t)
  }
  return out
}

const vsDoc = (i, w) =>
  `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: vs-${i}\n  namespace: default\nspec:\n  hosts: [hello]\n  http:\n  - route:\n    - destination: {host: hello, subset: v1}\n      weight: ${w}\n    - destination: {host: hello, subset: v2}\n      weight: ${100 - w}\n`

async function runVariant(fsync, ops, concurrency) {
  const dir = mkdtempSync(join(tmpdir(), 'mesh-bench-api-'))
  const child = fork(fileURLToPath(import.meta.url), ['--role=server', dir, String(fsync)], {stdio: ['ignore', 'inherit', 'inherit', 'ipc']})
  try {
    const info = await new Promise((resolve, reject) => {
      child.once('message', resolve)
      child.once('exit', (c) => reject(new Error(`server exited (${c})`)))
    })
    const c = client(info)
    const CM = '/api/v1/namespaces/default/configmaps'
    const VS = '/apis/networking.istio.io/v1/namespaces/default/virtualservices'
    // warm-up (TLS session, JIT)
    for (let i = 0; i < 50; i++) await c.request('POST', CM, {apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: `warm-${i}`}, data: {}})

    const create = await timed(ops, (i) => c.request('POST', CM, {apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: `cm-${i}`}, data: {i: String(i)}}))
    const distinct = Math.min(100, ops)
    // every timed apply changes the weights of an existing VirtualService (no no-op applies)
    for (let i = 0; i < distinct; i++) await c.request('PATCH', `${VS}/vs-${i}?fieldManager=bench`, vsDoc(i, 50), 'application/apply-patch+yaml')
    const apply = await timed(ops, (i) => c.request('PATCH', `${VS}/vs-${i % distinct}?fieldManager=bench`, vsDoc(i % distinct, Math.floor(i / distinct) % 2 ? 90 : 10), 'application/apply-patch+yaml'))
    const get = await timed(ops, (i) => c.request('GET', `${CM}/cm-${i}`))

    // watch: one open stream, sequential writes, each matched to its event by the value it sets
    const arrived = new Map()
    const rv = (await c.request('GET', `${CM}?limit=1`)).metadata.resourceVersion
    const watchReq = await new Promise((resolve, reject) => {
      const req = https.request({host: '127.0.0.1', port: info.port, path: `${CM}?watch=1&resourceVersion=${rv}`, headers: {authorization: `Bearer ${info.token}`}, ca: info.ca}, (res) => {
        let buf = ''
        res.setEncoding('utf8')
        res.on('data', (d) => {
          const now = performance.now()
          buf += d
          let k
          while ((k = buf.indexOf('\n')) >= 0) {
            const ev = JSON.parse(buf.slice(0, k))
            buf = buf.slice(k + 1)
            const v = ev.object?.data?.w
            if (ev.type === 'MODIFIED' && v !== undefined) arrived.get(Number(v))?.(now)
          }
        })
        resolve(req)
      })
      req.on('error', reject)
      req.end()
    })
    const e2e = []
    const afterResponse = []
    for (let i = 0; i < ops; i++) {
      const event = new Promise((resolve) => arrived.set(i, resolve))
      const t0 = performance.now()
      await c.request('PATCH', `${CM}/cm-${i % distinct}`, {data: {w: String(i)}}, 'application/merge-patch+json')
      const t1 = performance.now()
      const t2 = await event
      e2e.push(t2 - t0)
      afterResponse.push(t2 - t1)
    }
    watchReq.destroy()

    // throughput with several writes in flight
    const cc = client(info, concurrency)
    let next = 0
    const t0 = performance.now()
    await Promise.all(
      Array.from({length: concurrency}, async () => {
        while (next < ops) {
          const i = next++
          await cc.request('POST', CM, {apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: `par-${i}`}, data: {}})
        }
      }),
    )
    const parSecs = (performance.now() - t0) / 1000
    c.agent.destroy()
    cc.agent.destroy()

    child.send('stop')
    await new Promise((r) => child.once('exit', r))
    // cold open of what this run wrote (snapshot + journal replay)
    const {FileStore} = await load('local/api/store.js')
    const t3 = performance.now()
    const s = await FileStore.open({dir: join(dir, 'state'), fsync})
    const openMs = performance.now() - t3
    const objects = s.stats().objects
    await s.close()
    return {
      fsync,
      create: summary(create),
      apply: summary(apply),
      get: summary(get),
      watch: summary(e2e),
      eventAfterResponse: summary(afterResponse),
      eventsBeforeResponse: afterResponse.filter((x) => x <= 0).length,
      parallelCreatesPerSec: ops / parSecs,
      openMs,
      objects,
    }
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL')
    rmSync(dir, {recursive: true, force: true})
  }
}

async function main() {
  const {values} = parseArgs({options: {ops: {type: 'string', default: '1000'}, concurrency: {type: 'string', default: '16'}, json: {type: 'boolean', default: false}}})
  const ops = Number(values.ops)
  const concurrency = Number(values.concurrency)
  const durable = await runVariant(true, ops, concurrency)
  const loose = await runVariant(false, ops, concurrency)
  if (values.json) {
    console.log(JSON.stringify({ops, concurrency, durable, noFsync: loose}, null, 2))
    return
  }
  const f = (x) => x.toFixed(2)
  const rows = [
    ['create (POST)', durable.create, loose.create],
    ['apply (SSA PATCH)', durable.apply, loose.apply],
    ['get', durable.get, loose.get],
    ['write → watch event', durable.watch, loose.watch],
  ]
  console.log(`meshd API over HTTPS, ${ops} operations each, one request in flight (ms)`)
  console.log('operation              fsync p50  p99     no-fsync p50  p99     p50 ratio')
  for (const [name, a, b] of rows) {
    console.log(`${name.padEnd(22)} ${f(a.p50).padStart(9)} ${f(a.p99).padStart(7)}  ${f(b.p50).padStart(12)} ${f(b.p99).padStart(7)}  ${(a.p50 / b.p50).toFixed(2).padStart(9)}`)
  }
  console.log(`creates with ${concurrency} in flight: ${durable.parallelCreatesPerSec.toFixed(0)}/s with fsync, ${loose.parallelCreatesPerSec.toFixed(0)}/s without`)
  console.log(`watch event relative to the write's response: p50 ${f(durable.eventAfterResponse.p50)} ms, p99 ${f(durable.eventAfterResponse.p99)} ms (${durable.eventsBeforeResponse}/${ops} arrived before the response)`)
  console.log(`cold FileStore.open of ${durable.objects} objects: ${f(durable.openMs)} ms (fsync run), ${f(loose.openMs)} ms (no-fsync run)`)
}

if (process.argv[2] === '--role=server') await runServer(process.argv[3], process.argv[4] === 'true')
else await main()
