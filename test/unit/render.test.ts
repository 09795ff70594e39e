// `mesh render` end to end: the compiled CLI, its stdout/stderr and exit codes.
import {spawnSync} from 'node:child_process'
import {existsSync, readdirSync, statSync} from 'node:fs'
import {join, relative} from 'node:path'
import {beforeAll, describe, expect, it} from 'vitest'
import {
  buildAllowPolicy,
  buildCircuitBreakerDestinationRule,
  buildDenyAll,
  buildGateway,
  buildHelloDestinationRule,
  buildHelloVirtualServices,
  buildPeerAuthentication,
  labBaseline,
  loadYamlObjects,
} from '../../src/mesh/index.js'

const root = join(import.meta.dirname, '..', '..')

/** dist/ is current when every src/**.ts has a .js at least as new. */
function distIsCurrent(): boolean {
  const src = join(root, 'src')
  for (const e of readdirSync(src, {recursive: true, withFileTypes: true})) {
    if (!e.isFile() || !e.name.endsWith('.ts') || e.name.endsWith('.d.ts')) continue
    const file = join(e.parentPath, e.name)
    const out = join(root, 'dist', relative(src, file)).replace(/\.ts$/, '.js')
    if (!existsSync(out) || statSync(out).mtimeMs < statSync(file).mtimeMs) return false
  }
  return true
}

beforeAll(() => {
  // Build once when dist/ is stale (npm test has usually just built it). Plain tsc rather than
  // `npm run build`, whose `rm -rf dist` would pull the CLI from under test files running beside this one.
  if (!distIsCurrent()) spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json', '--noEmitOnError', 'false'], {cwd: root, stdio: 'ignore'})
  expect(existsSync(join(root, 'dist/commands/render/canary.js'))).toBe(true)
}, 180_000)

const mesh = (...args: string[]) => {
  const r = spawnSync(process.execPath, [join(root, 'bin/run.js'), ...args], {cwd: root, encoding: 'utf8', env: {...process.env, CI: 'true', NO_COLOR: '1'}})
  return {code: r.status, stdout: r.stdout, stderr: r.stderr}
}

const ok = (...args: string[]) => {
  const r = mesh(...args)
  expect(r.stderr, `stderr of mesh ${args.join(' ')}`).toBe('')
  expect(r.code).toBe(0)
  return loadYamlObjects(r.stdout, 'stdout')
}

const rejected = (code: string, ...args: string[]) => {
  const r = mesh(...args)
  expect(r.code, `exit of mesh ${args.join(' ')}`).toBe(65)
  expect(r.stdout).toBe('')
  expect(r.stderr).toContain(`[${code}]`)
  expect(r.stderr).toMatch(/Suggestion: \S/)
  return r.stderr
}

describe('mesh render canary', () => {
  it('prints both VirtualServices for 90/10 as one YAML stream', () => {
    const r = mesh('render', 'canary', '90/10')
    expect(r.stdout).toMatch(/\n---\n/)
    expect(ok('render', 'canary', '90/10')).toEqual(buildHelloVirtualServices({v1: 90, v2: 10}))
  })

  it('honours --namespace', () => {
    expect(ok('render', 'canary', '50/50', '--namespace', 'demo')).toEqual(buildHelloVirtualServices({v1: 50, v2: 50}, {namespace: 'demo'}))
  })

  it('rejects 90/20 (sum), abc (format) and -5/105 (range) with exit 65 and nothing on stdout', () => {
    expect(rejected('MESH_WEIGHTS_SUM', 'render', 'canary', '90/20')).toContain('90/20')
    expect(rejected('MESH_WEIGHTS_FORMAT', 'render', 'canary', 'abc')).toContain('"abc"')
    // looks like a flag to a parser; must still reach the weight check
    expect(rejected('MESH_WEIGHTS_RANGE', 'render', 'canary', '-5/105')).toContain('-5')
  })

  it('under --json prints the envelope with the objects, or the error', () => {
    const good = mesh('render', 'canary', '0/100', '--json')
    expect(good.code).toBe(0)
    const env = JSON.parse(good.stdout)
    expect(env.ok).toBe(true)
    expect(env.result.objects).toEqual(buildHelloVirtualServices({v1: 0, v2: 100}))
    const bad = mesh('render', 'canary', '90/20', '--json')
    expect(bad.code).toBe(65)
    expect(JSON.parse(bad.stdout)).toMatchObject({ok: false, error: {code: 'MESH_WEIGHTS_SUM', exitCode: 65}})
  })

  it('treats a missing argument as a usage error (64)', () => {
    const r = mesh('render', 'canary')
    expect(r.code).toBe(64)
    expect(r.stdout).toBe('')
  })
})

