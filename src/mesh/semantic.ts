// Layer 2 of validation: rules the schemas cannot express (see ADR 0011/0012).
// Every rule tolerates wrongly typed input: layer 1 already reports those.
import type {MeshCause, MeshCode} from './codes.js'
import {isDns1123Label, isDns1123Subdomain} from './lab.js'
import {
  cidrProblem,
  durationProblem,
  gatewayRefProblem,
  hostProblem,
  methodProblem,
  namespaceValueProblem,
  pathProblem,
  portProblem,
  principalProblem,
  whenKeyProblem,
} from './rules.js'
import {fieldPath} from './schema.js'

type Seg = string | number
type Obj = Record<string, unknown>

const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v)
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : [])
const obj = (v: unknown): Obj | undefined => (isObj(v) ? v : undefined)
const strs = (v: unknown): Array<[number, string]> =>
  arr(v).flatMap((x, i) => (typeof x === 'string' ? [[i, x] as [number, string]] : []))

class Causes {
  readonly list: MeshCause[] = []
  add(code: MeshCode, path: Seg[], message: string, value?: unknown): void {
    this.list.push({code, field: fieldPath(path), message, ...(value !== undefined && typeof value !== 'object' ? {value} : {})})
  }
  /** Run a string rule over a list field: spec.x[i] "value" <problem>. */
  eachString(code: MeshCode, path: Seg[], list: unknown, problem: (s: string) => string | undefined): void {
    for (const [i, s] of strs(list)) {
      const p = problem(s)
      if (p) this.add(code, [...path, i], `"${s}" ${p}`, s)
    }
  }
  duration(path: Seg[], v: unknown): void {
    if (v === undefined || v === null || typeof v !== 'string') return
    const p = durationProblem(v)
    if (p) this.add('MESH_DURATION', path, `"${v}" ${p}`, v)
  }
  percent(path: Seg[], v: unknown): void {
    if (typeof v === 'number' && (v < 0 || v > 100)) this.add('MESH_PERCENT_RANGE', path, `${v} is outside 0–100`, v)
  }
  port(path: Seg[], v: unknown): void {
    if (v === undefined || v === null || (typeof v !== 'number' && typeof v !== 'string')) return
    const p = portProblem(v)
    if (p) this.add('MESH_PORT_RANGE', path, `${JSON.stringify(v)} ${p}`, v)
  }
}

function metadataCauses(o: Obj, c: Causes): void {
  const md = obj(o.metadata)
  const name = md?.name
  if (name === undefined || name === null || name === '') {
    if (!md?.generateName) c.add('MESH_REQUIRED', ['metadata', 'name'], 'is required')
  } else if (typeof name === 'string' && !isDns1123Subdomain(name)) {
    c.add('MESH_NAME_INVALID', ['metadata', 'name'], `"${name}" is not a valid DNS-1123 name`, name)
  }
  const ns = md?.namespace
  if (typeof ns === 'string' && ns !== '' && !isDns1123Label(ns)) c.add('MESH_NAME_INVALID', ['metadata', 'namespace'], `"${ns}" is not a valid DNS-1123 label`, ns)
}

// --- VirtualService -------------------------------------------------------------------

function virtualServiceCauses(spec: Obj, c: Causes): void {
  const S = ['spec']
  const hosts = strs(spec.hosts)
  if (arr(spec.hosts).length === 0) c.add('MESH_REQUIRED', [...S, 'hosts'], 'needs at least one host')
  c.eachString('MESH_HOST_INVALID', [...S, 'hosts'], spec.hosts, hostProblem)
  c.eachString('MESH_GATEWAY_REF', [...S, 'gateways'], spec.gateways, gatewayRefProblem)
  const gateways = strs(spec.gateways).map(([, g]) => g)
  const boundToMesh = gateways.length === 0 || gateways.includes('mesh')
  if (boundToMesh) {
    for (const [i, h] of hosts) {
      if (h === '*') c.add('MESH_HOST_WILDCARD_MESH', [...S, 'hosts', i], `"*" is not allowed when the VirtualService is bound to the mesh gateway${gateways.length === 0 ? ' (gateways omitted means mesh)' : ''}`, h)
    }
  }
  arr(spec.http).forEach((r, i) => {
    const route = obj(r)
    if (!route) return
    const P: Seg[] = [...S, 'http', i]
    if (arr(route.route).length === 0 && !route.redirect && !route.directResponse && !route.delegate) {
      c.add('MESH_ROUTE_EMPTY', [...P, 'route'], 'has no destinations and the route has no redirect, directResponse or delegate')
    }
    destinationsCauses(route.route, [...P, 'route'], c)
    arr(route.match).forEach((m, k) => {
      const match = obj(m)
      if (!match) return
      for (const key of ['headers', 'withoutHeaders'] as const) {
        for (const name of Object.keys(obj(match[key]) ?? {})) {
          if (name !== name.toLowerCase()) c.add('MESH_HEADER_NAME', [...P, 'match', k, key, name], `header name "${name}" has upper-case letters`, name)
        }
      }
      c.port([...P, 'match', k, 'port'], match.port)
    })
    c.duration([...P, 'timeout'], route.timeout)
    const retries = obj(route.retries)
    if (retries) c.duration([...P, 'retries', 'perTryTimeout'], retries.perTryTimeout)
    const fault = obj(route.fault)
    const delay = obj(fault?.delay)
    if (delay) {
      c.duration([...P, 'fault', 'delay', 'fixedDelay'], delay.fixedDelay)
      c.percent([...P, 'fault', 'delay', 'percentage', 'value'], obj(delay.percentage)?.value)
    }
    const abort = obj(fault?.abort)
    if (abort) c.percent([...P, 'fault', 'abort', 'percentage', 'value'], obj(abort.percentage)?.value)
    c.percent([...P, 'mirrorPercentage', 'value'], obj(route.mirrorPercentage)?.value)
    const mirror = obj(route.mirror)
    if (mirror) destinationCauses(mirror, [...P, 'mirror'], c)
  })
  for (const proto of ['tcp', 'tls'] as const) {
    arr(spec[proto]).forEach((r, i) => destinationsCauses(obj(r)?.route, [...S, proto, i, 'route'], c))
  }
}

