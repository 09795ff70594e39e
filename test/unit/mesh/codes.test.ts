import {readFileSync, readdirSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {MESH_CODES} from '../../../src/mesh/index.js'

const root = join(import.meta.dirname, '..', '..', '..')

describe('MESH_* code catalogue', () => {
  const doc = readFileSync(join(root, 'docs/errors.md'), 'utf8')

  it('docs/errors.md has one line per code with its exact suggestion', () => {
    for (const [code, suggestion] of Object.entries(MESH_CODES)) {
      const line = doc.split('\n').find((l) => l.startsWith(`| \`${code}\` |`))
      expect(line, code).toBeDefined()
      expect(line).toContain(suggestion)
    }
  })

  it('every MESH_* code used in src/mesh is catalogued', () => {
    const dir = join(root, 'src/mesh')
    const used = new Set<string>()
    for (const f of readdirSync(dir)) {
      for (const m of readFileSync(join(dir, f), 'utf8').matchAll(/'(MESH_[A-Z0-9_]+)'/g)) used.add(m[1]!)
    }
    expect(used.size).toBeGreaterThan(20)
    for (const code of used) expect(Object.keys(MESH_CODES), code).toContain(code)
  })
})
