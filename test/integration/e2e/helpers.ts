// End-to-end helpers: a real embedded lab (meshd, gateway and pod processes) in a temp
// MESH_HOME, driven with the real CLI, kubectl, curl and openssl. Every lab started here is
// stopped by stopLab: `mesh lab down --purge`, then SIGKILL by pid file (meshd, its pod
// children, the gateway) as a fallback, then the home is removed.
import {existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {execa} from 'execa'
import {load as loadYaml} from 'js-yaml'
import lockfile from 'proper-lockfile'
import {Agent, Client, request} from 'undici'
import {buildIfStale, ROOT} from '../../helpers/build.js'
import {until as untilShared} from '../../helpers/lab-process.js'

export {ROOT}

// ------------------------------------------------------------------ build

/**
 * Compiles src/ into dist/ when dist/ is older (never `rm -rf dist`; errors in others' files
 * do not stop the emit). Files of this suite run in parallel: one build at a time.
 */
export async function ensureBuilt(): Promise<void> {
  const stamp = join(tmpdir(), 'mesh-e2e-build.lock')
  if (!existsSync(stamp)) writeFileSync(stamp, '')
  const release = await lockfile.lock(stamp, {retries: {retries: 200, minTimeout: 250, maxTimeout: 1000}, stale: 180_000})
  try {
    buildIfStale('dist/local/meshd.js', 'local')
  } finally {
    await release()
  }
}

// ------------------------------------------------------------------ lab

export interface LabPod {
  name: string
  namespace: string
  ip: string
  ready: boolean
  labels: Record<string, string>
  deleting: boolean
}

export interface ProxyStatusReport {
  generation: number
  synced: boolean
  covered: number
  proxies: Array<{proxy: string; kind: string; sent: number; acked: number; state: string}>
}

export interface Lab {
  home: string
  /** http://127.0.0.1:<port> of the ingress gateway */
  ingress: string
  ingressPort: number
  /** http://127.0.0.1:<port> of the gateway's admin endpoint */
  gatewayAdmin: string
  meshdPid: number
  apiUrl: string
  /** the mesh CA directory (root-cert.pem / root-key.pem) */
  meshCaDir: string
  /** `mesh <args>` against this lab */
  mesh(args: string[], env?: NodeJS.ProcessEnv): Promise<Run>
  /** kubectl with the lab's kubeconfig; throws on a non-zero exit */
  kubectl(args: string[], input?: string): Promise<string>
  /** kubectl apply -f - ; returns the highest resourceVersion written */
  apply(yaml: string): Promise<number>
  /** kubectl delete -f - --ignore-not-found; returns the store resourceVersion after it */
  remove(yaml: string): Promise<number>
  /** the store's current resourceVersion (a list's resourceVersion) */
  resourceVersion(): Promise<number>
  /** long-polls /mesh/v1/proxy-status?wait=<rv>; throws when not every proxy acknowledged in time */
  waitSynced(rv: number, timeoutMs?: number): Promise<ProxyStatusReport>
  proxyStatus(): Promise<ProxyStatusReport>
  pods(namespace: string, selector: string): Promise<LabPod[]>
  /** waits until `count` pods of the selector are Ready (and none is terminating), returns them */
  readyPods(namespace: string, selector: string, count: number, timeoutMs?: number): Promise<LabPod[]>
  /** the OS process of a pod (a child of meshd titled `mesh-pod <ns>/<name>`) */
  podPid(namespace: string, name: string): number | undefined
  /** closes the API client's connections (stopLab calls it) */
  close(): Promise<void>
}

export interface Run {
  status: number
  stdout: string
  stderr: string
  json?: any // eslint-disable-line @typescript-eslint/no-explicit-any
}

const runMesh = async (home: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> => {
  const r = await execa(process.execPath, [join(ROOT, 'bin/run.js'), ...args], {
    cwd: ROOT,
    env: {...process.env, MESH_HOME: home, CI: 'true', NO_COLOR: '1', MESH_CONTEXT: '', ...env},
    reject: false,
    timeout: 120_000,
    stdin: 'ignore',
  })
  let json
  if (args.includes('--json')) {
    try {
      json = JSON.parse(String(r.stdout))
    } catch {
      json = undefined
    }
  }
  return {status: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr), json}
}

/** `mesh <args>` with MESH_HOME=home (no lab needed), as a user runs it. */
export const meshIn = (home: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> => runMesh(home, args, env)

/** `mesh lab up` in a fresh temp MESH_HOME (env is passed to the CLI and so to meshd). */
export async function startLab(opts: {env?: NodeJS.ProcessEnv; prefix?: string} = {}): Promise<Lab> {
  await ensureBuilt()
  const home = mkdtempSync(join(tmpdir(), opts.prefix ?? 'mesh-e2e-'))
  try {
    return await openLab(home, opts.env)
  } catch (e) {
    // the caller never gets a Lab to stop: stop whatever came up here
    await stopLab(home)
    throw e
  }
}

async function openLab(home: string, env: NodeJS.ProcessEnv | undefined): Promise<Lab> {
  const up = await runMesh(home, ['lab', 'up', '--json'], env)
  if (up.status !== 0) throw new Error(`lab up failed (${up.status}): ${up.stdout}\n${up.stderr}`)
  const state = JSON.parse(readFileSync(join(home, 'local/meshd.json'), 'utf8')) as {pid: number; apiPort: number; ingressPort: number; gateway?: {adminPort?: number}}
  if (!state.gateway?.adminPort) throw new Error('meshd.json has no gateway admin port')
  const kc = loadYaml(readFileSync(join(home, 'kubeconfig'), 'utf8')) as any // eslint-disable-line @typescript-eslint/no-explicit-any
  const cluster = kc.clusters[0].cluster
  const token: string = kc.users[0].user.token
  const ca = Buffer.from(cluster['certificate-authority-data'], 'base64').toString('utf8')
  const agent = new Agent({connect: {ca}})
  const apiUrl: string = cluster.server
  const cacheDir = join(home, '.kube-cache')

  const kubectl = async (args: string[], input?: string): Promise<string> => {
    const r = await execa('kubectl', ['--kubeconfig', join(home, 'kubeconfig'), '--cache-dir', cacheDir, ...args], {reject: false, timeout: 60_000, ...(input === undefined ? {stdin: 'ignore' as const} : {input})})
    if (r.exitCode !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${r.exitCode}: ${r.stderr}`)
    return String(r.stdout)
  }
  const resourceVersion = async () => {
    // a raw list keeps its resourceVersion (kubectl get -o json rebuilds the List without it)
    const rv = Number(JSON.parse(await kubectl(['get', '--raw', '/api/v1/namespaces'])).metadata.resourceVersion)
    if (!Number.isFinite(rv) || rv <= 0) throw new Error(`no resourceVersion in the namespace list`)
    return rv
  }
  const api = async (path: string): Promise<any> => { // eslint-disable-line @typescript-eslint/no-explicit-any
    const res = await request(`${apiUrl}${path}`, {dispatcher: agent, headers: {authorization: `Bearer ${token}`}})
    const text = await res.body.text()
    if (res.statusCode !== 200) throw new Error(`GET ${path}: ${res.statusCode} ${text}`)
    return JSON.parse(text)
  }
  const pods = async (namespace: string, selector: string): Promise<LabPod[]> => {
    const list = JSON.parse(await kubectl(['get', 'pods', '-n', namespace, '-l', selector, '-o', 'json'])) as {items: any[]} // eslint-disable-line @typescript-eslint/no-explicit-any
    return list.items.map((p) => ({
      name: p.metadata.name,
      namespace: p.metadata.namespace,
      ip: p.status?.podIP ?? '',
      labels: p.metadata.labels ?? {},
      deleting: Boolean(p.metadata.deletionTimestamp),
      ready: (p.status?.conditions ?? []).some((c: {type: string; status: string}) => c.type === 'Ready' && c.status === 'True'),
    }))
  }

  const lab: Lab = {
    home,
    ingress: `http://127.0.0.1:${state.ingressPort}`,
    ingressPort: state.ingressPort,
    gatewayAdmin: `http://127.0.0.1:${state.gateway.adminPort}`,
    meshdPid: state.pid,
    apiUrl,
    meshCaDir: join(home, 'local/pki/mesh'),
    mesh: (args, env) => runMesh(home, args, env),
    kubectl,
    async apply(yaml) {
      const out = await kubectl(['apply', '-f', '-', '-o', 'json'], yaml)
      const doc = JSON.parse(out) as {items?: Array<{metadata: {resourceVersion: string}}>; metadata: {resourceVersion: string}}
      const items = doc.items ?? [doc]
      return Math.max(...items.map((i) => Number(i.metadata.resourceVersion)))
    },
    async remove(yaml) {
      await kubectl(['delete', '-f', '-', '--ignore-not-found', '--wait=false'], yaml)
      return resourceVersion()
    },
    resourceVersion,
    async waitSynced(rv, timeoutMs = 20_000) {
      // every Running pod with a sidecar, and the gateway, must be among the acknowledging
      // proxies: one that is not subscribed (yet, or any more) would be skipped by the wait
      const end = Date.now() + timeoutMs
      let r: ProxyStatusReport | undefined
      let missing: string[] = []
      do {
        r = (await api(`/mesh/v1/proxy-status?wait=${rv}&timeoutMs=${Math.max(1, end - Date.now())}`)) as ProxyStatusReport
        const list = (await api('/api/v1/pods')) as {items: any[]} // eslint-disable-line @typescript-eslint/no-explicit-any
        const want = list.items
          .filter((p) => p.status?.phase === 'Running' && !p.metadata.deletionTimestamp && p.metadata.annotations?.['sidecar.istio.io/status'])
          .map((p) => `${p.metadata.name}.${p.metadata.namespace}`)
        const have = new Set(r.proxies.map((p) => p.proxy))
        missing = [...want, 'istio-ingressgateway.istio-system'].filter((id) => !have.has(id))
        if (r.synced && r.covered >= rv && missing.length === 0 && r.proxies.every((p) => p.state === 'SYNCED')) return r
        await sleep(50)
      } while (Date.now() < end)
      throw new Error(`proxies not SYNCED at ${rv} within ${timeoutMs} ms (not subscribed: ${missing.join(', ') || 'none'}): ${JSON.stringify(r)}`)
    },
    proxyStatus: () => api('/mesh/v1/proxy-status'),
    pods,
    async readyPods(namespace, selector, count, timeoutMs = 30_000) {
      return until(`${count} Ready pods ${namespace}/${selector}`, async () => {
        const ps = (await pods(namespace, selector)).filter((p) => !p.deleting)
        return ps.length === count && ps.every((p) => p.ready && p.ip) ? ps : undefined
      }, timeoutMs, 200)
    },
    podPid(namespace, name) {
      return childrenOf(state.pid).find((c) => c.cmd === `mesh-pod ${namespace}/${name}`)?.pid
    },
    close: () => agent.close().catch(() => undefined),
  }
  return lab
}

function childrenOf(pid: number): Array<{pid: number; cmd: string}> {
  const out: Array<{pid: number; cmd: string}> = []
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid !== pid) continue
      out.push({pid: Number(d), cmd: readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ').trim()})
    } catch {
      // exited while we looked
    }
  }
  return out
}

const readPid = (file: string): number | undefined => {
  try {
    return Number(readFileSync(file, 'utf8').trim()) || undefined
  } catch {
    return undefined
  }
}

const cmdline = (pid: number): string => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ')
  } catch {
    return ''
  }
}

