// One request to hello as one of the lab's three callers (ADR 0104):
//   ingress — from outside through the ingress gateway;
//   meshed  — the `curl` pod in mesh-lab, through its sidecar (mTLS, identity sa/curl);
//   legacy  — a caller without a sidecar (plaintext, no identity), as from mesh-legacy.
// Embedded cluster: mesh connects itself — to the ingress port, to the curl pod's sidecar
// outbound listener (<podIP>:15001, routed by Host), or in plaintext straight to a hello pod
// (what kube-proxy would do) from the legacy pod's address. Real cluster: `kubectl exec` into
// the curl pods running curl. A reset or refused connection is an observation, not an error.
import http from 'node:http'
import type {KubeObject} from '../cluster/client.js'
import type {Target} from '../cluster/target.js'
import {EXIT, MeshError, invalid} from '../lib/errors.js'
import {PROXY_PORTS} from '../local/dataplane/snapshot.js'
import {LAB} from '../mesh/lab.js'
import {HTTP_METHODS} from '../mesh/rules.js'
import {canExec, type PodExec} from './open-target.js'
import {isPodReady} from './state.js'

export const CALLERS = ['ingress', 'meshed', 'legacy'] as const
export type CallerKind = (typeof CALLERS)[number]

export interface CallRequest {
  /** default /hello */
  path?: string
  /** default GET */
  method?: string
  headers?: Record<string, string>
  body?: string
  /** service called by the meshed and legacy callers, default hello */
  service?: string
  /** its namespace, default mesh-lab */
  namespace?: string
  /** its port, default 5000 */
  port?: number
  /** default 10 s; no answer in time is MESH_CALL_TIMEOUT (69) */
  timeoutMs?: number
}

export type CallOutcome = 'response' | 'reset' | 'refused'

export interface CallResult {
  from: CallerKind
  /** what was requested, e.g. http://hello.mesh-lab.svc.cluster.local:5000/hello */
  url: string
  method: string
  /** HTTP status; 0 when no response came back */
  status: number
  body: string
  /** the connection was reset or refused before a response (what plaintext meets under STRICT) */
  reset: boolean
  outcome: CallOutcome
  /** the socket error behind a reset or refusal, e.g. ECONNRESET (absent for responses) */
  error?: string
  /** response headers, lower-case names (the emulated hello app echoes no request headers) */
  headers: Record<string, string>
  /** how the request travelled, e.g. "sidecar outbound of mesh-lab/curl-… (127.42.0.9:15001)" */
  via: string
  /** the calling pod, for meshed and legacy callers */
  caller?: {namespace: string; pod: string; address?: string}
  /**
   * The caller's identity as the server saw it: the x-forwarded-client-cert the server's sidecar
   * added, when the response shows it (a header, or an echo server such as fortio printing the
   * request headers; the hello app echoes nothing). Absent when nothing visible names it.
   */
  peer?: {xfcc: string; identity?: string}
  /** the pod that was addressed directly (legacy caller on the embedded cluster) */
  server?: {pod: string; address: string}
  durationMs: number
}

export function parseCaller(text: string): CallerKind {
  const v = text.trim().toLowerCase()
  if ((CALLERS as readonly string[]).includes(v)) return v as CallerKind
  throw invalid('MESH_CALLER', `from "${text}" is not one of ${CALLERS.join(', ')}`, 'Call as ingress (through the gateway), meshed (curl pod with a sidecar) or legacy (no sidecar).', 'from')
}

/** "x-user: alice" → ['x-user', 'alice'] */
export function parseHeader(text: string): [string, string] {
  const i = text.indexOf(':')
  const name = i > 0 ? text.slice(0, i).trim() : ''
  if (!name || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
    throw invalid('MESH_HEADER', `header "${text}" is not NAME:VALUE`, 'Write headers as name:value, e.g. --header x-user:alice.', 'header')
  }
  return [name.toLowerCase(), text.slice(i + 1).trim()]
}

