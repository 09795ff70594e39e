// `mesh verify mtls` and `mesh verify authz`: call hello as the ingress, a meshed client and a
// legacy client, and compare what happens with what the PeerAuthentications and
// AuthorizationPolicies in force predict (expect.ts). The peer identity the server saw is the
// evidence: the hello sidecars' own istio_requests_total (reporter=destination,
// source_principal, connection_security_policy), read before and after each caller's calls.
import type {KubeObject} from '../cluster/client.js'
import type {Target} from '../cluster/target.js'
import type {CheckResult, ReachabilityMatrix} from '../checks/report.js'
import {isMeshError} from '../lib/errors.js'
import {LAB} from '../mesh/lab.js'
import {NETWORKING_API} from '../mesh/traffic.js'
import {SECURITY_API} from '../mesh/security.js'
import {callAs, type CallerKind, type CallResult} from '../lab/callers.js'
import {isPodReady, readWeights} from '../lab/state.js'
import {proxyAdmin, sumMetric, type ProxyAdmin} from './admin.js'
import {resultOf, type CheckId} from './catalog.js'
import type {ProgressFn} from './common.js'
import {
  expectCell,
  labCallers,
  outcomeLabel,
  outcomeOf,
  serverWorkloads,
  type CallerProfile,
  type CellExpectation,
  type Outcome,
  type SecurityInputs,
  type ServerWorkload,
} from './expect.js'

export interface SecurityState {
  inputs: SecurityInputs
  callers: CallerProfile[]
  /** hello workloads each caller can land on (routing weights for ingress/meshed, every version for legacy) */
  reachable: Record<CallerKind, ServerWorkload[]>
  /** hello pods with a sidecar (for the telemetry evidence) */
  helloPods: Array<{name: string; namespace: string}>
  notes: string[]
}

const hasSidecar = (p: KubeObject): boolean => {
  const names = [...((p.spec?.containers ?? []) as Array<{name: string}>), ...((p.spec?.initContainers ?? []) as Array<{name: string}>)].map((c) => c.name)
  return names.includes('istio-proxy') || Boolean(p.metadata.annotations?.['sidecar.istio.io/status'])
}

/** Everything the expectations depend on, read from the cluster. */
export async function readSecurityState(target: Target): Promise<SecurityState> {
  const client = target.client
  const [pas, aps, dr, hello, curl, legacy, gw, weights] = await Promise.all([
    client.list(SECURITY_API, 'PeerAuthentication'),
    client.list(SECURITY_API, 'AuthorizationPolicy'),
    client.get({apiVersion: NETWORKING_API, kind: 'DestinationRule', name: LAB.destinationRule, namespace: LAB.namespace}),
    client.list('v1', 'Pod', {namespace: LAB.namespace, labelSelector: `${LAB.appLabel}=${LAB.service}`}),
    client.list('v1', 'Pod', {namespace: LAB.namespace, labelSelector: `${LAB.appLabel}=${LAB.deployments.client}`}),
    client.list('v1', 'Pod', {namespace: LAB.legacyNamespace, labelSelector: `${LAB.appLabel}=${LAB.deployments.client}`}),
    client.list('v1', 'Pod', {namespace: LAB.rootNamespace, labelSelector: 'istio=ingressgateway'}).catch(() => [] as KubeObject[]),
    readWeights(client),
  ])
  const ready = (ps: KubeObject[]) => ps.filter((p) => isPodReady(p) && !p.metadata.deletionTimestamp)
  const ip = (ps: KubeObject[]) => ready(ps)[0]?.status?.podIP as string | undefined
  const servers = serverWorkloads(ready(hello), hasSidecar)
  const routed = (w: {v1: number; v2: number} | null) => servers.filter((s) => (w ? (w as Record<string, number>)[s.version] > 0 : s.version === 'v1'))
  const tlsMode = dr?.spec?.trafficPolicy?.tls?.mode as string | undefined
  return {
    inputs: {
      peerAuthentications: pas,
      authorizationPolicies: aps,
      rootNamespace: LAB.rootNamespace,
      ...(tlsMode ? {destinationRuleTlsMode: tlsMode} : {}),
      port: LAB.port,
    },
    callers: labCallers({...(ip(gw) ? {ingress: ip(gw)} : {}), ...(ip(curl) ? {meshed: ip(curl)} : {}), ...(ip(legacy) ? {legacy: ip(legacy)} : {})}),
    reachable: {ingress: routed(weights.ingress), meshed: routed(weights.weights), legacy: servers},
    helloPods: ready(hello)
      .filter(hasSidecar)
      .map((p) => ({name: p.metadata.name, namespace: p.metadata.namespace ?? LAB.namespace})),
    notes: weights.notes,
  }
}

