import {execFileSync, spawnSync} from 'node:child_process'
import {describe, expect, it} from 'vitest'

const run = (...args: string[]) => spawnSync('node', ['bin/run.js', ...args], {encoding: 'utf8', env: {...process.env, CI: 'true'}})

describe('CLI conventions', () => {
  it('shows the exit-code table in mesh --help', () => {
    const out = execFileSync('node', ['bin/run.js', '--help'], {encoding: 'utf8'})
    expect(out).toContain('EXIT CODES')
    for (const code of ['64', '65', '69', '70']) expect(out).toMatch(new RegExp(`\\n\\s+${code}\\s+\\w`))
  })

  it('treats an unknown command as a usage error (64) with a code and a suggestion', () => {
    const r = run('no-such-command')
    expect(r.status).toBe(64)
    expect(r.stdout).toBe('')
    expect(r.stderr).toContain('MESH_UNKNOWN_COMMAND')
    expect(r.stderr).toContain('mesh --help')
  })
})