function checkRequest(r: CallRequest): Required<Pick<CallRequest, 'path' | 'method' | 'service' | 'namespace' | 'port' | 'timeoutMs'>> {
  const path = r.path ?? LAB.ingressPath
  if (!path.startsWith('/')) throw invalid('MESH_CALL_PATH', `path "${path}" does not start with "/"`, 'Give a request path such as /hello.', 'path')
  const method = (r.method ?? 'GET').trim().toUpperCase()
  if (!(HTTP_METHODS as readonly string[]).includes(method)) {
    throw invalid('MESH_HTTP_METHOD', `method "${r.method}" is not an HTTP method`, `Use one of ${HTTP_METHODS.join(', ')}.`, 'method')
  }
  return {path, method, service: r.service ?? LAB.service, namespace: r.namespace ?? LAB.namespace, port: r.port ?? LAB.port, timeoutMs: r.timeoutMs ?? 10_000}
}

const serviceHost = (service: string, namespace: string, port: number) => `${service}.${namespace}.svc.cluster.local:${port}`

// ------------------------------------------------------------------ one HTTP exchange

export interface HttpExchange {
  host: string
  port: number
  path: string
  method: string
  headers: Record<string, string>
  body?: string
  /** source address (a pod IP on the embedded cluster's loopback network) */
  localAddress?: string
  timeoutMs: number
}

const BODY_LIMIT = 256 * 1024

/** Send one request on a fresh connection; resets and refusals are outcomes, a timeout is an error. */
export function exchange(x: HttpExchange): Promise<{outcome: CallOutcome; status: number; body: string; headers: Record<string, string>; error?: string}> {
  return new Promise((resolve, reject) => {
    let settled = false
    const finish = (v: Parameters<typeof resolve>[0] | Error) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (v instanceof Error) reject(v)
      else resolve(v)
    }
    const headers: Record<string, string> = {...x.headers}
    if (x.body !== undefined) headers['content-length'] = String(Buffer.byteLength(x.body))
    const req = http.request({host: x.host, port: x.port, path: x.path, method: x.method, headers, agent: false, ...(x.localAddress ? {localAddress: x.localAddress} : {})}, (res) => {
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (c: Buffer) => {
        if (size < BODY_LIMIT) chunks.push(c)
        size += c.length
      })
      res.on('end', () => {
        const h: Record<string, string> = {}
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) h[k] = Array.isArray(v) ? v.join(', ') : v
        finish({outcome: 'response', status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: h})
      })
      res.on('error', (e) => finish(classify(e)))
    })
    const timer = setTimeout(() => {
      req.destroy()
      finish(new MeshError('MESH_CALL_TIMEOUT', `no answer from ${x.host}:${x.port} within ${x.timeoutMs} ms`, {suggestion: 'Check the lab with mesh lab status; a pod or proxy may be restarting.', exit: EXIT.unavailable}))
    }, x.timeoutMs)
    const classify = (e: NodeJS.ErrnoException) => {
      const code = e.code ?? ''
      if (code === 'ECONNREFUSED') return {outcome: 'refused' as const, status: 0, body: '', headers: {}, error: code}
      if (code === 'ECONNRESET' || code === 'EPIPE' || /socket hang up/.test(e.message)) return {outcome: 'reset' as const, status: 0, body: '', headers: {}, error: code || 'socket hang up'}
      return new MeshError('MESH_CALL_FAILED', `request to ${x.host}:${x.port} failed: ${code || e.message}`, {suggestion: 'Check the lab with mesh lab status.', exit: EXIT.unavailable, cause: e})
    }
    req.on('error', (e) => finish(classify(e as NodeJS.ErrnoException)))
    req.end(x.body)
  })
}

// ------------------------------------------------------------------ embedded cluster