// ------------------------------------------------------------------ identity evidence

type Tally = Map<string, number>

/** Requests the hello sidecars received, by source principal and connection security. */
class ServerTelemetry {
  private constructor(
    private readonly admins: ProxyAdmin[],
    readonly unavailable?: string,
  ) {}

  static async open(target: Target, pods: SecurityState['helloPods']): Promise<ServerTelemetry> {
    if (pods.length === 0) return new ServerTelemetry([], 'no hello pod with a sidecar')
    const admins: ProxyAdmin[] = []
    for (const p of pods) {
      const a = await proxyAdmin(target, {namespace: p.namespace, pod: p.name})
      if (!a.admin) return new ServerTelemetry([], a.unavailable)
      admins.push(a.admin)
    }
    const t = new ServerTelemetry(admins)
    try {
      await t.read()
    } catch (e) {
      return new ServerTelemetry([], `the hello sidecars' stats are not readable: ${(e as Error).message}`)
    }
    return t
  }

  async read(): Promise<Tally> {
    const out: Tally = new Map()
    for (const a of this.admins) {
      for (const s of await a.metrics()) {
        if (s.name !== 'istio_requests_total' || s.labels.reporter !== 'destination') continue
        const k = `${s.labels.source_principal ?? 'unknown'}|${s.labels.connection_security_policy ?? 'unknown'}`
        out.set(k, (out.get(k) ?? 0) + s.value)
      }
    }
    return out
  }

  get usable(): boolean {
    return this.unavailable === undefined
  }
}

export interface ObservedPeer {
  /** spiffe://… or null for plaintext */
  principal: string | null
  security: 'mutual_tls' | 'none' | string
  requests: number
}

function delta(before: Tally, after: Tally): ObservedPeer[] {
  const out: ObservedPeer[] = []
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0)
    if (d <= 0) continue
    const [principal, security] = k.split('|') as [string, string]
    out.push({principal: principal === 'unknown' || principal === '' ? null : principal, security, requests: d})
  }
  return out
}

/** The peer identity the call itself shows (callAs `peer`: XFCC echoed back), if any. */
export function peerFromCall(r: CallResult): string | undefined {
  if (r.peer?.identity) return r.peer.identity
  const xfcc = r.peer?.xfcc ?? r.headers?.['x-forwarded-client-cert'] ?? /^x-forwarded-client-cert:\s*(.+?)\s*$/im.exec(r.body ?? '')?.[1]
  // the last element is the hop next to the server; URI= is the client's SPIFFE ID
  return xfcc ? /(?:^|;)URI=("?)([^;",]+)\1/i.exec(xfcc.split(',').at(-1) ?? xfcc)?.[2] : undefined
}

const describePeers = (ps: ObservedPeer[]) => ps.map((p) => `${p.principal ?? 'no identity'} (${p.security === 'mutual_tls' ? 'mTLS' : p.security === 'none' ? 'plaintext' : p.security}) ×${p.requests}`).join(', ')

// ------------------------------------------------------------------ calling

