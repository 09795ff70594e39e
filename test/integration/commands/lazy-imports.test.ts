// The embedded path of the everyday commands does not load what only real clusters (client-node,
// execa, istioctl) or other commands (load generator, reports) need: each costs tens to hundreds
// of milliseconds of start-up per command (docs/adr/0150). Checked on the compiled commands by
// recording every module a fresh node process loads.
import {spawnSync} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {pathToFileURL} from 'node:url'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {ensureBuilt, ROOT} from './helpers.js'

let dir: string

beforeAll(() => {
  ensureBuilt()
  dir = mkdtempSync(join(tmpdir(), 'mesh-imports-'))
  // a loader hook that appends the URL of every module the ES loader loads: our code is ESM, so the
  // first module of every package it imports passes here (requires inside CJS packages do not)
  writeFileSync(join(dir, 'hook.mjs'), `import {appendFileSync} from 'node:fs'\nexport async function load(url, ctx, next) {\n  appendFileSync(process.env.IMPORT_LOG, url + '\\n')\n  return next(url, ctx)\n}\n`)
  writeFileSync(join(dir, 'register.mjs'), `import {register} from 'node:module'\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hook.mjs')).href)})\n`)
})

afterAll(() => rmSync(dir, {recursive: true, force: true}))

/** every module URL loaded by importing a compiled command (or another module under dist/) */
function loadedBy(command: string, under = 'dist/commands'): string[] {
  const log = join(dir, `${command.replaceAll('/', '_')}.log`)
  writeFileSync(log, '')
  const r = spawnSync(process.execPath, ['--import', pathToFileURL(join(dir, 'register.mjs')).href, '--input-type=module', '-e', `await import(${JSON.stringify(pathToFileURL(join(ROOT, under, `${command}.js`)).href)})`], {
    env: {...process.env, IMPORT_LOG: log},
    encoding: 'utf8',
  })
  expect(r.status, r.stderr).toBe(0)
  return readFileSync(log, 'utf8').split('\n').filter(Boolean)
}

const packages = (urls: string[]) => new Set(urls.map((u) => /node_modules\/((@[^/]+\/)?[^/]+)/.exec(u)?.[1]).filter((p): p is string => Boolean(p)))

describe('start-up imports of the embedded commands', () => {
  it.each(['lab/up', 'lab/status', 'lab/down', 'canary/shift', 'canary/status', 'mtls/index', 'policy/deny-all'])('%s loads neither client-node, execa, ora nor the load generator', (command) => {
    const loaded = packages(loadedBy(command))
    expect(loaded.has('@oclif/core')).toBe(true) // the hook saw the command's imports
    for (const heavy of ['@kubernetes/client-node', 'execa', 'tar', 'ora', 'autocannon', 'hdr-histogram-js']) expect(loaded.has(heavy), heavy).toBe(false)
  })
})

describe('start-up imports of the proxies', () => {
  // every proxy process (the gateway, each meshed pod) pays its imports at lab up (docs/adr/0153)
  it.each([
    ['gateway-main', 'proxy.js'],
    ['sidecar', 'proxy.js'],
    ['security/provider', 'security/tls.js'], // loaded by both once they start (mTLS, authorization)
  ])('%s loads neither the X.509 library nor undici', (proxy, seen) => {
    const urls = loadedBy(proxy, 'dist/local/dataplane')
    expect(urls.some((u) => u.endsWith(`/dist/local/dataplane/${seen}`))).toBe(true) // the hook saw its imports
    const loaded = packages(urls)
    for (const heavy of ['@peculiar/x509', 'reflect-metadata', 'undici', '@kubernetes/client-node']) expect(loaded.has(heavy), heavy).toBe(false)
  })
})
