// Label and field selectors with Kubernetes' syntax.
import {badRequest} from './errors.js'

type Op = '=' | '!=' | 'in' | 'notin' | 'exists' | '!'

export interface Requirement {
  key: string
  op: Op
  values: string[]
}

export type Matcher = (labels: Record<string, string> | undefined) => boolean

const KEY = /^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?\/)?[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?$/
const VALUE = /^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?)?$/

/** Splits on commas that are not inside parentheses. */
function splitTop(s: string): string[] {
  const out: string[] = []
  let depth = 0
  let cur = ''
  for (const ch of s) {
    if (ch === '(') depth++
    if (ch === ')') depth--
    if (ch === ',' && depth === 0) {
      out.push(cur)
      cur = ''
    } else cur += ch
  }
  out.push(cur)
  return out.map((x) => x.trim()).filter((x) => x !== '')
}

export function parseLabelSelector(sel: string): Requirement[] {
  const reqs: Requirement[] = []
  for (const part of splitTop(sel)) {
    let m: RegExpMatchArray | null
    let req: Requirement
    if ((m = part.match(/^(\S+)\s+(in|notin)\s*\((.*)\)$/))) {
      const values = m[3]
        .split(',')
        .map((v) => v.trim())
      req = {key: m[1], op: m[2] as Op, values}
    } else if ((m = part.match(/^!\s*(\S+)$/))) {
      req = {key: m[1], op: '!', values: []}
    } else if ((m = part.match(/^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/))) {
      req = {key: m[1], op: m[2] === '!=' ? '!=' : '=', values: [m[3]]}
    } else if ((m = part.match(/^([^=!\s()]+)$/))) {
      req = {key: m[1], op: 'exists', values: []}
    } else {
      throw badRequest(`unable to parse requirement: found '${part}', expected: label selector syntax`)
    }
    if (!KEY.test(req.key)) throw badRequest(`invalid label key "${req.key}" in selector "${sel}"`)
    for (const v of req.values) {
      if (!VALUE.test(v) || v.length > 63) throw badRequest(`invalid label value: "${v}" in selector "${sel}"`)
    }
    reqs.push(req)
  }
  return reqs
}

export function labelMatcher(sel: string | undefined): Matcher {
  if (!sel || sel.trim() === '') return () => true
  const reqs = parseLabelSelector(sel)
  return (labels) => {
    const l = labels ?? {}
    return reqs.every((r) => {
      const has = Object.prototype.hasOwnProperty.call(l, r.key)
      switch (r.op) {
        case '=':
          return has && l[r.key] === r.values[0]
        case '!=':
          return !has || l[r.key] !== r.values[0]
        case 'in':
          return has && r.values.includes(l[r.key])
        case 'notin':
          return !has || !r.values.includes(l[r.key])
        case 'exists':
          return has
        case '!':
          return !has
      }
      return false
    })
  }
}

/** A label selector in the structured form Deployments and Services use. */
export function matchesLabelSelector(
  selector: {matchLabels?: Record<string, string>; matchExpressions?: Array<{key: string; operator: string; values?: string[]}>} | undefined,
  labels: Record<string, string> | undefined,
): boolean {
  if (!selector) return false
  const l = labels ?? {}
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (l[k] !== v) return false
  for (const e of selector.matchExpressions ?? []) {
    const has = k(e.key)
    const vals = e.values ?? []
    if (e.operator === 'In' && !(has && vals.includes(l[e.key]))) return false
    if (e.operator === 'NotIn' && has && vals.includes(l[e.key])) return false
    if (e.operator === 'Exists' && !has) return false
    if (e.operator === 'DoesNotExist' && has) return false
  }
  return true
  function k(key: string): boolean {
    return Object.prototype.hasOwnProperty.call(l, key)
  }
}

export type FieldMatcher = (obj: Record<string, unknown>) => boolean

function fieldValue(obj: Record<string, unknown>, path: string): string {
  let cur: unknown = obj
  for (const p of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return ''
    cur = (cur as Record<string, unknown>)[p]
  }
  if (cur === undefined || cur === null) return ''
  return String(cur)
}

/** Field selectors: `a.b=c`, `a.b==c`, `a.b!=c`, comma-separated (AND). Any dotted path is accepted. */
export function fieldMatcher(sel: string | undefined): FieldMatcher {
  if (!sel || sel.trim() === '') return () => true
  const reqs = sel
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)
    .map((p) => {
      const m = p.match(/^([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)$/)
      if (!m) throw badRequest(`invalid field selector: '${p}'`)
      return {path: m[1], neg: m[2] === '!=', value: m[3]}
    })
  return (obj) => reqs.every((r) => (fieldValue(obj, r.path) === r.value) !== r.neg)
}