interface CellObservation {
  expectation: CellExpectation
  calls: Array<{outcome: Outcome; status: number; peer?: string; error?: string}>
  peers?: ObservedPeer[]
  error?: string
}

async function observeCell(target: Target, exp: CellExpectation, n: number, timeoutMs: number): Promise<CellObservation> {
  const calls: CellObservation['calls'] = []
  for (let i = 0; i < n; i++) {
    try {
      const r = await callAs(target, exp.caller, {method: exp.method, path: exp.path, timeoutMs, ...(exp.method !== 'GET' && exp.method !== 'HEAD' ? {body: 'mesh verify'} : {})})
      // refused = nothing listens: the lab is broken, which says nothing about mTLS or policies
      if (r.outcome === 'refused') return {expectation: exp, calls, error: `connection refused (${r.error ?? 'ECONNREFUSED'}) via ${r.via}: is that proxy or pod running?`}
      const peer = peerFromCall(r)
      calls.push({outcome: outcomeOf(r), status: r.status, ...(peer ? {peer} : {})})
    } catch (e) {
      if (isMeshError(e) && e.code === 'MESH_LAB_DOWN') throw e
      return {expectation: exp, calls, error: isMeshError(e) ? `${e.message} [${e.code}]` : (e as Error).message}
    }
  }
  return {expectation: exp, calls}
}

export interface SecurityVerifyOptions {
  /** calls per cell, default 2 (the legacy caller lands on a random pod) */
  calls?: number
  timeoutMs?: number
  onProgress?: ProgressFn
}

export interface SecurityVerification {
  results: CheckResult[]
  matrix: ReachabilityMatrix
  state: SecurityState
}

// ------------------------------------------------------------------ mTLS

type Reach = 'reached' | 'reset' | 'unavailable'
const reachOf = (o: Outcome): Reach => (o === 'reset' ? 'reset' : o === 'unavailable' ? 'unavailable' : 'reached')

/** The identity expectation against what the server saw; undefined = consistent (or not observed). */
export function identityMismatch(expected: CellExpectation['identity'], seen: ObservedPeer[]): string | undefined {
  if (seen.length === 0 || expected === 'either') return undefined
  if (expected === null) {
    const wrong = seen.filter((p) => p.security === 'mutual_tls')
    return wrong.length ? `expected plaintext, the server saw ${describePeers(wrong)}` : undefined
  }
  const wrong = seen.filter((p) => p.security !== 'mutual_tls' || p.principal !== expected)
  return wrong.length ? `expected mTLS as ${expected}, the server saw ${describePeers(wrong)}` : undefined
}

