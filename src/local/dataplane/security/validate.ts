// Apply-time checks for security.istio.io objects beyond their schema: the rules istiod's
// validating webhook enforces (pkg/config/validation), plus the embedded cluster's own limits.
// Each problem is a FieldCause naming the field path, so the API can answer 422 with it.
import {isIP} from 'node:net'
import type {FieldCause} from '../../../lib/errors.js'
import type {KubeObject} from '../snapshot.js'

export interface AuthorizationPolicyValidationOptions {
  /**
   * CUSTOM delegates to an external authorizer, which the embedded cluster does not have.
   * Default false: refuse CUSTOM. Pass true when validating for a real Istio cluster.
   */
  allowCustom?: boolean
}

const ACTIONS = ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM']
const SPEC_KEYS = new Set(['selector', 'rules', 'action', 'provider', 'targetRef', 'targetRefs'])
const RULE_KEYS = new Set(['from', 'to', 'when'])
const SOURCE_KEYS = new Set([
  'principals', 'notPrincipals', 'requestPrincipals', 'notRequestPrincipals', 'namespaces', 'notNamespaces',
  'ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks', 'serviceAccounts', 'notServiceAccounts',
])
const OPERATION_KEYS = new Set(['hosts', 'notHosts', 'ports', 'notPorts', 'methods', 'notMethods', 'paths', 'notPaths'])
const CONDITION_KEYS = new Set(['key', 'values', 'notValues'])
const EXACT_WHEN_KEYS = new Set([
  'source.ip', 'remote.ip', 'source.namespace', 'source.principal', 'source.serviceAccount', 'request.auth.principal',
  'request.auth.audiences', 'request.auth.presenter', 'destination.ip', 'destination.port', 'connection.sni',
])
const MAP_WHEN_PREFIXES = ['request.headers', 'request.auth.claims', 'experimental.envoy.filters.']
export const KNOWN_WHEN_KEYS = [...EXACT_WHEN_KEYS, 'request.headers[<name>]', 'request.auth.claims[<name>]', 'experimental.envoy.filters.*']

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** An IP address or CIDR as istio's ValidateIPs accepts it. */
export function isValidIpOrCidr(value: string): boolean {
  if (typeof value !== 'string') return false
  const [addr, prefix, extra] = value.split('/')
  if (extra !== undefined) return false
  const fam = isIP(addr)
  if (fam === 0) return false
  if (prefix === undefined) return true
  if (!/^\d{1,3}$/.test(prefix)) return false
  return Number(prefix) <= (fam === 4 ? 32 : 128)
}

const isValidPort = (v: unknown) => /^\d+$/.test(String(v)) && Number(v) >= 0 && Number(v) <= 65535

function unknownKeys(obj: Record<string, unknown>, known: Set<string>, path: string, out: FieldCause[]) {
  for (const k of Object.keys(obj)) {
    if (!known.has(k)) out.push({field: `${path}.${k}`, message: `unknown field "${k}"`, value: obj[k]})
  }
}

/** Checks a string list; returns its items (or [] when it is not a list). */
function stringList(v: unknown, path: string, out: FieldCause[]): string[] {
  if (v === undefined || v === null) return []
  if (!Array.isArray(v)) {
    out.push({field: path, message: 'must be a list of strings', value: v})
    return []
  }
  const items: string[] = []
  v.forEach((item, i) => {
    if (typeof item === 'number' && (path.endsWith('orts') || path.endsWith('alues'))) {
      items.push(String(item))
    } else if (typeof item !== 'string') {
      out.push({field: `${path}[${i}]`, message: 'must be a string', value: item})
    } else if (item === '') {
      out.push({field: `${path}[${i}]`, message: 'empty value not allowed', value: item})
    } else items.push(item)
  })
  return items
}

function checkPrincipals(v: unknown, path: string, out: FieldCause[]) {
  stringList(v, path, out).forEach((p, i) => {
    if (p.startsWith('spiffe://')) {
      out.push({field: `${path}[${i}]`, message: `principal "${p}" must not start with spiffe:// (write ${p.slice(9)})`, value: p})
    } else if (/\s/.test(p)) {
      out.push({field: `${path}[${i}]`, message: `principal "${p}" contains whitespace`, value: p})
    }
  })
}