function destinationCauses(d: Obj, path: Seg[], c: Causes): void {
  if (typeof d.host === 'string') {
    const p = d.host === '' ? 'is empty' : hostProblem(d.host)
    if (p) c.add('MESH_HOST_INVALID', [...path, 'host'], `"${d.host}" ${p}`, d.host)
  }
  if (typeof d.subset === 'string' && !isDns1123Label(d.subset)) c.add('MESH_NAME_INVALID', [...path, 'subset'], `"${d.subset}" is not a valid subset name (DNS-1123 label)`, d.subset)
  c.port([...path, 'port', 'number'], obj(d.port)?.number)
}

function destinationsCauses(list: unknown, path: Seg[], c: Causes): void {
  const routes = arr(list)
  let total = 0
  let allWellTyped = true
  routes.forEach((r, j) => {
    const rd = obj(r)
    if (!rd) return
    const dest = obj(rd.destination)
    if (dest) destinationCauses(dest, [...path, j, 'destination'], c)
    if (typeof rd.weight === 'number') {
      if (rd.weight < 0) c.add('MESH_WEIGHT_NEGATIVE', [...path, j, 'weight'], `${rd.weight} is negative`, rd.weight)
      else total += rd.weight
    } else if (rd.weight !== undefined && rd.weight !== null) allWellTyped = false
    if (typeof rd.weight === 'number' && rd.weight < 0) allWellTyped = false
  })
  // VS-5: several destinations need a positive total; one destination gets 100% whatever its weight
  if (routes.length > 1 && allWellTyped && total === 0) c.add('MESH_WEIGHT_TOTAL_ZERO', path, `the ${routes.length} destinations have a total weight of 0`)
}

// --- DestinationRule ------------------------------------------------------------------

function trafficPolicyCauses(tp: Obj | undefined, path: Seg[], c: Causes): void {
  if (!tp) return
  const pool = obj(tp.connectionPool)
  if (pool) {
    c.duration([...path, 'connectionPool', 'tcp', 'connectTimeout'], obj(pool.tcp)?.connectTimeout)
    c.duration([...path, 'connectionPool', 'http', 'idleTimeout'], obj(pool.http)?.idleTimeout)
  }
  const od = obj(tp.outlierDetection)
  if (od) {
    const P = [...path, 'outlierDetection']
    c.duration([...P, 'interval'], od.interval)
    c.duration([...P, 'baseEjectionTime'], od.baseEjectionTime)
    c.percent([...P, 'maxEjectionPercent'], od.maxEjectionPercent)
    c.percent([...P, 'minHealthPercent'], od.minHealthPercent)
  }
  arr(tp.portLevelSettings).forEach((pl, i) => {
    const p = obj(pl)
    if (!p) return
    c.port([...path, 'portLevelSettings', i, 'port', 'number'], obj(p.port)?.number)
    trafficPolicyCauses(p, [...path, 'portLevelSettings', i], c)
  })
}