export async function verifyMtls(target: Target, o: SecurityVerifyOptions = {}, state?: SecurityState): Promise<SecurityVerification> {
  const st = state ?? (await readSecurityState(target))
  const telemetry = await ServerTelemetry.open(target, st.helloPods)
  const results: CheckResult[] = []
  const rows: ReachabilityMatrix['rows'] = []
  for (const caller of st.callers) {
    const started = performance.now()
    o.onProgress?.(`mTLS: calling hello as ${caller.kind}`)
    const exp = expectCell(st.inputs, caller, st.reachable[caller.kind], 'GET', LAB.ingressPath)
    const before = telemetry.usable ? await telemetry.read().catch(() => undefined) : undefined
    const obs = await observeCell(target, exp, o.calls ?? 2, o.timeoutMs ?? 10_000)
    const after = before ? await telemetry.read().catch(() => undefined) : undefined
    const seen = before && after ? delta(before, after) : []
    const fromCall = obs.calls.map((c) => c.peer).filter((p): p is string => Boolean(p))
    const expectedReach = [...new Set(exp.outcomes.map(reachOf))]
    const observedReach = obs.calls.map((c) => reachOf(c.outcome))
    const id = `mtls.${caller.kind}` as CheckId
    const w = exp.perWorkload[0]
    const modeText = w ? `${w.mtls.mode}${w.mtls.policy ? ` from ${w.mtls.policy}` : ' (default)'}` : 'no hello workload'
    const identityText =
      seen.length > 0
        ? describePeers(seen)
        : fromCall.length > 0
          ? [...new Set(fromCall)].join(', ')
          : obs.error || obs.calls.length === 0
            ? 'not observed (no call completed)'
            : observedReach.every((r) => r === 'reset')
              ? 'none (connection closed before any request)'
              : 'not observed'
    const identityNote = seen.length === 0 && fromCall.length === 0 && !obs.error && !observedReach.every((r) => r === 'reset') ? (telemetry.unavailable ?? 'the hello sidecars counted no request') : undefined
    const mismatch = identityMismatch(exp.identity, seen.length ? seen : fromCall.map((p) => ({principal: p, security: 'mutual_tls', requests: 1})))
    const evidence: Record<string, unknown> = {
      expected: expectedReach.join(' or '),
      observed: observedReach.join(', '),
      statuses: obs.calls.map((c) => c.status),
      mode: modeText,
      identity: identityText,
      ...(exp.identity !== 'either' ? {expectedIdentity: exp.identity ?? 'none (plaintext)'} : {}),
      ...(identityNote ? {identityNotObservedBecause: identityNote} : {}),
      why: exp.perWorkload.map((x) => `${x.version}: ${x.why}`),
    }
    let status: CheckResult['status']
    let message: string
    if (exp.perWorkload.length === 0) {
      status = 'inconclusive'
      message = `no Ready hello pod is routed to for the ${caller.kind} caller`
    } else if (obs.error) {
      status = 'inconclusive'
      message = `could not call as ${caller.kind}: ${obs.error}`
    } else if (!observedReach.every((r) => expectedReach.includes(r))) {
      status = 'fail'
      message = `${caller.kind} → hello was ${observedReach.join(', ')}; ${modeText} means ${expectedReach.join(' or ')}`
    } else if (mismatch) {
      status = 'fail'
      message = `${caller.kind} → hello: ${mismatch}`
    } else {
      status = 'pass'
      message = `${caller.kind} → hello ${observedReach[0] === 'reset' ? 'reset' : observedReach[0]} under ${modeText}; identity: ${identityText}`
    }
    results.push(resultOf(id, status, message, evidence, {durationMs: performance.now() - started}))
    const label = obs.calls[0] ? (obs.calls[0].outcome === 'reset' ? 'reset' : `${reachOf(obs.calls[0].outcome)}`) : (obs.error ? 'error' : '–')
    rows.push({
      caller: caller.kind,
      cells: [
        {
          outcome: label,
          expected: expectedReach.includes(label as Reach) ? label : expectedReach.join(' or '),
          detail: [obs.calls.map((c) => (c.outcome === 'reset' ? '000' : String(c.status))).join(' '), identityText].filter(Boolean).join(' · '),
        },
      ],
    })
  }
  return {results, matrix: {title: 'mTLS: caller → hello (GET /hello)', columns: ['GET /hello'], rows}, state: st}
}

// ------------------------------------------------------------------ authorization

/** What decided a cell, short: "allow-get-hello rule 0", "no ALLOW rule matches", "STRICT". */
export function decidedBy(w: CellExpectation['perWorkload'][number]): string {
  if (!w.authz) return w.outcome === 'allowed' ? 'no sidecar' : `${w.mtls.mode} ${w.transport === 'plaintext' ? 'refuses plaintext' : 'mismatch'}`
  const m = w.authz.policy ? /policy\[([^\]]+)\]-rule\[(\d+)\]/.exec(w.authz.policy) : null
  if (m) return `${w.authz.decision === 'ALLOW' ? 'allowed by' : 'denied by'} ${m[1]} rule ${m[2]}`
  return w.authz.decision === 'ALLOW' ? 'no ALLOW policy applies' : 'no ALLOW rule matches'
}