function checkIps(v: unknown, path: string, out: FieldCause[]) {
  stringList(v, path, out).forEach((ip, i) => {
    if (!isValidIpOrCidr(ip)) out.push({field: `${path}[${i}]`, message: `"${ip}" is not a valid IP address or CIDR`, value: ip})
  })
}

function checkPorts(v: unknown, path: string, out: FieldCause[]) {
  stringList(v, path, out).forEach((p, i) => {
    if (!isValidPort(p)) out.push({field: `${path}[${i}]`, message: `"${p}" is not a port in 0..65535`, value: p})
  })
}

function checkServiceAccounts(v: unknown, path: string, out: FieldCause[]) {
  stringList(v, path, out).forEach((sa, i) => {
    if (sa.includes('*') || sa.split('/').length > 2 || /\s/.test(sa)) {
      out.push({field: `${path}[${i}]`, message: `"${sa}" must be <name> or <namespace>/<name> without wildcards`, value: sa})
    }
  })
}

function checkSelector(sel: unknown, path: string, out: FieldCause[]) {
  if (sel === undefined || sel === null) return
  if (!isObj(sel)) {
    out.push({field: path, message: 'must be an object with matchLabels', value: sel})
    return
  }
  const ml = sel.matchLabels
  if (ml === undefined) return
  if (!isObj(ml)) {
    out.push({field: `${path}.matchLabels`, message: 'must be a map of label to value', value: ml})
    return
  }
  for (const [k, v] of Object.entries(ml)) {
    if (k === '') out.push({field: `${path}.matchLabels`, message: 'empty key is not supported in selector', value: k})
    if (k.includes('*') || String(v).includes('*')) {
      out.push({field: `${path}.matchLabels.${k}`, message: `wildcard is not supported in selector: "${k}=${v}"`, value: v})
    }
  }
}

function whenKeyKnown(key: string): boolean {
  if (EXACT_WHEN_KEYS.has(key)) return true
  for (const pre of MAP_WHEN_PREFIXES) {
    if (key.startsWith(pre)) return pre.endsWith('.') ? key.length > pre.length : /^\[[^\]]+\]$/.test(key.slice(pre.length))
  }
  return false
}

