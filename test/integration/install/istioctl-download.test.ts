// The istioctl path end to end with a stand-in: a release archive packed from
// test/fixtures/istioctl/istioctl, served with its .sha256 by a loopback HTTP server.
import {createHash} from 'node:crypto'
import {chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync} from 'node:fs'
import {createServer, type Server} from 'node:http'
import type {AddressInfo} from 'node:net'
import {tmpdir} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {create} from 'tar'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {downloadIstioctl, ensureIstioctl, findIstioctl, installIstio, istioctlArtifact, runIstioctl} from '../../../src/install/istioctl.js'
import type {MeshError} from '../../../src/lib/errors.js'

const STAND_IN = resolve('test/fixtures/istioctl/istioctl')
const dir = mkdtempSync(join(tmpdir(), 'mesh-istioctl-'))
const nodeDir = dirname(process.execPath)
let server: Server
let base = ''
const requests: string[] = []
const {name: linuxName} = istioctlArtifact('1.28.1', {platform: 'linux', arch: 'x64'})
const art = (v: string) => istioctlArtifact(v, {platform: process.platform, arch: process.arch}).name
/** path → body served; anything else is 404 */
const files = new Map<string, Buffer>()

async function pack(entries: Record<string, string>): Promise<Buffer> {
  const staging = mkdtempSync(join(dir, 'pack-'))
  for (const [name, src] of Object.entries(entries)) {
    copyFileSync(src, join(staging, name))
    chmodSync(join(staging, name), 0o755)
  }
  const out = join(staging, 'out.tar.gz')
  await create({gzip: true, file: out, cwd: staging}, Object.keys(entries))
  return readFileSync(out)
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

beforeAll(async () => {
  expect(linuxName).toBe('istioctl-1.28.1-linux-amd64.tar.gz')
  const good = await pack({istioctl: STAND_IN})
  // 1.28.1: archive + correct checksum
  files.set(`/1.28.1/${art('1.28.1')}`, good)
  files.set(`/1.28.1/${art('1.28.1')}.sha256`, Buffer.from(`${sha(good)}  ${art('1.28.1')}\n`))
  // 1.28.2: the checksum does not match the archive
  files.set(`/1.28.2/${art('1.28.2')}`, good)
  files.set(`/1.28.2/${art('1.28.2')}.sha256`, Buffer.from(`${sha(Buffer.from('something else'))}  ${art('1.28.2')}\n`))
  // 1.28.3: nothing published
  // 1.28.4: checksum published, archive missing
  files.set(`/1.28.4/${art('1.28.4')}.sha256`, Buffer.from(`${sha(good)}  ${art('1.28.4')}\n`))
  // 1.28.5: correct checksum, but no istioctl inside
  const wrong = await pack({README: STAND_IN})
  files.set(`/1.28.5/${art('1.28.5')}`, wrong)
  files.set(`/1.28.5/${art('1.28.5')}.sha256`, Buffer.from(`${sha(wrong)}  ${art('1.28.5')}\n`))
  server = createServer((req, res) => {
    requests.push(req.url ?? '')
    const body = files.get(req.url ?? '')
    if (!body) {
      res.writeHead(404).end('Not Found')
      return
    }
    res.writeHead(200, {'content-type': 'application/octet-stream', 'content-length': body.length}).end(body)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(async () => {
  await new Promise((r) => server?.close(r))
  rmSync(dir, {recursive: true, force: true})
})

let n = 0
/** a fresh mesh home and an env whose PATH has node but no istioctl */
function sandbox(extra: NodeJS.ProcessEnv = {}) {
  const home = join(dir, `home-${++n}`)
  const log = join(dir, `argv-${n}.jsonl`)
  const env: NodeJS.ProcessEnv = {PATH: nodeDir, MESH_HOME: home, MESH_ISTIO_RELEASE_URL: base, FAKE_ISTIOCTL_LOG: log, ...extra}
  const recorded = () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as {argv: string[]; kubeconfig: string | null}) : [])
  return {home, env, recorded, cache: join(home, 'cache', 'istioctl')}
}

const fail = async (p: Promise<unknown>): Promise<MeshError> => {
  try {
    await p
  } catch (e) {
    return e as MeshError
  }
  throw new Error('expected a failure')
}

describe('istioctl download', () => {
  it('good checksum: installs into the cache, then runs it with the lab install arguments', async () => {
    const {home, env, recorded, cache} = sandbox()
    const before = requests.length
    const loc = await ensureIstioctl({version: '1.28.1', env})
    expect(loc).toEqual({path: join(cache, '1.28.1', 'istioctl'), source: 'download', version: '1.28.1'})
    expect(readFileSync(loc.path)).toEqual(readFileSync(STAND_IN))
    expect(requests.slice(before)).toEqual([`/1.28.1/${art('1.28.1')}.sha256`, `/1.28.1/${art('1.28.1')}`])
    // only the version directory is left in the cache: no archive, no temp dir
    expect(readdirSync(cache)).toEqual(['1.28.1'])
    expect(readdirSync(join(cache, '1.28.1'))).toEqual(['istioctl'])

    const kubeconfig = join(home, 'kc.yaml')
    const r = await installIstio({version: '1.28.1', context: 'kind-mesh', kubeconfig, env})
    expect(r.istioctl.source).toBe('cache')
    expect(r.clientVersion).toBe('1.28.1')
    expect(r.warnings).toEqual([])
    const calls = recorded()
    expect(calls.map((c) => c.argv)).toEqual([
      ['version', '--remote=false'],
      ['install', '--set', 'profile=demo', '-y', '--context', 'kind-mesh', '--kubeconfig', kubeconfig],
    ])
    expect(r.stdout).toContain('Installation complete')
    // a second lookup finds the cache and downloads nothing
    const again = requests.length
    expect((await ensureIstioctl({version: '1.28.1', env})).source).toBe('cache')
    expect(requests.length).toBe(again)
  })

  it('bad checksum: MESH_ISTIOCTL_CHECKSUM (69) and nothing left in the cache', async () => {
    const {env, cache} = sandbox()
    const e = await fail(ensureIstioctl({version: '1.28.2', env}))
    expect(e.code).toBe('MESH_ISTIOCTL_CHECKSUM')
    expect(e.exit).toBe(69)
    expect(e.message).toContain('not installing it')
    expect(e.suggestion).toContain('MESH_ISTIOCTL')
    expect(readdirSync(cache)).toEqual([])
    expect(findIstioctl({version: '1.28.2', env})).toBeUndefined()
  })

  it('404: MESH_ISTIOCTL_DOWNLOAD naming the URL', async () => {
    const {env, cache} = sandbox()
    const e = await fail(ensureIstioctl({version: '1.28.3', env}))
    expect(e.code).toBe('MESH_ISTIOCTL_DOWNLOAD')
    expect(e.exit).toBe(69)
    expect(e.message).toContain(`${base}/1.28.3/${art('1.28.3')}.sha256`)
    expect(e.message).toContain('404')
    const e2 = await fail(ensureIstioctl({version: '1.28.4', env}))
    expect(e2.code).toBe('MESH_ISTIOCTL_DOWNLOAD')
    expect(e2.message).toContain(`${base}/1.28.4/${art('1.28.4')}:`)
    expect(readdirSync(cache)).toEqual([])
  })

  it('an archive without istioctl is refused and leaves nothing behind', async () => {
    const {env, cache} = sandbox()
    const e = await fail(downloadIstioctl({version: '1.28.5', env}))
    expect(e.code).toBe('MESH_ISTIOCTL_ARCHIVE')
    expect(readdirSync(cache)).toEqual([])
  })

  it('an unreachable release server is MESH_ISTIOCTL_DOWNLOAD', async () => {
    // a port that was free a moment ago: nothing listens there
    const probe = createServer()
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r))
    const port = (probe.address() as AddressInfo).port
    await new Promise((r) => probe.close(r))
    const {env} = sandbox({MESH_ISTIO_RELEASE_URL: `http://127.0.0.1:${port}`})
    const e = await fail(ensureIstioctl({version: '1.28.1', env}))
    expect(e.code).toBe('MESH_ISTIOCTL_DOWNLOAD')
    expect(e.message).toContain(`http://127.0.0.1:${port}/1.28.1/`)
  })

  it('Windows archives are zip: refused without a request', async () => {
    const {env} = sandbox()
    const before = requests.length
    const e = await fail(downloadIstioctl({version: '1.28.1', env, platform: 'win32', arch: 'x64'}))
    expect(e.code).toBe('MESH_ISTIOCTL_PLATFORM')
    expect(requests.length).toBe(before)
  })
})

describe('istioctl already present', () => {
  it('found on PATH: no download happens', async () => {
    const bin = join(dir, 'bin-path')
    mkdirSync(bin, {recursive: true})
    copyFileSync(STAND_IN, join(bin, 'istioctl'))
    chmodSync(join(bin, 'istioctl'), 0o755)
    const {env, recorded, cache} = sandbox({PATH: `${bin}:${nodeDir}`, FAKE_ISTIOCTL_VERSION: '1.27.2'})
    const before = requests.length
    const loc = await ensureIstioctl({version: '1.28.1', env})
    expect(loc).toEqual({path: join(bin, 'istioctl'), source: 'path'})
    const r = await installIstio({context: 'kind-mesh', env, profile: 'minimal'})
    expect(requests.length - before).toBe(0)
    expect(existsSync(cache)).toBe(false)
    // a different minor than the pinned one is a warning, not a failure
    expect(r.warnings.map((w) => w.code)).toEqual(['MESH_ISTIOCTL_VERSION_MISMATCH'])
    expect(r.warnings[0].message).toContain('1.27.2')
    expect(recorded().at(-1)?.argv).toEqual(['install', '--set', 'profile=minimal', '-y', '--context', 'kind-mesh'])
  })

  it('MESH_ISTIOCTL wins over PATH; a bad value is MESH_ISTIOCTL_NOT_FOUND (65)', async () => {
    const {env} = sandbox({MESH_ISTIOCTL: STAND_IN})
    expect(findIstioctl({env})).toEqual({path: STAND_IN, source: 'env'})
    const bad = sandbox({MESH_ISTIOCTL: join(dir, 'no-such-istioctl')})
    const e = await fail(ensureIstioctl({env: bad.env}))
    expect(e.code).toBe('MESH_ISTIOCTL_NOT_FOUND')
    expect(e.exit).toBe(65)
  })

  it('a KUBECONFIG list is passed through the environment, not --kubeconfig', async () => {
    const {env, recorded} = sandbox({MESH_ISTIOCTL: STAND_IN})
    await runIstioctl(['proxy-status'], {env, context: 'kind-mesh', kubeconfig: '/a/one.yaml:/b/two.yaml'})
    expect(recorded()).toEqual([{argv: ['proxy-status', '--context', 'kind-mesh'], kubeconfig: '/a/one.yaml:/b/two.yaml'}])
  })

  it('istioctl failing is MESH_ISTIOCTL_FAILED (69) with its error output', async () => {
    const {env} = sandbox({MESH_ISTIOCTL: STAND_IN, FAKE_ISTIOCTL_FAIL: 'install'})
    const e = await fail(installIstio({context: 'kind-mesh', env}))
    expect(e.code).toBe('MESH_ISTIOCTL_FAILED')
    expect(e.exit).toBe(69)
    expect(e.message).toContain('exited with 1')
    expect(e.message).toContain('stand-in told to fail "install"')
  })

  it('bad install input is refused before istioctl runs', async () => {
    const {env, recorded} = sandbox({MESH_ISTIOCTL: STAND_IN})
    expect((await fail(installIstio({context: 'kind-mesh', env, profile: 'tiny' as 'demo'}))).code).toBe('MESH_ISTIO_PROFILE_INVALID')
    expect((await fail(installIstio({context: 'kind-mesh', env, version: 'latest'}))).code).toBe('MESH_ISTIO_VERSION_INVALID')
    expect((await fail(installIstio({context: 'kind-mesh', env, revision: 'Bad_Rev'}))).code).toBe('MESH_ISTIO_REVISION_INVALID')
    expect(recorded()).toEqual([])
  })
})