describe('mesh render mtls', () => {
  it('renders STRICT for a namespace, PERMISSIVE for the lab, STRICT mesh-wide', () => {
    expect(ok('render', 'mtls', 'strict', '--namespace', 'demo')).toEqual([buildPeerAuthentication({mode: 'STRICT', namespace: 'demo'})])
    expect(ok('render', 'mtls', 'permissive')).toEqual([buildPeerAuthentication({mode: 'PERMISSIVE'})])
    expect(ok('render', 'mtls', 'STRICT', '--mesh')).toEqual([buildPeerAuthentication({mode: 'STRICT', mesh: true})])
  })

  it('rejects an unknown mode and a namespace together with --mesh', () => {
    expect(rejected('MESH_MTLS_MODE', 'render', 'mtls', 'loose')).toContain('"loose"')
    rejected('MESH_PA_SCOPE', 'render', 'mtls', 'strict', '--mesh', '--namespace', 'demo')
  })
})

describe('mesh render policy', () => {
  it('renders deny-all, in the lab namespace or another', () => {
    expect(ok('render', 'policy', 'deny-all')).toEqual([buildDenyAll()])
    expect(ok('render', 'policy', 'deny-all', '--namespace', 'demo')).toEqual([buildDenyAll('demo')])
  })

  it('renders an ALLOW rule from methods, paths and a principal', () => {
    const got = ok('render', 'policy', 'allow', '--methods', 'GET', '--paths', '/hello', '--from-principal', 'cluster.local/ns/mesh-lab/sa/curl')
    expect(got).toEqual([buildAllowPolicy({methods: ['GET'], paths: ['/hello'], principals: ['cluster.local/ns/mesh-lab/sa/curl']})])
  })

  it('takes comma lists and a selector', () => {
    const got = ok('render', 'policy', 'allow', '--methods', 'GET,HEAD', '--selector', 'app=hello', '--from-namespace', 'mesh-lab')
    expect(got).toEqual([buildAllowPolicy({methods: ['GET', 'HEAD'], selector: {app: 'hello'}, namespaces: ['mesh-lab']})])
  })

  it('rejects method FETCH, a spiffe:// principal, an empty rule and an unknown policy', () => {
    expect(rejected('MESH_HTTP_METHOD', 'render', 'policy', 'allow', '--methods', 'FETCH')).toContain('FETCH')
    rejected('MESH_PRINCIPAL', 'render', 'policy', 'allow', '--from-principal', 'spiffe://cluster.local/ns/mesh-lab/sa/curl')
    rejected('MESH_POLICY_NO_RULES', 'render', 'policy', 'allow')
    rejected('MESH_POLICY_KIND', 'render', 'policy', 'allow-all')
  })
})

describe('mesh render destination-rule, gateway, baseline', () => {
  it('renders the DestinationRule and its circuit-breaker variant', () => {
    expect(ok('render', 'destination-rule')).toEqual([buildHelloDestinationRule()])
    expect(ok('render', 'destination-rule', '--circuit-breaker')).toEqual([buildCircuitBreakerDestinationRule()])
  })

  it('warns on stderr, still printing the YAML, when ejection is impossible for the endpoint count', () => {
    const r = mesh('render', 'destination-rule', '--endpoints', '1')
    expect(r.code).toBe(0)
    expect(r.stderr).toContain('MESH_EJECTION_IMPOSSIBLE')
    expect(loadYamlObjects(r.stdout)).toEqual([buildHelloDestinationRule()])
    const json = JSON.parse(mesh('render', 'destination-rule', '--endpoints', '1', '--json').stdout)
    expect(json.warnings).toEqual([expect.objectContaining({code: 'MESH_EJECTION_IMPOSSIBLE'})])
  })

  it('renders the gateway and the whole baseline in apply order', () => {
    expect(ok('render', 'gateway')).toEqual([buildGateway()])
    expect(ok('render', 'baseline')).toEqual(labBaseline())
  })
})
