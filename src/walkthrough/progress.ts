// Where a participant is in each lab: `<MESH_HOME>/walkthroughs/<lab>.json`, written after
// every verdict and move so quitting (or a crash) loses nothing.
import {readFileSync, rmSync} from 'node:fs'
import {join} from 'node:path'
import {writeFileAtomic} from '../local/home.js'
import type {Lab} from './types.js'

export type RecordStatus = 'pass' | 'fail' | 'skipped'

export interface StepRecord {
  status: RecordStatus
  at: string
  durationMs?: number
}

export interface LabProgress {
  version: 1
  lab: string
  /** id of the step to resume at; null when the lab was completed */
  current: string | null
  /** 0-based index of that step, used when the id no longer exists */
  index: number
  completed: boolean
  steps: Record<string, StepRecord>
  updatedAt: string
}

export const walkthroughDir = (home: string): string => join(home, 'walkthroughs')
export const progressFile = (home: string, labId: string): string => join(walkthroughDir(home), `${labId}.json`)

/** The saved progress, or undefined when there is none or it is unreadable. */
export function loadProgress(home: string, labId: string): LabProgress | undefined {
  try {
    const p = JSON.parse(readFileSync(progressFile(home, labId), 'utf8')) as LabProgress
    if (p && p.version === 1 && p.lab === labId && typeof p.index === 'number' && typeof p.steps === 'object' && p.steps !== null) return p
  } catch {
    // missing or corrupt: start fresh
  }
  return undefined
}

export function saveProgress(home: string, p: LabProgress): void {
  writeFileAtomic(progressFile(home, p.lab), JSON.stringify(p, null, 2) + '\n')
}

export function clearProgress(home: string, labId: string): void {
  rmSync(progressFile(home, labId), {force: true})
}

export function emptyProgress(labId: string): LabProgress {
  return {version: 1, lab: labId, current: null, index: 0, completed: false, steps: {}, updatedAt: new Date().toISOString()}
}

export type ResumeReason = 'new' | 'resumed' | 'completed-before' | 'lab-changed'

/** Where to start: the saved step (found by id, else by index), or step 1. */
export function resumePoint(lab: Lab, p: LabProgress | undefined): {index: number; reason: ResumeReason} {
  if (!p) return {index: 0, reason: 'new'}
  if (p.completed) return {index: 0, reason: 'completed-before'}
  const byId = p.current === null ? -1 : lab.steps.findIndex((s) => s.id === p.current)
  if (byId >= 0) return {index: byId, reason: byId === 0 && Object.keys(p.steps).length === 0 ? 'new' : 'resumed'}
  if (p.index > 0 && p.index < lab.steps.length) return {index: p.index, reason: 'lab-changed'}
  return {index: 0, reason: p.index === 0 ? 'new' : 'lab-changed'}
}

/** Short progress for `mesh lab list`: passed count, where the participant is, done or not. */
export function progressSummary(lab: Lab, p: LabProgress | undefined): {passed: number; total: number; current: number | null; completed: boolean; label: string} {
  const total = lab.steps.length
  if (!p) return {passed: 0, total, current: null, completed: false, label: '-'}
  const passed = lab.steps.filter((s) => p.steps[s.id]?.status === 'pass').length
  if (p.completed) return {passed, total, current: null, completed: true, label: `done (${passed}/${total} passed)`}
  const {index} = resumePoint(lab, p)
  return {passed, total, current: index + 1, completed: false, label: `step ${index + 1}/${total}`}
}