function destinationRuleCauses(spec: Obj, c: Causes): void {
  const S = ['spec']
  if (typeof spec.host === 'string') {
    const p = spec.host === '' ? 'is empty' : hostProblem(spec.host)
    if (p) c.add('MESH_HOST_INVALID', [...S, 'host'], `"${spec.host}" ${p}`, spec.host)
  }
  trafficPolicyCauses(obj(spec.trafficPolicy), [...S, 'trafficPolicy'], c)
  const seen = new Map<string, number>()
  arr(spec.subsets).forEach((s, i) => {
    const subset = obj(s)
    if (!subset) return
    const P: Seg[] = [...S, 'subsets', i]
    if (typeof subset.name === 'string') {
      if (!isDns1123Label(subset.name)) c.add('MESH_NAME_INVALID', [...P, 'name'], `"${subset.name}" is not a valid subset name (DNS-1123 label)`, subset.name)
      const first = seen.get(subset.name)
      if (first !== undefined) c.add('MESH_SUBSET_DUPLICATE', [...P, 'name'], `"${subset.name}" is already defined by spec.subsets[${first}]`, subset.name)
      else seen.set(subset.name, i)
    }
    if (Object.keys(obj(subset.labels) ?? {}).length === 0) c.add('MESH_SUBSET_LABELS', [...P, 'labels'], 'is empty, so the subset would select every endpoint of the host')
    trafficPolicyCauses(obj(subset.trafficPolicy), [...P, 'trafficPolicy'], c)
  })
}

// --- Gateway --------------------------------------------------------------------------

const GATEWAY_PROTOCOLS = ['HTTP', 'HTTPS', 'GRPC', 'GRPC-WEB', 'HTTP2', 'MONGO', 'TCP', 'TLS']

function gatewayCauses(spec: Obj, c: Causes): void {
  const servers = arr(spec.servers)
  if (servers.length === 0) c.add('MESH_GATEWAY_SERVER', ['spec', 'servers'], 'needs at least one server')
  servers.forEach((s, i) => {
    const server = obj(s)
    if (!server) return
    const P: Seg[] = ['spec', 'servers', i]
    const port = obj(server.port)
    c.port([...P, 'port', 'number'], port?.number)
    const protocol = port?.protocol
    if (typeof protocol === 'string' && !GATEWAY_PROTOCOLS.includes(protocol.toUpperCase())) {
      c.add('MESH_GATEWAY_SERVER', [...P, 'port', 'protocol'], `"${protocol}" is not one of ${GATEWAY_PROTOCOLS.join(', ')}`, protocol)
    }
    if (typeof protocol === 'string' && protocol.toUpperCase() === 'HTTPS' && !server.tls) {
      c.add('MESH_GATEWAY_SERVER', [...P, 'tls'], 'is required for an HTTPS server')
    }
    if (arr(server.hosts).length === 0) c.add('MESH_GATEWAY_SERVER', [...P, 'hosts'], 'needs at least one host')
    c.eachString('MESH_HOST_INVALID', [...P, 'hosts'], server.hosts, (h) => {
      // "namespace/host" limits which namespaces' VirtualServices may bind
      const slash = h.indexOf('/')
      if (slash < 0) return hostProblem(h)
      const ns = h.slice(0, slash)
      if (ns !== '*' && ns !== '.' && ns !== '~' && !isDns1123Label(ns)) return 'has a namespace part that is not a DNS-1123 label'
      return hostProblem(h.slice(slash + 1))
    })
  })
}

// --- PeerAuthentication ---------------------------------------------------------------

function peerAuthenticationCauses(spec: Obj, c: Causes): void {
  const portLevel = obj(spec.portLevelMtls)
  if (!portLevel) return
  const hasSelector = Object.keys(obj(obj(spec.selector)?.matchLabels) ?? {}).length > 0
  if (!hasSelector && Object.keys(portLevel).length > 0) c.add('MESH_PA_PORT_LEVEL', ['spec', 'portLevelMtls'], 'is only allowed on a policy with a workload selector (PA-2)')
  for (const port of Object.keys(portLevel)) c.port(['spec', 'portLevelMtls', port], port)
}

// --- AuthorizationPolicy --------------------------------------------------------------