async function readyPod(target: Target, namespace: string, app: string, role: string): Promise<KubeObject> {
  const pods = await target.client.list('v1', 'Pod', {namespace, labelSelector: `${LAB.appLabel}=${app}`})
  const ready = pods.filter((p) => isPodReady(p) && !p.metadata.deletionTimestamp && p.status?.podIP)
  if (ready.length === 0) {
    throw new MeshError('MESH_CALLER_NOT_READY', `no Ready ${app} pod in ${namespace} to act as the ${role} caller (${pods.length} pod(s) found)`, {
      suggestion: 'Run mesh lab reset to redeploy the lab clients, then retry.',
      exit: EXIT.unavailable,
    })
  }
  return ready.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))[0]!
}

/** A Ready endpoint of the service, as kube-proxy would pick one (random). */
async function pickEndpoint(target: Target, service: string, namespace: string, port: number): Promise<{address: string; port: number; pod: string}> {
  const client = target.client
  const svc = await client.get({apiVersion: 'v1', kind: 'Service', name: service, namespace})
  if (!svc) throw new MeshError('MESH_SERVICE_NOT_FOUND', `service ${namespace}/${service} does not exist`, {suggestion: 'Run mesh lab reset to deploy the lab.', exit: EXIT.unavailable})
  const sp = ((svc.spec?.ports ?? []) as Array<{port: number; targetPort?: number | string; name?: string}>).find((p) => p.port === port)
  const targetPort = typeof sp?.targetPort === 'number' ? sp.targetPort : port
  const ep = await client.get({apiVersion: 'v1', kind: 'Endpoints', name: service, namespace})
  const candidates: Array<{address: string; port: number; pod: string}> = []
  for (const s of (ep?.subsets ?? []) as Array<{addresses?: Array<{ip: string; targetRef?: {name?: string}}>; ports?: Array<{port: number; name?: string}>}>) {
    const p = s.ports?.find((x) => x.name === sp?.name) ?? s.ports?.[0]
    for (const a of s.addresses ?? []) candidates.push({address: a.ip, port: p?.port ?? targetPort, pod: a.targetRef?.name ?? a.ip})
  }
  if (candidates.length === 0) {
    // no Endpoints object (or not filled yet): select Ready pods the way the endpoints controller would
    const selector = Object.entries((svc.spec?.selector ?? {}) as Record<string, string>).map(([k, v]) => `${k}=${v}`).join(',')
    const pods = await client.list('v1', 'Pod', {namespace, ...(selector ? {labelSelector: selector} : {})})
    for (const p of pods) if (isPodReady(p) && p.status?.podIP && !p.metadata.deletionTimestamp) candidates.push({address: p.status.podIP, port: targetPort, pod: p.metadata.name})
  }
  if (candidates.length === 0) {
    throw new MeshError('MESH_NO_ENDPOINTS', `service ${namespace}/${service} has no Ready endpoint`, {suggestion: 'Wait for the hello pods to be Ready (mesh lab status), or run mesh lab reset.', exit: EXIT.unavailable})
  }
  return candidates[Math.floor(Math.random() * candidates.length)]!
}

