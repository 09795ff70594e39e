import {spawn, spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync} from 'node:fs'
import {hostname, tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {labLockPath, readLockHolder, withLabLock} from '../../../src/cluster/lock.js'
import type {MeshError} from '../../../src/lib/errors.js'

const dir = mkdtempSync(join(tmpdir(), 'mesh-lock-'))
afterAll(() => rmSync(dir, {recursive: true, force: true}))
let n = 0
const freshHome = () => join(dir, `home-${++n}`)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('withLabLock (one process)', () => {
  it('runs concurrent callers one after another', async () => {
    const home = freshHome()
    const events: string[] = []
    const task = (name: string) =>
      withLabLock(
        home,
        async () => {
          events.push(`${name}:start`)
          await sleep(30)
          events.push(`${name}:end`)
          return name
        },
        {waitMs: 10_000},
      )
    const results = await Promise.all([task('a'), task('b'), task('c')])
    expect(results).toEqual(['a', 'b', 'c'])
    // every start is followed by its own end: no interleaving
    for (let i = 0; i < events.length; i += 2) expect(events[i].split(':')[0]).toBe(events[i + 1].split(':')[0])
    expect(events).toHaveLength(6)
    expect(existsSync(labLockPath(home))).toBe(false)
  })

  it('a nested call in the same flow re-enters instead of deadlocking', async () => {
    const home = freshHome()
    const r = await withLabLock(home, () => withLabLock(home, async () => 'inner', {waitMs: 0}), {waitMs: 0})
    expect(r).toBe('inner')
  })

  it('busy past waitMs → MESH_LAB_BUSY (69) naming the holder pid and command', async () => {
    const home = freshHome()
    let release!: () => void
    let acquired!: () => void
    const isHeld = new Promise<void>((r) => (acquired = r))
    const holding = withLabLock(home, () => new Promise<void>((r) => ((release = r), acquired())), {command: 'mesh canary shift 90/10'})
    await isHeld
    const e = (await withLabLock(home, async () => 'never', {waitMs: 200}).catch((x: unknown) => x)) as MeshError
    release()
    await holding
    expect(e.code).toBe('MESH_LAB_BUSY')
    expect(e.exit).toBe(69)
    expect(e.message).toContain(`pid ${process.pid}`)
    expect(e.message).toContain('mesh canary shift 90/10')
    // and once released, the lock is free again
    expect(await withLabLock(home, async () => 'free', {waitMs: 0})).toBe('free')
  })

  it('releases the lock when the function throws', async () => {
    const home = freshHome()
    await expect(withLabLock(home, async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom')
    expect(readLockHolder(labLockPath(home))).toBeUndefined()
    expect(await withLabLock(home, async () => 1, {waitMs: 0})).toBe(1)
  })

  it('breaks a lock left by a process that no longer exists', async () => {
    const home = freshHome()
    // a real pid that has certainly exited
    const gone = spawnSync(process.execPath, ['-e', 'process.exit(0)'])
    const deadPid = gone.pid!
    const lock = labLockPath(home)
    mkdirSync(lock, {recursive: true})
    writeFileSync(`${lock}.holder.json`, JSON.stringify({pid: deadPid, host: hostname(), command: 'mesh lab up', acquiredAt: new Date(0).toISOString()}))
    const old = new Date(Date.now() - 3_000)
    utimesSync(lock, old, old)
    expect(await withLabLock(home, async () => 'taken over', {waitMs: 2_000})).toBe('taken over')
  })

  it('does not break a lock whose holder is alive', async () => {
    const home = freshHome()
    const alive = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], {stdio: 'ignore'})
    try {
      const lock = labLockPath(home)
      mkdirSync(lock, {recursive: true})
      writeFileSync(`${lock}.holder.json`, JSON.stringify({pid: alive.pid, host: hostname(), command: 'mesh lab reset', acquiredAt: new Date().toISOString()}))
      const old = new Date(Date.now() - 3_000)
      utimesSync(lock, old, old)
      const e = (await withLabLock(home, async () => 'never', {waitMs: 300}).catch((x: unknown) => x)) as MeshError
      expect(e.code).toBe('MESH_LAB_BUSY')
      expect(e.message).toContain(`pid ${alive.pid}`)
      expect(e.message).toContain('mesh lab reset')
      expect(JSON.parse(readFileSync(`${lock}.holder.json`, 'utf8')).pid).toBe(alive.pid)
    } finally {
      alive.kill('SIGKILL')
    }
  })
})
