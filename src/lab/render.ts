// Text the lab commands print, built as plain strings (no terminal I/O here): split bars,
// old → new lines, propagation timing.
import {formatWeights, type Weights} from '../mesh/weights.js'
import type {SyncSummary} from './change.js'

export const BAR_WIDTH = 20

/** `████████████████░░░░` for a percentage (rounded to the bar's resolution). */
export function bar(percent: number, width = BAR_WIDTH): string {
  const p = Math.max(0, Math.min(100, percent))
  const filled = Math.round((p / 100) * width)
  return '█'.repeat(filled) + '░'.repeat(width - filled)
}

/** Two lines: `v1 ██████████████████░░  90%` and the same for v2. */
export function splitBars(w: Weights, width = BAR_WIDTH): string[] {
  return (['v1', 'v2'] as const).map((v) => `${v} ${bar(w[v], width)} ${String(w[v]).padStart(3)}%`)
}

/** `90/10 → 50/50`, or `50/50 (unchanged)`. */
export function transition(from: Weights, to: Weights): string {
  return from.v1 === to.v1 && from.v2 === to.v2 ? `${formatWeights(to)} (unchanged)` : `${formatWeights(from)} → ${formatWeights(to)}`
}

export const formatMs = (ms: number): string => (ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`)

/** `3 proxies acknowledged in 120 ms` */
export function describeSync(s: SyncSummary): string {
  if (s.proxies === 0) return `no proxy connected yet; config stored (checked in ${formatMs(s.waitedMs)})`
  return `${s.proxies} ${s.proxies === 1 ? 'proxy' : 'proxies'} acknowledged the change in ${formatMs(s.waitedMs)}`
}

/** The note a dry run ends with (stderr): what was checked and that nothing changed. */
export function dryRunNote(r: {serverValidated: boolean}): string {
  return r.serverValidated
    ? 'dry run: the API server validated this (server-side dry run); nothing was changed'
    : 'dry run: the lab is down, so only mesh checked this (no server-side dry run); nothing was changed'
}

/** `VirtualService mesh-lab/hello configured, VirtualService mesh-lab/hello-ingress configured` */
export function describeChanges(changes: ReadonlyArray<{kind: string; namespace?: string; name: string; action: string}>): string {
  if (changes.length === 0) return 'nothing to change'
  return changes.map((c) => `${c.kind} ${c.namespace ? `${c.namespace}/` : ''}${c.name} ${c.action}`).join(', ')
}