async function callDirect(target: Target, from: CallerKind, req: ReturnType<typeof checkRequest> & Pick<CallRequest, 'headers' | 'body'>): Promise<Omit<CallResult, 'durationMs'>> {
  const headers = {...(req.headers ?? {})}
  if (from === 'ingress') {
    const base = new URL(await target.ingressUrl())
    const port = Number(base.port || 80)
    const r = await exchange({host: base.hostname, port, path: req.path, method: req.method, headers, body: req.body, timeoutMs: req.timeoutMs})
    return {from, url: `${base.origin}${req.path}`, method: req.method, ...r, reset: r.outcome !== 'response', via: `ingress gateway ${base.host}`}
  }
  const host = serviceHost(req.service, req.namespace, req.port)
  if (from === 'meshed') {
    const pod = await readyPod(target, LAB.namespace, LAB.deployments.client, 'meshed')
    const ip = pod.status.podIP as string
    headers.host ??= host
    const r = await exchange({host: ip, port: PROXY_PORTS.outbound, path: req.path, method: req.method, headers, body: req.body, localAddress: ip, timeoutMs: req.timeoutMs})
    return {
      from,
      url: `http://${host}${req.path}`,
      method: req.method,
      ...r,
      reset: r.outcome !== 'response',
      via: `sidecar outbound of ${LAB.namespace}/${pod.metadata.name} (${ip}:${PROXY_PORTS.outbound})`,
      caller: {namespace: LAB.namespace, pod: pod.metadata.name, address: ip},
    }
  }
  // legacy: plaintext to one hello pod, from the legacy client's address when it runs
  const ep = await pickEndpoint(target, req.service, req.namespace, req.port)
  let caller: CallResult['caller']
  try {
    const pod = await readyPod(target, LAB.legacyNamespace, LAB.deployments.client, 'legacy')
    caller = {namespace: LAB.legacyNamespace, pod: pod.metadata.name, address: pod.status.podIP as string}
  } catch {
    caller = undefined
  }
  headers.host ??= host
  const r = await exchange({host: ep.address, port: ep.port, path: req.path, method: req.method, headers, body: req.body, ...(caller?.address ? {localAddress: caller.address} : {}), timeoutMs: req.timeoutMs})
  return {
    from,
    url: `http://${host}${req.path}`,
    method: req.method,
    ...r,
    reset: r.outcome !== 'response',
    via: `plaintext to ${req.namespace}/${ep.pod} (${ep.address}:${ep.port}), no sidecar`,
    ...(caller ? {caller} : {}),
    server: {pod: ep.pod, address: `${ep.address}:${ep.port}`},
  }
}

// ------------------------------------------------------------------ real cluster (kubectl exec curl)

/** curl's exit codes that mean the connection was refused or reset before a response. */
const CURL_REFUSED = new Set([7])
const CURL_RESET = new Set([35, 52, 55, 56])
const CURL_TIMEOUT = 28

/** The curl command run inside the caller pod. */
export function curlCommand(url: string, req: {method: string; headers?: Record<string, string>; body?: string; timeoutMs: number}): string[] {
  const args = ['curl', '-sS', '-i', '-X', req.method, '--max-time', String(Math.max(1, Math.ceil(req.timeoutMs / 1000)))]
  for (const [k, v] of Object.entries(req.headers ?? {})) args.push('-H', `${k}: ${v}`)
  if (req.body !== undefined) args.push('--data-binary', req.body)
  args.push(url)
  return args
}

/** Split `curl -i` output into status, headers and body (skipping 1xx interim responses). */
export function parseCurlResponse(out: string): {status: number; headers: Record<string, string>; body: string} {
  let rest = out
  for (;;) {
    const m = /^HTTP\/[\d.]+ (\d{3})[^\r\n]*\r?\n/.exec(rest)
    if (!m) return {status: 0, headers: {}, body: rest}
    const end = rest.search(/\r?\n\r?\n/)
    const head = end < 0 ? rest : rest.slice(0, end)
    const sep = end < 0 ? '' : (/\r?\n\r?\n/.exec(rest.slice(end))?.[0] ?? '')
    const body = end < 0 ? '' : rest.slice(end + sep.length)
    const status = Number(m[1])
    if (status >= 100 && status < 200 && /^HTTP\//.test(body)) {
      rest = body
      continue
    }
    const headers: Record<string, string> = {}
    for (const line of head.split(/\r?\n/).slice(1)) {
      const i = line.indexOf(':')
      if (i > 0) {
        const k = line.slice(0, i).trim().toLowerCase()
        headers[k] = headers[k] ? `${headers[k]}, ${line.slice(i + 1).trim()}` : line.slice(i + 1).trim()
      }
    }
    return {status, headers, body}
  }
}