/** lab down --purge, then SIGKILL what the pid files name (and meshd's pod children), then rm the home. */
export async function stopLab(lab: Lab | string | undefined): Promise<void> {
  if (!lab) return
  const home = typeof lab === 'string' ? lab : lab.home
  if (typeof lab !== 'string') await lab.close()
  const meshd = readPid(join(home, 'local/meshd.pid')) ?? (typeof lab === 'string' ? undefined : lab.meshdPid)
  const gateway = readPid(join(home, 'local/gateway.pid'))
  const children = meshd ? childrenOf(meshd) : []
  await runMesh(home, ['lab', 'down', '--purge', '--timeout', '15']).catch(() => undefined)
  const kill = (pid: number | undefined, mustMention: string) => {
    if (!pid || !cmdline(pid).includes(mustMention)) return
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
  for (const c of children) kill(c.pid, c.cmd.startsWith('mesh-pod ') ? 'mesh-pod ' : home)
  kill(gateway, home)
  kill(meshd, home)
  rmSync(home, {recursive: true, force: true})
}

// ------------------------------------------------------------------ callers

export interface CurlResult {
  /** curl's exit code (0, 7 refused, 56 reset, 28 timeout, …) */
  exit: number
  /** %{http_code}: 0 when no response came back (curl prints 000) */
  code: number
  body: string
  stderr: string
}

/** Runs the real curl binary; `-w` adds the status code after the body. */
export async function curl(args: string[], timeoutSeconds = 10): Promise<CurlResult> {
  const r = await execa('curl', ['-sS', '--max-time', String(timeoutSeconds), '-w', '\n%{http_code}', ...args], {reject: false, stdin: 'ignore', timeout: (timeoutSeconds + 5) * 1000})
  const out = String(r.stdout)
  const nl = out.lastIndexOf('\n')
  return {exit: r.exitCode ?? -1, code: Number(out.slice(nl + 1)) || 0, body: out.slice(0, Math.max(0, nl)), stderr: String(r.stderr)}
}

export interface CallOptions {
  method?: string
  headers?: Record<string, string>
}

const curlOpts = (o: CallOptions): string[] => [
  ...(o.method ? ['-X', o.method] : []),
  ...Object.entries(o.headers ?? {}).flatMap(([k, v]) => ['-H', `${k}: ${v}`]),
]

/**
 * A meshed client pod calling `http://<host>:<port><path>`: curl binds the pod's address and
 * connects to its sidecar's outbound listener (<podIP>:15001), as iptables capture would, with
 * the URL's host in Host.
 */
export function meshedCurl(client: {ip: string}, host: string, port: number, path: string, o: CallOptions = {}): Promise<CurlResult> {
  return curl(['--interface', client.ip, '--connect-to', `${host}:${port}:${client.ip}:15001`, ...curlOpts(o), `http://${host}:${port}${path}`])
}

/** A client without a sidecar calling a pod directly in plaintext, from its own address. */
export function legacyCurl(client: {ip: string}, server: {ip: string}, port: number, path: string, o: CallOptions = {}): Promise<CurlResult> {
  return curl(['--interface', client.ip, ...curlOpts(o), `http://${server.ip}:${port}${path}`])
}

// ------------------------------------------------------------------ misc

/** Polls fn until it returns something truthy (every 100 ms here: the e2e checks are heavier). */
export const until = <T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 20_000, everyMs = 100): Promise<T> => untilShared(what, fn, timeoutMs, everyMs)

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** One request on loopback (undici, so a Host header is sent as given); body as text. */
export async function get(url: string, init: {method?: string; headers?: Record<string, string>; body?: string} = {}): Promise<{status: number; body: string; headers: Record<string, string | string[] | undefined>}> {
  const r = await request(url, {method: (init.method ?? 'GET') as 'GET', headers: init.headers, body: init.body, headersTimeout: 10_000, bodyTimeout: 10_000})
  return {status: r.statusCode, body: await r.body.text(), headers: r.headers}
}