/** Semantic validation of an AuthorizationPolicy; [] when it may be applied. */
export function validateAuthorizationPolicySemantics(
  obj: KubeObject | {spec?: unknown; metadata?: unknown},
  opts: AuthorizationPolicyValidationOptions = {},
): FieldCause[] {
  const out: FieldCause[] = []
  const spec = (obj as {spec?: unknown}).spec ?? {}
  if (!isObj(spec)) return [{field: 'spec', message: 'must be an object', value: spec}]
  unknownKeys(spec, SPEC_KEYS, 'spec', out)

  const action = spec.action ?? 'ALLOW'
  if (typeof action !== 'string' || !ACTIONS.includes(action)) {
    out.push({field: 'spec.action', message: `unknown action "${String(action)}" (expected one of ${ACTIONS.join(', ')})`, value: action})
  }
  const rules = spec.rules
  if (rules !== undefined && !Array.isArray(rules)) out.push({field: 'spec.rules', message: 'must be a list of rules', value: rules})
  const ruleList: unknown[] = Array.isArray(rules) ? rules : []

  if (action === 'CUSTOM') {
    if (!opts.allowCustom) {
      out.push({field: 'spec.action', message: 'CUSTOM (external authorization) is not supported by the embedded cluster', value: action})
    }
    if (rules === undefined) {
      out.push({field: 'spec.rules', message: 'CUSTOM action without rules is never triggered; add an empty rule {} to apply it to every request'})
    } else if (!isObj(spec.provider) || typeof spec.provider.name !== 'string' || spec.provider.name === '') {
      out.push({field: 'spec.provider.name', message: 'must not be empty for a CUSTOM action'})
    }
  } else if (spec.provider !== undefined) {
    out.push({field: 'spec.provider', message: `provider must not be set with action ${String(action)}`, value: spec.provider})
  }
  if (action === 'DENY' && rules === undefined) {
    out.push({field: 'spec.rules', message: 'DENY action without rules is never triggered; add an empty rule {} to deny every request'})
  }

  checkSelector(spec.selector, 'spec.selector', out)
  const targets = (spec.targetRef ? 1 : 0) + (Array.isArray(spec.targetRefs) && spec.targetRefs.length > 0 ? 1 : 0)
  if (spec.selector && targets > 0) out.push({field: 'spec.selector', message: 'only one of selector, targetRef or targetRefs can be set'})

  ruleList.forEach((rule, i) => {
    const rp = `spec.rules[${i}]`
    if (!isObj(rule)) {
      out.push({field: rp, message: 'rule must be an object', value: rule})
      return
    }
    unknownKeys(rule, RULE_KEYS, rp, out)
    if (rule.from !== undefined) {
      if (!Array.isArray(rule.from) || rule.from.length === 0) out.push({field: `${rp}.from`, message: '`from` must not be empty', value: rule.from})
      else
        rule.from.forEach((f: unknown, j: number) => {
          const fp = `${rp}.from[${j}]`
          if (!isObj(f) || !isObj(f.source)) {
            out.push({field: `${fp}.source`, message: '`from.source` must not be empty', value: f})
            return
          }
          unknownKeys(f, new Set(['source']), fp, out)
          const s = f.source
          const sp = `${fp}.source`
          unknownKeys(s, SOURCE_KEYS, sp, out)
          if (![...SOURCE_KEYS].some((k) => Array.isArray(s[k]) && (s[k] as unknown[]).length > 0)) {
            out.push({field: sp, message: '`from.source` must set at least one field'})
          }
          checkPrincipals(s.principals, `${sp}.principals`, out)
          checkPrincipals(s.notPrincipals, `${sp}.notPrincipals`, out)
          stringList(s.requestPrincipals, `${sp}.requestPrincipals`, out)
          stringList(s.notRequestPrincipals, `${sp}.notRequestPrincipals`, out)
          stringList(s.namespaces, `${sp}.namespaces`, out)
          stringList(s.notNamespaces, `${sp}.notNamespaces`, out)
          checkIps(s.ipBlocks, `${sp}.ipBlocks`, out)
          checkIps(s.notIpBlocks, `${sp}.notIpBlocks`, out)
          checkIps(s.remoteIpBlocks, `${sp}.remoteIpBlocks`, out)
          checkIps(s.notRemoteIpBlocks, `${sp}.notRemoteIpBlocks`, out)
          checkServiceAccounts(s.serviceAccounts, `${sp}.serviceAccounts`, out)
          checkServiceAccounts(s.notServiceAccounts, `${sp}.notServiceAccounts`, out)
          const hasSa = [s.serviceAccounts, s.notServiceAccounts].some((x) => Array.isArray(x) && x.length > 0)
          const hasId = [s.principals, s.notPrincipals, s.namespaces, s.notNamespaces].some((x) => Array.isArray(x) && x.length > 0)
          if (hasSa && hasId) out.push({field: `${sp}.serviceAccounts`, message: 'cannot set serviceAccounts with namespaces or principals'})
          if (action === 'CUSTOM') {
            for (const k of ['principals', 'notPrincipals', 'namespaces', 'notNamespaces', 'requestPrincipals', 'notRequestPrincipals', 'serviceAccounts', 'notServiceAccounts']) {
              if (Array.isArray(s[k]) && (s[k] as unknown[]).length > 0) out.push({field: `${sp}.${k}`, message: `${k} is not supported with CUSTOM action`})
            }
          }
        })
    }
    if (rule.to !== undefined) {
      if (!Array.isArray(rule.to) || rule.to.length === 0) out.push({field: `${rp}.to`, message: '`to` must not be empty', value: rule.to})
      else
        rule.to.forEach((t: unknown, j: number) => {
          const tp = `${rp}.to[${j}]`
          if (!isObj(t) || !isObj(t.operation)) {
            out.push({field: `${tp}.operation`, message: '`to.operation` must not be empty', value: t})
            return
          }
          unknownKeys(t, new Set(['operation']), tp, out)
          const o = t.operation
          const op = `${tp}.operation`
          unknownKeys(o, OPERATION_KEYS, op, out)
          if (![...OPERATION_KEYS].some((k) => Array.isArray(o[k]) && (o[k] as unknown[]).length > 0)) {
            out.push({field: op, message: '`to.operation` must set at least one field'})
          }
          checkPorts(o.ports, `${op}.ports`, out)
          checkPorts(o.notPorts, `${op}.notPorts`, out)
          for (const k of ['hosts', 'notHosts', 'methods', 'notMethods', 'paths', 'notPaths']) stringList(o[k], `${op}.${k}`, out)
        })
    }
    if (rule.when !== undefined) {
      if (!Array.isArray(rule.when)) out.push({field: `${rp}.when`, message: 'must be a list of conditions', value: rule.when})
      else
        rule.when.forEach((c: unknown, j: number) => {
          const cp = `${rp}.when[${j}]`
          if (!isObj(c)) {
            out.push({field: cp, message: 'condition must be an object', value: c})
            return
          }
          unknownKeys(c, CONDITION_KEYS, cp, out)
          const key = c.key
          if (typeof key !== 'string' || key === '') {
            out.push({field: `${cp}.key`, message: '`key` must not be empty', value: key})
            return
          }
          if (!whenKeyKnown(key)) {
            out.push({field: `${cp}.key`, message: `unknown attribute "${key}" (known: ${KNOWN_WHEN_KEYS.join(', ')})`, value: key})
            return
          }
          const hasValues = Array.isArray(c.values) && c.values.length > 0
          const hasNot = Array.isArray(c.notValues) && c.notValues.length > 0
          if (!hasValues && !hasNot) out.push({field: cp, message: `at least one of values or notValues must be set for key ${key}`})
          for (const which of ['values', 'notValues'] as const) {
            const p = `${cp}.${which}`
            if (key === 'source.ip' || key === 'remote.ip' || key === 'destination.ip') checkIps(c[which], p, out)
            else if (key === 'destination.port') checkPorts(c[which], p, out)
            else if (key === 'source.principal') checkPrincipals(c[which], p, out)
            else if (key === 'source.serviceAccount') checkServiceAccounts(c[which], p, out)
            else stringList(c[which], p, out)
          }
          if (action === 'CUSTOM' && (key === 'source.namespace' || key === 'source.principal' || key === 'source.serviceAccount' || key.startsWith('request.auth.'))) {
            out.push({field: `${cp}.key`, message: `${key} is not supported with CUSTOM action`, value: key})
          }
        })
    }
  })
  return out
}

