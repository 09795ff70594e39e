// Progress of `mesh canary run`, kept in <home>/canary-run.json so an interrupted or killed run
// can be resumed (and `canary status` can say where the last run stopped). Written atomically.
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {writeFileAtomic} from '../local/home.js'
import type {Weights} from '../mesh/weights.js'

export type GateVerdict = 'pass' | 'fail' | 'inconclusive' | 'skipped'

export interface GateRecord {
  /** index of the plan step the gate judged */
  index: number
  weights: Weights
  verdict: GateVerdict
  reason: string
  at: string
}

export interface CanaryRunProgress {
  version: 1
  /** the plan as text, e.g. "100/0,90/10,50/50,0/100": a resume needs the same plan */
  plan: string
  status: 'running' | 'interrupted' | 'completed' | 'rolled-back'
  pid: number
  startedAt: string
  updatedAt: string
  /** the last step this run applied (or found in place) */
  lastApplied?: {index: number; weights: Weights; at: string}
  gates: GateRecord[]
  rollback?: {reason: string; verdict: GateVerdict; at: string}
}

export const CANARY_RUN_FILE = 'canary-run.json'
export const runProgressPath = (home: string): string => join(home, CANARY_RUN_FILE)

/** The recorded run, or undefined (no file, or one mesh cannot read). */
export function readRunProgress(home: string): CanaryRunProgress | undefined {
  try {
    const p = JSON.parse(readFileSync(runProgressPath(home), 'utf8')) as CanaryRunProgress
    return p && p.version === 1 && typeof p.plan === 'string' && Array.isArray(p.gates) ? p : undefined
  } catch {
    return undefined
  }
}

export function writeRunProgress(home: string, p: CanaryRunProgress): void {
  writeFileAtomic(runProgressPath(home), JSON.stringify({...p, updatedAt: new Date().toISOString()}, null, 2) + '\n')
}
