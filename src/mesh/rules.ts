// Small syntax rules shared by the builders (checking user input) and the validator
// (checking whole objects). Each returns a problem description, or undefined when fine.
import {isIP} from 'node:net'
import {isDns1123Label, isDns1123Subdomain} from './lab.js'

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE'] as const
export type HttpMethod = (typeof HTTP_METHODS)[number]

/** AZ-5 string forms: exact, "prefix*", "*suffix", "*". */
function wildcardProblem(s: string): string | undefined {
  if (s === '') return 'is empty'
  if (/\s/.test(s)) return 'contains white space'
  const inner = s.slice(1, -1)
  if (inner.includes('*')) return '"*" is only allowed at the start or the end'
  if (s.length > 1 && s.startsWith('*') && s.endsWith('*')) return '"*" is only allowed at the start or the end, not both'
  return undefined
}

export function principalProblem(p: string): string | undefined {
  if (/^spiffe:\/\//i.test(p)) return `must not start with "spiffe://" (write ${p.replace(/^spiffe:\/\//i, '')})`
  return wildcardProblem(p)
}

export function namespaceValueProblem(ns: string): string | undefined {
  const w = wildcardProblem(ns)
  if (w) return w
  if (ns === '*') return undefined
  const bare = ns.replace(/^\*/, '').replace(/\*$/, '')
  const isPartial = bare !== ns
  if (isPartial ? !/^[-a-z0-9]+$/.test(bare) : !isDns1123Label(bare)) return 'is not a namespace name (DNS-1123 label)'
  return undefined
}

export function methodProblem(m: string): string | undefined {
  return (HTTP_METHODS as readonly string[]).includes(m) ? undefined : `is not an HTTP method (${HTTP_METHODS.join(', ')})`
}

export function pathProblem(p: string): string | undefined {
  if (p === '') return 'is empty'
  if (/\s/.test(p)) return 'contains white space'
  if (p === '*') return undefined
  // path templates {*} and {**} (Istio ≥1.21) may sit in the middle of a path
  const withoutTemplates = p.replaceAll('{**}', '').replaceAll('{*}', '')
  if (withoutTemplates.slice(1, -1).includes('*')) return '"*" is only allowed at the start or the end (or as a {*} / {**} segment)'
  if (!p.startsWith('/') && !p.startsWith('*')) return 'must start with "/" or "*"'
  return undefined
}

export function cidrProblem(s: string): string | undefined {
  const [ip, prefix, ...rest] = s.split('/')
  const family = isIP(ip ?? '')
  if (family === 0 || rest.length > 0) return 'is not an IP address or CIDR'
  if (prefix === undefined) return undefined
  const max = family === 4 ? 32 : 128
  if (!/^\d+$/.test(prefix) || Number(prefix) > max) return `has a prefix length outside 0–${max}`
  return undefined
}

export function portProblem(n: unknown): string | undefined {
  const v = typeof n === 'string' && /^\d+$/.test(n) ? Number(n) : n
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) return 'is not a port number from 1 to 65535'
  return undefined
}

const DURATION_PART = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy
const UNIT_MS: Record<string, number> = {ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000}

/** Milliseconds of a Go/protobuf duration such as "1s", "1.5s", "500ms", "1m30s"; undefined when malformed. */
export function parseDurationMs(s: string): number | undefined {
  if (typeof s !== 'string' || s === '') return undefined
  DURATION_PART.lastIndex = 0
  let total = 0
  let pos = 0
  let m: RegExpExecArray | null
  while ((m = DURATION_PART.exec(s)) !== null) {
    total += Number(m[1]) * UNIT_MS[m[2]!]!
    pos = DURATION_PART.lastIndex
  }
  return pos === s.length ? total : undefined
}

export function durationProblem(s: unknown): string | undefined {
  const ms = typeof s === 'string' ? parseDurationMs(s) : undefined
  if (ms === undefined) return 'is not a duration such as 500ms, 1s or 3m'
  if (ms < 1) return 'is shorter than 1ms'
  return undefined
}

/** Hosts in VirtualService/DestinationRule/Gateway: FQDN or short name, optional "*." prefix, or "*". */
export function hostProblem(h: string): string | undefined {
  if (h === '*') return undefined
  const bare = h.startsWith('*.') ? h.slice(2) : h
  if (bare.includes('*')) return '"*" is only allowed as the first label ("*.example.com")'
  if (!isDns1123Subdomain(bare.toLowerCase())) return 'is not a DNS name'
  return undefined
}

/** Gateway references in a VirtualService: "mesh", NAME or NAMESPACE/NAME. */
export function gatewayRefProblem(g: string): string | undefined {
  if (g === 'mesh') return undefined
  const parts = g.split('/')
  if (parts.length > 2) return 'has more than one "/"'
  const name = parts.at(-1)!
  if (parts.length === 2 && !isDns1123Label(parts[0]!)) return 'has a namespace that is not a DNS-1123 label'
  if (!isDns1123Subdomain(name)) return 'is not a DNS-1123 name'
  return undefined
}

/** AuthorizationPolicy `when` keys Istio understands. */
export function whenKeyProblem(key: string): string | undefined {
  const exact = [
    'source.ip', 'remote.ip', 'source.namespace', 'source.principal', 'source.serviceAccount',
    'request.auth.principal', 'request.auth.audiences', 'request.auth.presenter',
    'destination.ip', 'destination.port', 'connection.sni',
  ]
  if (exact.includes(key)) return undefined
  if (/^request\.headers\[[^\]]+\]$/.test(key)) return undefined
  if (/^request\.auth\.claims\[[^\]]+\](\[[^\]]+\])*$/.test(key)) return undefined
  if (/^experimental\.envoy\.filters\./.test(key)) return undefined
  return 'is not a supported condition key'
}
