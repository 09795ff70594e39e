// Flags the verify commands and `mesh load` share, and their mapping to library options.
// Definitions only: no terminal I/O. Numbers are taken as text and checked here so a bad value
// is invalid input (65) with a domain code, not an oclif parse error (64).
import {Flags} from '@oclif/core'
import {invalid} from '../lib/errors.js'
import {HTTP_METHODS} from '../mesh/rules.js'
import {parseWeights, type Weights} from '../mesh/weights.js'
import {numberInput, positiveInt} from './common.js'
import type {VerifySplitOptions} from './split.js'

export const FORMATS = ['text', 'json', 'junit'] as const
export type VerifyFormat = (typeof FORMATS)[number]

/** How results are written: shared by every verify command. */
export const outputFlags = {
  // `options` makes an unknown format an oclif parse error → MESH_USAGE, exit 64 (docs/verify.md)
  format: Flags.string({char: 'o', description: 'result format on stdout (or in --output)', options: [...FORMATS], default: 'text'}),
  output: Flags.string({description: 'write the --format output to this file (text stays on stdout), e.g. results.xml'}),
  report: Flags.string({description: 'write a self-contained HTML report (split over time, latency, matrices) to this file'}),
  verbose: Flags.boolean({char: 'v', description: 'show evidence under passing checks too', default: false}),
  'sync-timeout': Flags.integer({description: 'seconds to wait for the proxies before measuring', default: 30, min: 1}),
}

export const ingressFlag = {
  ingress: Flags.string({description: 'ingress base URL (default: the target\'s, port-forwarded on a real cluster when needed)'}),
}

export const splitFlags = {
  expect: Flags.string({description: 'expected V1/V2 weights, e.g. 90/10 (default: what the ingress VirtualService routes now)'}),
  tolerance: Flags.string({description: 'accepted deviation of the v2 share, percentage points', default: '5'}),
  confidence: Flags.string({description: 'confidence of the sequential test; 0.999 = 0.1% false alarms', default: '0.999'}),
  budget: Flags.string({description: 'request budget: inconclusive (exit 2) when used up before a decision', default: '5000'}),
  connections: Flags.string({description: 'concurrent connections of the load', default: '10'}),
  rate: Flags.string({description: 'total requests per second (default: as fast as the lab answers)'}),
  'max-duration': Flags.string({description: 'seconds before the split check gives up (inconclusive)', default: '120'}),
}

export const securityFlags = {
  calls: Flags.string({description: 'calls per caller and request (the legacy caller lands on a random pod)', default: '2'}),
  method: Flags.string({description: 'authz: HTTP methods to try (repeatable)', multiple: true}),
  path: Flags.string({description: 'authz: request paths to try (repeatable; the ingress routes only /hello)', multiple: true}),
}

export const ejectionFlags = {
  'ejection-connections': Flags.string({description: 'ejection: concurrent connections (also the in-flight slack of the prediction)', default: '4'}),
  'ejection-rate': Flags.string({description: 'ejection: total requests per second', default: '100'}),
  'ejection-timeout': Flags.string({description: 'ejection: longest the load may run, seconds (default: enough to see one ejection end)'}),
}

export interface SplitFlagValues {
  expect?: string
  tolerance: string
  confidence: string
  budget: string
  connections: string
  rate?: string
  'max-duration': string
  ingress?: string
}

/** Flags → split options; every bad value is a 65 with the field named. */
export function splitOptions(f: SplitFlagValues): Omit<VerifySplitOptions, 'onProgress' | 'onLook' | 'signal'> {
  const expect: Weights | undefined = f.expect !== undefined ? parseWeights(f.expect, 'expect') : undefined
  return {
    ...(expect ? {expect} : {}),
    tolerance: numberInput(f.tolerance, 'tolerance')!,
    confidence: numberInput(f.confidence, 'confidence')!,
    budget: numberInput(f.budget, 'budget', {integer: true})!,
    connections: positiveInt(numberInput(f.connections, 'connections', {integer: true}), 'connections')!,
    ...(f.rate !== undefined ? {rate: positiveInt(numberInput(f.rate, 'rate', {integer: true}), 'rate')} : {}),
    maxDurationSec: positiveSeconds(f['max-duration'], 'max-duration'),
    ...(f.ingress !== undefined ? {ingressUrl: f.ingress} : {}),
  }
}

export function positiveSeconds(text: string, field: string): number {
  const v = numberInput(text, field)!
  if (!(v > 0)) return positiveInt(-1, field)! // throws the same MESH_INVALID_<FIELD>
  return v
}

export interface SecurityFlagValues {
  calls: string
  method?: string[]
  path?: string[]
}

function checkPath(p: string): string {
  if (!p.startsWith('/')) throw invalid('MESH_CALL_PATH', `path "${p}" does not start with "/"`, 'Give a request path such as /hello.', 'path')
  return p
}

function checkMethod(text: string): string {
  const m = text.trim().toUpperCase()
  if (m && !(HTTP_METHODS as readonly string[]).includes(m)) {
    throw invalid('MESH_HTTP_METHOD', `method "${text}" is not an HTTP method`, `Use one of ${HTTP_METHODS.join(', ')}.`, 'method')
  }
  return m
}

export function securityOptions(f: SecurityFlagValues): {calls: number; methods?: string[]; paths?: string[]} {
  return {
    calls: positiveInt(numberInput(f.calls, 'calls', {integer: true}), 'calls')!,
    ...(f.method?.length ? {methods: f.method.flatMap((m) => m.split(',')).map(checkMethod).filter(Boolean)} : {}),
    ...(f.path?.length ? {paths: f.path.map(checkPath)} : {}),
  }
}

export interface EjectionFlagValues {
  'ejection-connections': string
  'ejection-rate': string
  'ejection-timeout'?: string
  ingress?: string
}

export function ejectionOptions(f: EjectionFlagValues): {connections: number; rate: number; timeoutSec?: number; ingressUrl?: string} {
  return {
    connections: positiveInt(numberInput(f['ejection-connections'], 'ejection-connections', {integer: true}), 'ejection-connections')!,
    rate: positiveInt(numberInput(f['ejection-rate'], 'ejection-rate', {integer: true}), 'ejection-rate')!,
    ...(f['ejection-timeout'] !== undefined ? {timeoutSec: positiveSeconds(f['ejection-timeout'], 'ejection-timeout')} : {}),
    ...(f.ingress !== undefined ? {ingressUrl: f.ingress} : {}),
  }
}