/** Samples of one Prometheus metric, with labels parsed. */
export function promSamples(text: string, metric: string): Array<{labels: Record<string, string>; value: number}> {
  const out: Array<{labels: Record<string, string>; value: number}> = []
  for (const line of text.split('\n')) {
    if (!line.startsWith(metric + '{') && !line.startsWith(metric + ' ')) continue
    const m = /^[^{ ]+(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m) continue
    const labels: Record<string, string> = {}
    for (const l of (m[1] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2]
    out.push({labels, value: Number(m[2])})
  }
  return out
}

export function yamlDocs(...docs: string[]): string {
  return docs.map((d) => d.trim()).join('\n---\n') + '\n'
}

// ------------------------------------------------------------------ workloads

/**
 * A namespace with sidecar injection and Istio's task shape: a helloworld server `hello`
 * (Service port 5000), a curl client, and optionally fortio `echo` (Service port 8080) whose
 * /debug page echoes the request headers the app received, as real fortio does.
 */
const serviceAccount = (name: string, ns: string) => `apiVersion: v1
kind: ServiceAccount
metadata: {name: ${name}, namespace: ${ns}}`

export function meshedNamespace(ns: string, opts: {echo?: boolean} = {}): string {
  const sa = (name: string) => serviceAccount(name, ns)
  const docs = [
    `apiVersion: v1
kind: Namespace
metadata:
  name: ${ns}
  labels: {istio-injection: enabled}`,
    sa('hello'),
    sa('curl'),
    `apiVersion: v1
kind: Service
metadata: {name: hello, namespace: ${ns}, labels: {app: hello}}
spec:
  selector: {app: hello}
  ports: [{name: http, port: 5000, targetPort: 5000}]`,
    `apiVersion: apps/v1
kind: Deployment
metadata: {name: hello, namespace: ${ns}}
spec:
  replicas: 1
  selector: {matchLabels: {app: hello, version: v1}}
  template:
    metadata: {labels: {app: hello, version: v1}}
    spec:
      serviceAccountName: hello
      containers:
        - name: hello
          image: docker.io/istio/examples-helloworld-v1:1.0
          ports: [{name: http, containerPort: 5000}]
          readinessProbe: {httpGet: {path: /health, port: 5000}, periodSeconds: 1}`,
    `apiVersion: apps/v1
kind: Deployment
metadata: {name: curl, namespace: ${ns}}
spec:
  replicas: 1
  selector: {matchLabels: {app: curl}}
  template:
    metadata: {labels: {app: curl}}
    spec:
      serviceAccountName: curl
      terminationGracePeriodSeconds: 0
      containers:
        - name: curl
          image: docker.io/curlimages/curl:8.11.1
          command: [sleep, infinity]`,
  ]
  if (opts.echo) docs.push(...echoWorkload(ns))
  return yamlDocs(...docs)
}

/**
 * fortio as an echo server (`echo`, port 8080, its own service account): /debug echoes the
 * request headers the app received, X-Forwarded-Client-Cert included.
 */
export function echoWorkload(ns: string): string[] {
  return [
    serviceAccount('echo', ns),
    `apiVersion: v1
kind: Service
metadata: {name: echo, namespace: ${ns}, labels: {app: echo}}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 8080, targetPort: 8080}]`,
    `apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: ${ns}}
spec:
  replicas: 1
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      serviceAccountName: echo
      containers:
        - name: echo
          image: docker.io/fortio/fortio:1.69.5
          args: [server, -http-port, "8080"]
          ports: [{name: http, containerPort: 8080}]
          readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}`,
  ]
}

/** The X-Forwarded-Client-Cert line of a fortio /debug page, if the app received one. */
export const echoedXfcc = (body: string): string | undefined => /^X-Forwarded-Client-Cert: (.*)$/im.exec(body)?.[1]

// ------------------------------------------------------------------ openssl

export interface OpensslResult {
  exit: number
  stdout: string
  stderr: string
  /** the HTTP status line's code when a response came back */
  httpStatus?: number
  /** the PEM of the certificate the server presented, when the handshake got that far */
  serverCertPem?: string
}

/**
 * `openssl s_client` to host:port offering Istio's ALPN, optionally with a client certificate,
 * verifying the server against `caFile` when given; sends `httpRequest` after the handshake.
 */
export async function opensslClient(o: {host: string; port: number; certFile?: string; keyFile?: string; caFile?: string; httpRequest?: string; extra?: string[]}): Promise<OpensslResult> {
  const args = ['s_client', '-connect', `${o.host}:${o.port}`, '-alpn', 'istio,http/1.1', '-ign_eof', ...(o.extra ?? [])]
  if (o.certFile) args.push('-cert', o.certFile, '-key', o.keyFile ?? o.certFile)
  if (o.caFile) args.push('-CAfile', o.caFile, '-verify_return_error')
  const r = await execa('openssl', args, {input: o.httpRequest ?? '', reject: false, timeout: 15_000})
  const stdout = String(r.stdout)
  const status = /HTTP\/1\.[01] (\d{3}) /.exec(stdout)?.[1]
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(stdout)?.[0]
  return {exit: r.exitCode ?? -1, stdout, stderr: String(r.stderr), ...(status ? {httpStatus: Number(status)} : {}), ...(pem ? {serverCertPem: pem + '\n'} : {})}
}

/** `openssl x509 -noout -ext subjectAltName` of a PEM. */
export async function opensslSan(pem: string): Promise<string> {
  const r = await execa('openssl', ['x509', '-noout', '-ext', 'subjectAltName'], {input: pem, reject: false})
  return String(r.stdout)
}

export const httpGet = (host: string, path: string, method = 'GET') => `${method} ${path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: openssl-e2e\r\nConnection: close\r\n\r\n`

// ------------------------------------------------------------------ load

export interface LoadResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
  /** a client-side failure (no HTTP response), e.g. ECONNRESET */
  error?: string
}

/**
 * fortio-style closed-loop load: `connections` kept-alive connections, each sending its share of
 * `amount` requests one after another. Bounded by count (and a 10 s timeout per request).
 */
export async function load(o: {url: string; connections: number; amount: number; headers?: Record<string, string>; onResponse?: (n: number) => void}): Promise<LoadResponse[]> {
  const u = new URL(o.url)
  const out: LoadResponse[] = []
  const clients = Array.from({length: o.connections}, () => new Client(u.origin, {pipelining: 1, headersTimeout: 10_000, bodyTimeout: 10_000}))
  let next = 0
  try {
    await Promise.all(
      clients.map(async (c) => {
        while (next < o.amount) {
          next++
          try {
            const r = await c.request({path: u.pathname + u.search, method: 'GET', headers: o.headers})
            out.push({status: r.statusCode, headers: r.headers, body: await r.body.text()})
          } catch (e) {
            out.push({status: 0, headers: {}, body: '', error: (e as NodeJS.ErrnoException).code ?? (e as Error).message})
          }
          o.onResponse?.(out.length)
        }
      }),
    )
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)))
  }
  return out
}

export const countBy = <T>(xs: T[], key: (x: T) => string): Record<string, number> => {
  const m: Record<string, number> = {}
  for (const x of xs) m[key(x)] = (m[key(x)] ?? 0) + 1
  return m
}
