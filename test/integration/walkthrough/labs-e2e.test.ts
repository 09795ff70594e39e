// Every lab in labs/ runs unattended on a real embedded lab, as an instructor's CI would run it:
// `mesh lab walkthrough <lab> --reset --non-interactive`, each step's check must pass.
import {spawnSync} from 'node:child_process'
import {mkdtempSync, readdirSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {XMLParser} from 'fast-xml-parser'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {killLeftoverMeshd} from '../../helpers/lab-process.js'

const ROOT = join(import.meta.dirname, '..', '..', '..')
const home = mkdtempSync(join(tmpdir(), 'mesh-labs-e2e-'))
const env = {...process.env, MESH_HOME: home, CI: 'true'}
const mesh = (...args: string[]) => spawnSync(process.execPath, [join(ROOT, 'bin', 'run.js'), ...args], {cwd: ROOT, env, encoding: 'utf8', timeout: 240_000})

beforeAll(() => {
  const up = mesh('lab', 'up')
  if (up.status !== 0) throw new Error(`lab up failed: ${up.stderr}`)
}, 120_000)

afterAll(() => {
  mesh('lab', 'down', '--purge')
  killLeftoverMeshd(home)
}, 60_000)

describe('every lab runs unattended', () => {
  const labs = readdirSync(join(ROOT, 'labs')).filter((f) => /^\d\d-.*\.md$/.test(f)).map((f) => f.replace(/\.md$/, ''))
  it('finds the five labs', () => expect(labs.length).toBeGreaterThanOrEqual(5))
  for (const lab of labs) {
    it(`${lab} passes every step's check`, () => {
      const out = join(home, `${lab}.xml`)
      const r = mesh('lab', 'walkthrough', lab, '--reset', '--non-interactive', '--format', 'junit', '--output', out)
      expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0)
      const suite = new XMLParser({ignoreAttributes: false}).parse(spawnSync('cat', [out], {encoding: 'utf8'}).stdout)
      const ts = suite.testsuites?.testsuite ?? suite.testsuite
      expect(Number(ts['@_tests'])).toBeGreaterThan(0)
      expect(Number(ts['@_failures'] ?? 0)).toBe(0)
    }, 240_000)
  }
})
