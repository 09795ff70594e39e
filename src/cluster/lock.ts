// One lab, one writer: commands that change a lab run inside withLabLock so their changes
// never interleave. The lock is a proper-lockfile directory (<home>/lab.lock, mkdir is atomic)
// whose mtime the holder refreshes; beside it <home>/lab.lock.holder.json says who holds it.
// A holder that died without releasing (kill -9) is detected by its pid and the lock broken at
// once; a holder on another host is trusted until proper-lockfile's mtime staleness (10 s).
import {AsyncLocalStorage} from 'node:async_hooks'
import {mkdirSync, readFileSync, renameSync, rmdirSync, statSync, unlinkSync, writeFileSync} from 'node:fs'
import {hostname} from 'node:os'
import {join} from 'node:path'
import lockfile from 'proper-lockfile'
import {EXIT, MeshError} from '../lib/errors.js'

export interface LabLockHolder {
  pid: number
  host: string
  command: string
  acquiredAt: string
}

export interface LabLockOptions {
  /** how long to wait for a busy lock before MESH_LAB_BUSY; default 30 s, 0 = fail at once */
  waitMs?: number
  /** what to record as the holder's command; default the process's argv */
  command?: string
  /** lock file name inside home; default lab.lock (lets one home hold per-target locks) */
  name?: string
}

const STALE_MS = 10_000
/** a lock younger than this may belong to a holder that has not written its holder file yet */
const FRESH_MS = 1_000

const held = new AsyncLocalStorage<Set<string>>()

export const labLockPath = (home: string, name = 'lab.lock') => join(home, name)
const holderPath = (lockPath: string) => `${lockPath}.holder.json`

export function readLockHolder(lockPath: string): LabLockHolder | undefined {
  try {
    const h = JSON.parse(readFileSync(holderPath(lockPath), 'utf8')) as LabLockHolder
    return typeof h.pid === 'number' ? h : undefined
  } catch {
    return undefined
  }
}

export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    // EPERM: it exists but belongs to someone else
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

const defaultCommand = () => {
  const args = process.argv.slice(2)
  return ['mesh', ...args].join(' ')
}

/**
 * Break the lock if its recorded holder is a dead process on this host. The holder file is
 * claimed by rename first, so of several waiters only one breaks it, and a holder file that
 * turns out to be a live holder's is put back.
 */
function breakIfDead(lockPath: string): boolean {
  const holder = readLockHolder(lockPath)
  if (!holder || holder.host !== hostname() || isProcessAlive(holder.pid)) return false
  let lockAge: number
  try {
    lockAge = Date.now() - statSync(lockPath).mtimeMs
  } catch {
    return true // already gone: retry at once
  }
  if (lockAge < FRESH_MS) return false
  const claimed = `${holderPath(lockPath)}.breaking.${process.pid}`
  try {
    renameSync(holderPath(lockPath), claimed)
  } catch {
    return false // another waiter claimed it
  }
  let claimedHolder: LabLockHolder | undefined
  try {
    claimedHolder = JSON.parse(readFileSync(claimed, 'utf8')) as LabLockHolder
  } catch {
    claimedHolder = undefined
  }
  if (claimedHolder && claimedHolder.host === hostname() && !isProcessAlive(claimedHolder.pid)) {
    try {
      rmdirSync(lockPath)
    } catch {
      // released meanwhile
    }
    try {
      unlinkSync(claimed)
    } catch {
      // ignore
    }
    return true
  }
  try {
    renameSync(claimed, holderPath(lockPath))
  } catch {
    // ignore
  }
  return false
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * Run `fn` holding the lab lock of `home`. Nested calls in the same async flow re-enter;
 * concurrent calls (same process or not) run one after another. Busy for longer than `waitMs`
 * → MESH_LAB_BUSY (exit 69) naming the holder.
 */
export async function withLabLock<T>(home: string, fn: () => Promise<T>, opts: LabLockOptions = {}): Promise<T> {
  const lockPath = labLockPath(home, opts.name)
  const mine = held.getStore()
  if (mine?.has(lockPath)) return fn()
  mkdirSync(home, {recursive: true})
  const waitMs = opts.waitMs ?? 30_000
  const deadline = Date.now() + waitMs
  let compromised: Error | undefined
  let release: (() => Promise<void>) | undefined
  let delay = 20
  for (;;) {
    try {
      release = await lockfile.lock(home, {
        lockfilePath: lockPath,
        realpath: false,
        stale: STALE_MS,
        retries: 0,
        onCompromised: (err) => {
          // someone removed our lock (or its mtime could not be refreshed); do not crash the command
          compromised = err
        },
      })
      break
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ELOCKED') throw e
      if (breakIfDead(lockPath)) continue
      if (Date.now() >= deadline) throw busyError(home, lockPath, waitMs)
      await sleep(Math.min(delay, Math.max(1, deadline - Date.now())))
      delay = Math.min(delay * 2, 250)
    }
  }
  const holder: LabLockHolder = {pid: process.pid, host: hostname(), command: opts.command ?? defaultCommand(), acquiredAt: new Date().toISOString()}
  const tmp = `${holderPath(lockPath)}.${process.pid}.tmp`
  writeFileSync(tmp, JSON.stringify(holder))
  renameSync(tmp, holderPath(lockPath))
  try {
    return await held.run(new Set([...(mine ?? []), lockPath]), fn)
  } finally {
    const current = readLockHolder(lockPath)
    if (current?.pid === process.pid && current.acquiredAt === holder.acquiredAt) {
      try {
        unlinkSync(holderPath(lockPath))
      } catch {
        // ignore
      }
    }
    if (!compromised) {
      try {
        await release()
      } catch {
        // lock already gone
      }
    }
  }
}

function busyError(home: string, lockPath: string, waitMs: number): MeshError {
  const h = readLockHolder(lockPath)
  const who = h ? `pid ${h.pid}${h.host !== hostname() ? ` on ${h.host}` : ''} (${h.command}) has held it since ${h.acquiredAt}` : 'another mesh command holds it'
  return new MeshError('MESH_LAB_BUSY', `the lab at ${home} is busy: ${who}; waited ${Math.round(waitMs / 100) / 10} s`, {
    suggestion: h ? `Wait for pid ${h.pid} to finish (or stop it), then re-run.` : 'Wait for the other mesh command to finish, then re-run.',
    exit: EXIT.unavailable,
  })
}