function authorizationPolicyCauses(spec: Obj, c: Causes): void {
  const action = spec.action ?? 'ALLOW'
  const provider = obj(spec.provider)
  if (action === 'CUSTOM' && !(typeof provider?.name === 'string' && provider.name !== '')) {
    c.add('MESH_AUTHZ_PROVIDER', ['spec', 'provider', 'name'], 'is required when action is CUSTOM')
  }
  if (action !== 'CUSTOM' && spec.provider !== undefined && spec.provider !== null) {
    c.add('MESH_AUTHZ_PROVIDER', ['spec', 'provider'], `is only allowed with action CUSTOM, not ${String(action)}`)
  }
  arr(spec.rules).forEach((r, i) => {
    const rule = obj(r)
    if (!rule) return
    const R: Seg[] = ['spec', 'rules', i]
    arr(rule.from).forEach((f, j) => {
      const src = obj(obj(f)?.source)
      if (!src) return
      const P: Seg[] = [...R, 'from', j, 'source']
      for (const k of ['principals', 'notPrincipals']) c.eachString('MESH_PRINCIPAL', [...P, k], src[k], principalProblem)
      for (const k of ['namespaces', 'notNamespaces']) c.eachString('MESH_NAMESPACE_VALUE', [...P, k], src[k], namespaceValueProblem)
      for (const k of ['ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks']) c.eachString('MESH_CIDR', [...P, k], src[k], cidrProblem)
    })
    arr(rule.to).forEach((t, j) => {
      const op = obj(obj(t)?.operation)
      if (!op) return
      const P: Seg[] = [...R, 'to', j, 'operation']
      for (const k of ['methods', 'notMethods']) c.eachString('MESH_HTTP_METHOD', [...P, k], op[k], methodProblem)
      for (const k of ['paths', 'notPaths']) c.eachString('MESH_PATH', [...P, k], op[k], pathProblem)
      for (const k of ['ports', 'notPorts']) c.eachString('MESH_PORT_RANGE', [...P, k], op[k], portProblem)
    })
    arr(rule.when).forEach((w, j) => {
      const cond = obj(w)
      if (!cond) return
      const P: Seg[] = [...R, 'when', j]
      if (typeof cond.key === 'string') {
        const p = whenKeyProblem(cond.key)
        if (p) c.add('MESH_WHEN_KEY', [...P, 'key'], `"${cond.key}" ${p}`, cond.key)
      }
      if (arr(cond.values).length === 0 && arr(cond.notValues).length === 0) c.add('MESH_WHEN_KEY', P, 'needs values or notValues')
    })
  })
}

const RULES: Record<string, (spec: Obj, c: Causes) => void> = {
  VirtualService: virtualServiceCauses,
  DestinationRule: destinationRuleCauses,
  Gateway: gatewayCauses,
  PeerAuthentication: peerAuthenticationCauses,
  AuthorizationPolicy: authorizationPolicyCauses,
}

export function semanticCauses(o: Obj, kind: string): MeshCause[] {
  const c = new Causes()
  metadataCauses(o, c)
  const rule = RULES[kind]
  const spec = o.spec === undefined || o.spec === null ? {} : obj(o.spec)
  if (rule && spec) rule(spec, c)
  return c.list
}

// --- subset references ----------------------------------------------------------------

/** Istio expands only dot-less names: hello → hello.<namespace>.svc.cluster.local; anything with a dot is taken as written. */
export function qualifyHost(host: string, namespace: string): string {
  return host === '*' || host.includes('.') || host.includes(':') ? host : `${host}.${namespace}.svc.cluster.local`
}

const nsOf = (o: Obj, fallback: string) => {
  const ns = obj(o.metadata)?.namespace
  return typeof ns === 'string' && ns !== '' ? ns : fallback
}

/**
 * Every subset a VirtualService routes to must exist in a DestinationRule for that host.
 * Only meaningful when the DestinationRules are known (e.g. rendering the lab); at apply time
 * order is free, so the API server does not call this.
 */
export function checkSubsetReferences(vs: unknown, destinationRules: readonly unknown[], defaultNamespace = 'default'): MeshCause[] {
  const c = new Causes()
  const v = obj(vs)
  const spec = obj(v?.spec)
  if (!v || !spec) return c.list
  const vsNs = nsOf(v, defaultNamespace)
  const subsetsByHost = new Map<string, Set<string>>()
  for (const d of destinationRules) {
    const dr = obj(d)
    const host = obj(dr?.spec)?.host
    if (!dr || typeof host !== 'string') continue
    const key = qualifyHost(host, nsOf(dr, defaultNamespace))
    const set = subsetsByHost.get(key) ?? new Set<string>()
    for (const s of arr(obj(dr.spec)?.subsets)) if (typeof obj(s)?.name === 'string') set.add(obj(s)!.name as string)
    subsetsByHost.set(key, set)
  }
  for (const proto of ['http', 'tcp', 'tls'] as const) {
    arr(spec[proto]).forEach((r, i) => {
      arr(obj(r)?.route).forEach((rd, j) => {
        const dest = obj(obj(rd)?.destination)
        if (!dest || typeof dest.subset !== 'string' || typeof dest.host !== 'string') return
        const host = qualifyHost(dest.host, vsNs)
        const subsets = subsetsByHost.get(host)
        const path: Seg[] = ['spec', proto, i, 'route', j, 'destination', 'subset']
        if (!subsets) c.add('MESH_SUBSET_MISSING', path, `subset "${dest.subset}" of host "${dest.host}": no DestinationRule for that host was given`, dest.subset)
        else if (!subsets.has(dest.subset)) {
          c.add('MESH_SUBSET_MISSING', path, `subset "${dest.subset}" is not defined by the DestinationRule for "${dest.host}" (it defines ${[...subsets].join(', ') || 'no subsets'})`, dest.subset)
        }
      })
    })
  }
  return c.list
}
