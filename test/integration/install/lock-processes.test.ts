// The lab lock across processes: children run the compiled lock (dist/, built by `npm test`).
import {spawn, type ChildProcess} from 'node:child_process'
import {existsSync, mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join, resolve} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {withLabLock} from '../../../src/cluster/lock.js'
import type {MeshError} from '../../../src/lib/errors.js'

const HOLDER = resolve('test/integration/install/lock-holder.mjs')
const dir = mkdtempSync(join(tmpdir(), 'mesh-lockproc-'))
const children: ChildProcess[] = []

beforeAll(() => {
  if (!existsSync(resolve('dist/cluster/lock.js'))) throw new Error('dist/cluster/lock.js is missing: run `npm run build` first')
})
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  rmSync(dir, {recursive: true, force: true})
})

function holder(home: string, id: string, events: string, hold: string) {
  const child = spawn(process.execPath, [HOLDER, home, id, events, hold], {stdio: ['ignore', 'pipe', 'pipe']})
  children.push(child)
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
  const held = new Promise<void>((r) => child.stdout!.on('data', (d: Buffer) => d.toString().includes('held') && r()))
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  return {child, exited, held, stderr: () => stderr}
}

describe('withLabLock across processes', () => {
  it('two commands on the same lab run one after the other', async () => {
    const home = join(dir, 'serial')
    const events = join(dir, 'serial.log')
    const a = holder(home, 'a', events, '300')
    const b = holder(home, 'b', events, '300')
    expect(await a.exited).toBe(0)
    expect(await b.exited).toBe(0)
    const lines = readFileSync(events, 'utf8').trim().split('\n')
    expect(lines).toHaveLength(4)
    expect(lines[0].split(':')[0]).toBe(lines[1].split(':')[0])
    expect(lines[2].split(':')[0]).toBe(lines[3].split(':')[0])
    expect(lines.map((l) => l.split(':')[1])).toEqual(['start', 'end', 'start', 'end'])
  })

  it('a holder killed with kill -9 does not block the lab', async () => {
    const home = join(dir, 'killed')
    const h = holder(home, 'victim', join(dir, 'killed.log'), 'forever')
    await h.held
    const busy = (await withLabLock(home, async () => 'no', {waitMs: 200}).catch((e: unknown) => e)) as MeshError
    expect(busy.code).toBe('MESH_LAB_BUSY')
    expect(busy.message).toContain(`pid ${h.child.pid}`)
    expect(busy.message).toContain('lock-holder victim')
    h.child.kill('SIGKILL')
    await h.exited
    expect(await withLabLock(home, async () => 'recovered', {waitMs: 15_000})).toBe('recovered')
  })
})