export interface AuthzVerifyOptions extends SecurityVerifyOptions {
  /** default GET, POST */
  methods?: string[]
  /** default /hello; the ingress routes only /hello (other paths: expect 404 from the gateway) */
  paths?: string[]
}

export async function verifyAuthz(target: Target, o: AuthzVerifyOptions = {}, state?: SecurityState): Promise<SecurityVerification> {
  const st = state ?? (await readSecurityState(target))
  const methods = (o.methods ?? ['GET', 'POST']).map((m) => m.toUpperCase())
  const paths = o.paths ?? [LAB.ingressPath]
  const columns = paths.flatMap((p) => methods.map((m) => `${m} ${p}`))
  const results: CheckResult[] = []
  const rows: ReachabilityMatrix['rows'] = []
  for (const caller of st.callers) {
    const started = performance.now()
    o.onProgress?.(`authorization: calling hello as ${caller.kind}`)
    const cells: ReachabilityMatrix['rows'][number]['cells'] = []
    const cellEvidence: Array<Record<string, unknown>> = []
    const wrong: string[] = []
    let error: string | undefined
    for (const path of paths) {
      for (const method of methods) {
        const exp: CellExpectation =
          caller.kind === 'ingress' && path !== LAB.ingressPath
            ? {caller: caller.kind, method, path, outcomes: ['no-route'], identity: 'either', perWorkload: []}
            : expectCell(st.inputs, caller, st.reachable[caller.kind], method, path)
        const obs = await observeCell(target, exp, o.calls ?? 2, o.timeoutMs ?? 10_000)
        if (obs.error) error ??= obs.error
        const seen = obs.calls.map((c) => c.outcome)
        const ok = !obs.error && exp.outcomes.length > 0 && seen.every((s) => exp.outcomes.includes(s))
        if (!ok && !obs.error) wrong.push(`${method} ${path}: ${seen.map((s, k) => outcomeLabel(s, obs.calls[k]!.status)).join(', ')} (expected ${exp.outcomes.join(' or ') || 'nothing: no hello pod routed'})`)
        const first = obs.calls[0]
        cells.push({
          outcome: first ? first.outcome : 'error',
          expected: first && exp.outcomes.includes(first.outcome) ? first.outcome : exp.outcomes.join(' or '),
          detail: [obs.calls.map((c) => (c.outcome === 'reset' ? '000' : String(c.status))).join(' '), [...new Set(exp.perWorkload.map(decidedBy))].join(' | ')].filter(Boolean).join(' · '),
        })
        cellEvidence.push({
          request: `${method} ${path}`,
          expected: exp.outcomes.join(' or '),
          observed: obs.calls.map((c, k) => outcomeLabel(seen[k]!, c.status)).join(', '),
          decidedBy: [...new Set(exp.perWorkload.map((w) => (w.authz ? (w.authz.policy ? `${w.authz.decision} ${w.authz.policy}` : `${w.authz.decision}: ${w.authz.reason}`) : w.why)))],
        })
      }
    }
    const id = `authz.${caller.kind}` as CheckId
    const status: CheckResult['status'] = error ? 'inconclusive' : wrong.length ? 'fail' : 'pass'
    const summary = cellEvidence.map((c) => `${c.request} ${c.observed}`).join('; ')
    const message = error
      ? `could not call as ${caller.kind}: ${error}`
      : wrong.length
        ? `${caller.kind} → hello: ${wrong.join('; ')}`
        : `${caller.kind} → hello as predicted: ${summary}`
    results.push(
      resultOf(id, status, message, {policies: st.inputs.authorizationPolicies.map((p) => `${p.metadata.namespace}/${p.metadata.name}`), cells: cellEvidence}, {durationMs: performance.now() - started}),
    )
    rows.push({caller: caller.kind, cells})
  }
  return {results, matrix: {title: 'Authorization: caller × request → outcome', columns, rows}, state: st}
}

