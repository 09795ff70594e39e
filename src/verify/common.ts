// Pieces every verification shares: where the ingress is (and whether it answers at all),
// waiting for the proxies before measuring, and the lab state the expectations come from.
import type {Target} from '../cluster/target.js'
import type {CheckResult} from '../checks/report.js'
import {EXIT, MeshError, invalid} from '../lib/errors.js'
import {LAB} from '../mesh/lab.js'
import {resultOf} from './catalog.js'

/** Progress for the command to show (stderr); the library itself prints nothing. */
export type ProgressFn = (text: string) => void

export const ingressUnreachable = (url: string, why: string, cause?: unknown): MeshError =>
  new MeshError('MESH_INGRESS_UNREACHABLE', `the ingress at ${url} does not answer: ${why}`, {
    suggestion: 'Check the lab with mesh lab status (is the ingress gateway running?), or give the right address with --ingress.',
    exit: EXIT.unavailable,
    cause,
  })

/** The ingress base URL: an explicit one (validated), else the target's. */
export async function resolveIngress(target: Target, override?: string): Promise<string> {
  if (override !== undefined) {
    let u: URL
    try {
      u = new URL(override)
    } catch {
      throw invalid('MESH_INGRESS_URL', `ingress "${override}" is not a URL`, 'Give the ingress base URL, e.g. http://127.0.0.1:8080.', 'ingress')
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw invalid('MESH_INGRESS_URL', `ingress "${override}" must be http or https`, 'Give the ingress base URL, e.g. http://127.0.0.1:8080.', 'ingress')
    return u.origin
  }
  return (await target.ingressUrl()).replace(/\/$/, '')
}

/**
 * One request to the ingress before any measurement: a refused or timed-out connection is
 * "unavailable" (69), not a failed check. Any HTTP answer, even a 5xx, means it is up.
 */
export async function probeIngress(base: string, path: string = LAB.ingressPath, timeoutMs = 10_000): Promise<{status: number}> {
  const url = base + path
  try {
    const res = await fetch(url, {signal: AbortSignal.timeout(timeoutMs)})
    await res.arrayBuffer()
    return {status: res.status}
  } catch (e) {
    const err = e as Error & {cause?: {code?: string; message?: string}}
    throw ingressUnreachable(base, err.cause?.code ?? err.cause?.message ?? err.message, e)
  }
}

export interface SyncEvidence {
  synced: boolean
  proxies: number
  waitedMs: number
  generation: number
}

/** Wait for propagation and express it as the `sync` check; a timeout stays an error (69). */
export async function syncCheck(target: Target, timeoutMs = 30_000): Promise<{result: CheckResult; sync: SyncEvidence}> {
  const started = performance.now()
  const r = await target.waitForSync({timeoutMs})
  const sync = {synced: r.synced, proxies: r.proxies.length, waitedMs: r.waitedMs, generation: r.generation}
  const stale = r.proxies.filter((p) => p.state === 'STALE').map((p) => p.proxy)
  const result = resultOf(
    'sync',
    r.synced && stale.length === 0 ? 'pass' : 'fail',
    r.synced
      ? `${r.proxies.length} prox${r.proxies.length === 1 ? 'y' : 'ies'} acknowledged the configuration after ${r.waitedMs} ms`
      : `proxies still STALE: ${stale.join(', ')}`,
    {proxies: r.proxies.length, waitedMs: r.waitedMs, ...(target.kind === 'embedded' ? {generation: r.generation} : {})},
    {durationMs: performance.now() - started},
  )
  return {result, sync}
}

/** Parse a numeric flag given as text; anything else is MESH_INVALID_<FIELD> (65). */
export function numberInput(text: string | undefined, field: string, opts: {integer?: boolean} = {}): number | undefined {
  if (text === undefined) return undefined
  const t = text.trim()
  const n = t === '' ? NaN : Number(t)
  if (!Number.isFinite(n) || (opts.integer && !Number.isInteger(n))) {
    throw invalid(
      `MESH_INVALID_${field.replace(/[^a-z0-9]+/gi, '_').toUpperCase()}`,
      `${field} "${text}" is not ${opts.integer ? 'a whole number' : 'a number'}`,
      `Give --${field} as ${opts.integer ? 'a whole number' : 'a number'}.`,
      field,
    )
  }
  return n
}

/** A positive integer option (connections, rate, budget, calls). */
export function positiveInt(v: number | undefined, field: string): number | undefined {
  if (v === undefined) return undefined
  if (!Number.isInteger(v) || v < 1) {
    throw invalid(`MESH_INVALID_${field.replace(/[^a-z0-9]+/gi, '_').toUpperCase()}`, `${field} must be a whole number of at least 1, got ${v}`, `Give --${field} as a whole number ≥ 1.`, field)
  }
  return v
}
