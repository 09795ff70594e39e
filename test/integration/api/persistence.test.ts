// kill -9 a process in the middle of a stream of writes; everything it acknowledged survives,
// the store opens cleanly, and resourceVersions keep increasing.
import {spawn, type ChildProcess} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import ts from 'typescript'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {FileStore} from '../../../src/local/api/store.js'

const ROOT = join(import.meta.dirname, '..', '..', '..')
let work: string
let build: string
const children: ChildProcess[] = []

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'mesh-persist-'))
  build = join(work, 'build')
  // compile just the store (and what it imports) so a plain node child can run it
  const program = ts.createProgram([join(ROOT, 'src', 'local', 'api', 'store.ts')], {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    rootDir: join(ROOT, 'src'),
    outDir: build,
    strict: true,
    skipLibCheck: true,
    noEmitOnError: false,
  })
  const emitted = program.emit()
  expect(emitted.emitSkipped).toBe(false)
  writeFileSync(join(build, 'package.json'), '{"type":"module"}')
  writeFileSync(
    join(build, 'writer.mjs'),
    `import {FileStore} from './local/api/store.js'
const [dir, start] = [process.argv[2], Number(process.argv[3])]
const s = await FileStore.open({dir, compactEvery: 25})
const cm = s.typeFor('ConfigMap')
if (!s.get(cm, 'default', 'counter')) await s.create(cm, {apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: 'counter', namespace: 'default'}, data: {n: '0'}})
process.stdout.write('ready\\n')
for (let i = start; i < start + 5000; i += 4) {
  // four writes in flight at once, so acknowledgements come from shared fsync batches
  const names = [i, i + 1, i + 2, i + 3].map((n) => 'item-' + n)
  await Promise.all(names.map(async (name, k) => {
    const o = await s.create(cm, {apiVersion: 'v1', kind: 'ConfigMap', metadata: {name, namespace: 'default'}, data: {k: String(k)}})
    process.stdout.write('ack ' + name + ' ' + o.metadata.resourceVersion + '\\n')
  }))
  const c = s.get(cm, 'default', 'counter')
  const u = await s.update(cm, {...c, data: {n: String(i)}})
  process.stdout.write('counter ' + i + ' ' + u.metadata.resourceVersion + '\\n')
}
`,
  )
})

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  rmSync(work, {recursive: true, force: true})
})

interface Acks {
  names: string[]
  counter: number
  maxRv: number
}

/** Runs the writer until it has acknowledged `n` creates, then kill -9. */
function runAndKill(dir: string, start: number, n: number): Promise<Acks> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(build, 'writer.mjs'), dir, String(start)], {stdio: ['ignore', 'pipe', 'pipe']})
    children.push(child)
    const acks: Acks = {names: [], counter: -1, maxRv: 0}
    let buf = ''
    let err = ''
    let killed = false
    child.stderr.on('data', (c) => (err += c))
    child.stdout.on('data', (c) => {
      buf += c
      let i
      while ((i = buf.indexOf('\n')) >= 0) {
        const [what, a, b] = buf.slice(0, i).split(' ')
        buf = buf.slice(i + 1)
        if (killed) continue
        if (what === 'ack') acks.names.push(a)
        if (what === 'counter') acks.counter = Number(a)
        if (b) acks.maxRv = Math.max(acks.maxRv, Number(b))
        if (acks.names.length >= n) {
          killed = true
          child.kill('SIGKILL')
        }
      }
    })
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(acks)
      else reject(new Error(`writer exited on its own (${code}): ${err}`))
    })
  })
}

describe('durability across kill -9', () => {
  it('keeps every acknowledged write and keeps resourceVersions increasing', async () => {
    const dir = join(work, 'state')
    const all: string[] = []
    let lastRv = 0
    let start = 0
    for (const n of [150, 90]) {
      const acks = await runAndKill(dir, start, n)
      expect(acks.names.length).toBeGreaterThanOrEqual(n)
      all.push(...acks.names)
      const s = await FileStore.open({dir})
      try {
        const cm = s.typeFor('ConfigMap')!
        const missing = all.filter((name) => !s.get(cm, 'default', name))
        expect(missing).toEqual([])
        expect(Number(s.get(cm, 'default', 'counter')!.data && (s.get(cm, 'default', 'counter')!.data as {n: string}).n)).toBeGreaterThanOrEqual(acks.counter)
        expect(Number(s.currentResourceVersion())).toBeGreaterThanOrEqual(acks.maxRv)
        expect(acks.maxRv).toBeGreaterThan(lastRv)
        const probe = await s.create(cm, {apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: `probe-${start}`, namespace: 'default'}})
        expect(Number(probe.metadata.resourceVersion)).toBeGreaterThan(acks.maxRv)
        lastRv = Number(probe.metadata.resourceVersion)
        // what the store lists agrees with what it gets
        expect(s.list(cm, 'default').items.length).toBe(s.list(cm, undefined).items.length)
      } finally {
        await s.close()
      }
      start += 10_000
    }
  })
})