async function callByExec(target: Target & PodExec, from: 'meshed' | 'legacy', req: ReturnType<typeof checkRequest> & Pick<CallRequest, 'headers' | 'body'>): Promise<Omit<CallResult, 'durationMs'>> {
  const namespace = from === 'meshed' ? LAB.namespace : LAB.legacyNamespace
  const workload = `deploy/${LAB.deployments.client}`
  const host = serviceHost(req.service, req.namespace, req.port)
  const url = `http://${host}${req.path}`
  const r = await target.execInPod(namespace, workload, curlCommand(url, {method: req.method, headers: req.headers, body: req.body, timeoutMs: req.timeoutMs}), {
    container: LAB.deployments.client,
    timeoutMs: req.timeoutMs + 15_000,
  })
  const base = {from, url, method: req.method, via: `kubectl exec ${namespace}/${workload} -- curl`, caller: {namespace, pod: workload}} as const
  if (r.exitCode === 0) {
    const p = parseCurlResponse(r.stdout)
    return {...base, ...p, reset: false, outcome: 'response'}
  }
  if (CURL_RESET.has(r.exitCode) || CURL_REFUSED.has(r.exitCode)) {
    const outcome: CallOutcome = CURL_REFUSED.has(r.exitCode) ? 'refused' : 'reset'
    return {...base, status: 0, body: '', headers: {}, reset: true, outcome, error: `curl exit ${r.exitCode}`}
  }
  if (r.exitCode === CURL_TIMEOUT) {
    throw new MeshError('MESH_CALL_TIMEOUT', `curl in ${namespace}/${workload} got no answer from ${url} within ${req.timeoutMs} ms`, {suggestion: 'Check the hello pods and proxies: kubectl get pods -n mesh-lab.', exit: EXIT.unavailable})
  }
  const detail = (r.stderr || r.stdout).trim().split('\n').slice(-2).join(' | ')
  throw new MeshError('MESH_CALL_FAILED', `kubectl exec ${namespace}/${workload} -- curl exited ${r.exitCode}${detail ? `: ${detail}` : ''}`, {
    suggestion: `Check the caller pod is Running: kubectl get pods -n ${namespace}; run mesh lab up to deploy it.`,
    exit: EXIT.unavailable,
  })
}

// ------------------------------------------------------------------ evidence

/** XFCC from the response: a header, or an echoed request-header line in the body. */
export function peerEvidence(headers: Record<string, string>, body: string): CallResult['peer'] {
  const xfcc = headers['x-forwarded-client-cert'] ?? /^x-forwarded-client-cert:\s*(.+?)\s*$/im.exec(body)?.[1]
  if (!xfcc) return undefined
  // the last element is the hop closest to the server; URI= is the client's SPIFFE ID
  const last = xfcc.split(',').at(-1) ?? xfcc
  const identity = /(?:^|;)URI=("?)([^;"]+)\1/i.exec(last)?.[2]
  return {xfcc, ...(identity ? {identity} : {})}
}

// ------------------------------------------------------------------ entry point

/** One request as `from`. Resets/refusals come back with status 0 and reset: true. */
export async function callAs(target: Target, from: CallerKind, request: CallRequest = {}): Promise<CallResult> {
  const kind = parseCaller(from)
  const req = {...checkRequest(request), headers: request.headers, body: request.body}
  const started = performance.now()
  let r: Omit<CallResult, 'durationMs'>
  if (kind !== 'ingress' && target.kind === 'real') {
    if (!canExec(target)) throw new MeshError('MESH_INTERNAL', `the ${target.kind} target cannot run commands in pods`, {exit: EXIT.internal})
    r = await callByExec(target, kind, req)
  } else {
    r = await callDirect(target, kind, req)
  }
  const peer = r.outcome === 'response' ? peerEvidence(r.headers, r.body) : undefined
  return {...r, ...(peer ? {peer} : {}), durationMs: Math.round((performance.now() - started) * 100) / 100}
}

/** "200 Hello version: v1, …" / "000 connection reset" — what `mesh call` prints. */
export function describeCall(r: CallResult): string {
  if (r.outcome === 'reset') return '000 connection reset'
  if (r.outcome === 'refused') return '000 connection refused'
  return `${r.status} ${r.body.trimEnd()}`.trimEnd()
}