const PA_MODES = ['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT']

/** Semantic validation of a PeerAuthentication (istiod's rules); [] when valid. */
export function validatePeerAuthenticationSemantics(obj: KubeObject | {spec?: unknown}): FieldCause[] {
  const out: FieldCause[] = []
  const spec = (obj as {spec?: unknown}).spec ?? {}
  if (!isObj(spec)) return [{field: 'spec', message: 'must be an object', value: spec}]
  unknownKeys(spec, new Set(['selector', 'mtls', 'portLevelMtls']), 'spec', out)
  checkSelector(spec.selector, 'spec.selector', out)
  const checkMode = (m: unknown, path: string) => {
    if (m === undefined || m === null) return
    if (!isObj(m)) {
      out.push({field: path, message: 'must be an object with mode', value: m})
      return
    }
    unknownKeys(m, new Set(['mode']), path, out)
    if (m.mode !== undefined && (typeof m.mode !== 'string' || !PA_MODES.includes(m.mode))) {
      out.push({field: `${path}.mode`, message: `unknown mode "${String(m.mode)}" (expected one of ${PA_MODES.join(', ')})`, value: m.mode})
    }
  }
  checkMode(spec.mtls, 'spec.mtls')
  const plm = spec.portLevelMtls
  if (plm !== undefined) {
    const sel = isObj(spec.selector) && isObj(spec.selector.matchLabels) ? spec.selector.matchLabels : undefined
    if (!sel || Object.keys(sel).length === 0) {
      out.push({field: 'spec.portLevelMtls', message: 'mesh/namespace peer authentication cannot have port level mTLS (set a selector)'})
    }
    if (!isObj(plm) || Object.keys(plm).length === 0) {
      out.push({field: 'spec.portLevelMtls', message: 'port level mTLS, if defined, must have at least one element', value: plm})
    } else {
      for (const [port, m] of Object.entries(plm)) {
        if (!/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
          out.push({field: `spec.portLevelMtls.${port}`, message: 'port must be in range 1..65535', value: port})
        }
        checkMode(m, `spec.portLevelMtls.${port}`)
      }
    }
  }
  return out
}
