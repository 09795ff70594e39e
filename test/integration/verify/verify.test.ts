// mesh verify and mesh load end to end: the compiled CLI against a real embedded lab (meshd, pod
// processes, gateway and sidecars) in a temp MESH_HOME. One lab for the file; tests run in order
// and each leaves the lab at its baseline for the next.
import {existsSync, mkdirSync, readFileSync} from 'node:fs'
import {createServer} from 'node:net'
import {join} from 'node:path'
import {pathToFileURL} from 'node:url'
import {XMLParser} from 'fast-xml-parser'
import {chromium} from 'playwright-core'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {KubeClient, KubeObject} from '../../../src/cluster/client.js'
import {EmbeddedTarget} from '../../../src/cluster/target.js'
import {buildCircuitBreakerDestinationRule, buildHelloDestinationRule} from '../../../src/mesh/traffic.js'
import {cleanupLab, ensureBuilt, labClient, mesh, ROOT, startLab, tempHome} from '../commands/helpers.js'

let home: string
let client: KubeClient

type Check = {id: string; status: string; severity: string; message: string; evidence: Record<string, any>} // eslint-disable-line @typescript-eslint/no-explicit-any
const check = (json: {result: {checks: Check[]}}, id: string): Check => {
  const c = json.result.checks.find((x) => x.id === id)
  if (!c) throw new Error(`no check ${id} in ${json.result.checks.map((x) => x.id).join(', ')}`)
  return c
}

/** A port on 127.0.0.1 nobody listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as {port: number}).port
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

const applyDr = async (dr: KubeObject) => client.apply(dr, {fieldManager: 'mesh', force: true})
const faultyReplicas = async () => (await client.get({apiVersion: 'apps/v1', kind: 'Deployment', name: 'hello-v1-faulty', namespace: 'mesh-lab'}))?.spec?.replicas
const faultyPods = async () => (await client.list('v1', 'Pod', {namespace: 'mesh-lab', labelSelector: 'mesh.lab/faulty=true'})).length

beforeAll(async () => {
  ensureBuilt()
  home = tempHome('mesh-verify-it-')
  await startLab(home)
  client = labClient(home)
}, 180_000)

afterAll(async () => {
  await cleanupLab(home)
}, 60_000)

describe('bad input and an unreachable lab', () => {
  it('exits 65 (bad values), 64 (unknown --format) and 69 (ingress or lab unreachable) with the documented codes', async () => {
    const cases: Array<[string[], number, string]> = [
      [['verify', 'split', '--expect', '90/20'], 65, 'MESH_WEIGHTS_SUM'],
      [['verify', 'split', '--tolerance', '0'], 65, 'MESH_INVALID_TOLERANCE'],
      [['verify', 'split', '--confidence', '2'], 65, 'MESH_INVALID_CONFIDENCE'],
      [['verify', '--format', 'xml'], 64, 'MESH_USAGE'],
      [['verify', '--include', 'latency'], 65, 'MESH_VERIFY_CHECK'],
      [['verify', 'authz', '--method', 'FETCH'], 65, 'MESH_HTTP_METHOD'],
      [['load', '--requests', '0'], 65, 'MESH_INVALID_REQUESTS'],
      [['load', '--duration', '2', '--requests', '5'], 65, 'MESH_LOAD_BOUNDS'],
    ]
    for (const [args, exit, code] of cases) {
      const r = await mesh(home, [...args, '--json'])
      expect(r.status, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(exit)
      expect(r.json?.error?.code, args.join(' ')).toBe(code)
    }
    const port = await closedPort()
    for (const args of [['verify', 'split'], ['load', '--requests', '10']]) {
      const r = await mesh(home, [...args, '--ingress', `http://127.0.0.1:${port}`, '--json'])
      expect(r.status, args.join(' ')).toBe(69)
      expect(r.json.error).toMatchObject({code: 'MESH_INGRESS_UNREACHABLE', exitCode: 69})
      expect(r.json.error.message).toContain(`127.0.0.1:${port}`)
    }
    // text mode says it too
    const t = await mesh(home, ['verify', 'split', '--ingress', `http://127.0.0.1:${port}`])
    expect(t.stderr).toMatch(/Error \[MESH_INGRESS_UNREACHABLE\]: the ingress at http:\/\/127\.0\.0\.1:\d+ does not answer/)
  })

  it('a lab that is down: 69 MESH_LAB_DOWN for verify, each check, and load', async () => {
    const down = tempHome('mesh-verify-down-')
    try {
      for (const args of [['verify'], ['verify', 'split'], ['verify', 'mtls'], ['verify', 'authz'], ['verify', 'ejection'], ['load']]) {
        const r = await mesh(down, [...args, '--json'])
        expect(r.status, args.join(' ')).toBe(69)
        expect(r.json?.error?.code, args.join(' ')).toBe('MESH_LAB_DOWN')
      }
    } finally {
      await cleanupLab(down)
    }
  })
})

describe('verify split', () => {
  it('100/0 (the baseline) passes as an exact check', async () => {
    const r = await mesh(home, ['verify', 'split', '--json'])
    expect(r.status, r.stdout + r.stderr).toBe(0)
    const s = check(r.json, 'split')
    expect(s).toMatchObject({status: 'pass', severity: 'fatal'})
    expect(s.evidence).toMatchObject({expected: '100/0', expectedFrom: 'lab', v2: 0})
    expect(check(r.json, 'sync').status).toBe('pass')
  })

  it('passes at 90/10 and 50/50 (the lab\'s current weights), reporting split, interval and requests used', async () => {
    for (const w of ['90/10', '50/50']) {
      expect((await mesh(home, ['canary', 'shift', w])).status).toBe(0)
      const r = await mesh(home, ['verify', 'split', '--json'])
      expect(r.status, `${w}: ${r.stdout}`).toBe(0)
      const e = check(r.json, 'split').evidence
      expect(e.expected).toBe(w)
      const v2 = Number(w.split('/')[1])
      expect(e.interval[0]).toBeLessThanOrEqual(v2)
      expect(e.interval[1]).toBeGreaterThanOrEqual(v2)
      expect(e.interval[1] - e.interval[0]).toBeLessThanOrEqual(10)
      expect(e.requests).toBe(e.v1 + e.v2 + e.other)
      expect(e.requests).toBeLessThanOrEqual(5000)
    }
    const text = await mesh(home, ['verify', 'split', '-v'])
    expect(text.stdout).toMatch(/✔ traffic through the ingress is split 50\/50 \(v1\/v2, ±5 points\)/)
    expect(text.stdout).toMatch(/confidence sequence .* after \d+ responses/)
  })

  it('fails (exit 1) when the lab routes 50/50 and --expect says 90/10', async () => {
    const r = await mesh(home, ['verify', 'split', '--expect', '90/10', '--json'])
    expect(r.status, r.stdout + r.stderr).toBe(1)
    expect(r.json.ok).toBe(false)
    const s = check(r.json, 'split')
    expect(s.status).toBe('fail')
    expect(s.evidence.expectedFrom).toBe('flag')
    expect(s.evidence.interval[0]).toBeGreaterThan(10)
    const text = await mesh(home, ['verify', 'split', '--expect', '90/10'])
    expect(text.status).toBe(1)
    expect(text.stdout).toMatch(/× traffic through the ingress is split 90\/10/)
    expect(text.stdout).toContain('see docs/verify.md#split for hints')
  })

  it('is inconclusive (exit 2) with a budget too small to decide', async () => {
    const r = await mesh(home, ['verify', 'split', '--budget', '30', '--json'])
    expect(r.status, r.stdout + r.stderr).toBe(2)
    const s = check(r.json, 'split')
    expect(s.status).toBe('inconclusive')
    expect(s.evidence.requests).toBe(30)
    expect(s.message).toMatch(/budget of 30/)
  })
})

describe('mesh load', () => {
  it('summarizes the split and statuses; --json gives the summary in the envelope', async () => {
    const r = await mesh(home, ['load', '--requests', '300', '--connections', '4', '--json'])
    expect(r.status).toBe(0)
    const s = r.json.result
    expect(s.requests).toBe(300)
    expect(s.versions.v1 + s.versions.v2).toBe(300)
    expect(s.versions.v1).toBeGreaterThan(60)
    expect(s.versions.v2).toBeGreaterThan(60)
    expect(s.statuses).toEqual([{status: '200', flag: '-', count: 300}])
    const text = await mesh(home, ['load', '--duration', '1.5', '--rate', '100'])
    expect(text.status).toBe(0)
    expect(text.stdout).toMatch(/^v1 +[█░]+ +\d+\.\d%/m)
    expect(text.stdout).toMatch(/^200 +\d+$/m)
    expect(text.stdout).toMatch(/latency ms {2}p50 [\d.]+ {2}p90/)
    expect(text.stdout).not.toContain('UO')
    // not a terminal: one progress line per second on stderr
    expect(text.stderr).toMatch(/1\.\ds {2}\d+ responses/)
  })

  it('a circuit-breaking DestinationRule shows "503 UO" lines (lab 05), the lab\'s own rule none', async () => {
    await applyDr(buildCircuitBreakerDestinationRule() as unknown as KubeObject)
    try {
      await new EmbeddedTarget(home).waitForSync()
      const r = await mesh(home, ['load', '--connections', '3', '--requests', '60'])
      expect(r.status).toBe(0)
      expect(r.stdout).toMatch(/^503 UO +\d+$/m)
    } finally {
      await applyDr(buildHelloDestinationRule() as unknown as KubeObject)
    }
    await new EmbeddedTarget(home).waitForSync()
    const again = await mesh(home, ['load', '--connections', '3', '--requests', '60'])
    expect(again.stdout).not.toContain('UO')
  })
})

describe('verify mtls', () => {
  it('PERMISSIVE: every caller reaches hello; the sidecar saw the meshed caller as sa/curl over mTLS, the legacy one in plaintext', async () => {
    const r = await mesh(home, ['verify', 'mtls', '--json'])
    expect(r.status, r.stdout).toBe(0)
    for (const c of ['ingress', 'meshed', 'legacy']) expect(check(r.json, `mtls.${c}`)).toMatchObject({status: 'pass', evidence: {expected: 'reached'}})
    expect(check(r.json, 'mtls.meshed').evidence.identity).toMatch(/^spiffe:\/\/cluster\.local\/ns\/mesh-lab\/sa\/curl \(mTLS\)/)
    expect(check(r.json, 'mtls.ingress').evidence.identity).toMatch(/sa\/istio-ingressgateway-service-account \(mTLS\)/)
    expect(check(r.json, 'mtls.legacy').evidence.identity).toMatch(/^no identity \(plaintext\)/)
  })

  it('STRICT: the legacy caller is reset as expected, the others still reach hello over mTLS', async () => {
    expect((await mesh(home, ['mtls', 'strict'])).status).toBe(0)
    try {
      const r = await mesh(home, ['verify', 'mtls', '--json'])
      expect(r.status, r.stdout).toBe(0)
      expect(check(r.json, 'mtls.legacy')).toMatchObject({status: 'pass', evidence: {expected: 'reset', observed: 'reset, reset', mode: 'STRICT from mesh-lab/default'}})
      expect(check(r.json, 'mtls.meshed').evidence).toMatchObject({expected: 'reached', observed: 'reached, reached'})
      const text = await mesh(home, ['verify', 'mtls', '-v'])
      expect(text.stdout).toMatch(/✔ legacy client \(no sidecar\) → hello behaves as the PeerAuthentication says\n {4}legacy → hello reset under STRICT/)
    } finally {
      await mesh(home, ['mtls', 'permissive'])
    }
  })
})

describe('verify authz', () => {
  it('deny-all: 403 for every caller and method; allow GET: GET passes, POST 403', async () => {
    expect((await mesh(home, ['policy', 'deny-all'])).status).toBe(0)
    try {
      const r = await mesh(home, ['verify', 'authz', '--json'])
      expect(r.status, r.stdout).toBe(0)
      for (const c of ['ingress', 'meshed', 'legacy']) {
        const cells = check(r.json, `authz.${c}`).evidence.cells as Array<{request: string; expected: string; observed: string}>
        expect(cells.map((x) => [x.request, x.expected, x.observed])).toEqual([
          ['GET /hello', 'denied', 'denied 403, denied 403'],
          ['POST /hello', 'denied', 'denied 403, denied 403'],
        ])
      }
      expect((await mesh(home, ['policy', 'allow', '--to', 'hello', '--methods', 'GET'])).status).toBe(0)
      const g = await mesh(home, ['verify', 'authz', '--json'])
      expect(g.status, g.stdout).toBe(0)
      for (const c of ['ingress', 'meshed', 'legacy']) {
        const cells = check(g.json, `authz.${c}`).evidence.cells as Array<{request: string; observed: string}>
        expect(cells.find((x) => x.request === 'GET /hello')!.observed).toBe('allowed 200, allowed 200')
        expect(cells.find((x) => x.request === 'POST /hello')!.observed).toBe('denied 403, denied 403')
      }
    } finally {
      await mesh(home, ['policy', 'reset'])
    }
  })
})

describe('verify ejection', () => {
  it('ejects the faulty replica within the predicted window, from the gateway\'s counters, then restores the lab', async () => {
    await mesh(home, ['canary', 'rollback']) // 100/0: all traffic to v1, as in lab 05
    expect(await faultyReplicas()).toBe(0)
    const r = await mesh(home, ['verify', 'ejection', '--json'], {timeoutMs: 180_000})
    expect(r.status, JSON.stringify(r.json?.result?.checks ?? r.json, null, 1)).toBe(0)
    const e = check(r.json, 'ejection').evidence
    expect(e.errorsBeforeEjection).toBeGreaterThanOrEqual(3)
    expect(e.errorsBeforeEjection).toBeLessThanOrEqual(e.maxErrorsBeforeEjection)
    expect(e.requestsWhileEjected).toBe(0)
    expect(e.ejectedForSec[0]).toBeGreaterThanOrEqual(9.5)
    expect(e.ejectedForSec[1]).toBeLessThanOrEqual(11.5)
    expect(e.counters.ejectionsEnforced).toBeGreaterThanOrEqual(1)
    expect(e.answers.faulty).toBeGreaterThanOrEqual(3)
    expect(Object.keys(e.answers.instances).some((i: string) => i.startsWith('hello-v1-'))).toBe(true)
    expect(await faultyReplicas()).toBe(0)
    expect(await faultyPods()).toBe(0)
  }, 200_000)

  it('maxEjectionPercent 10 with two v1 endpoints: MESH_EJECTION_IMPOSSIBLE, fails without driving load; mesh verify only warns', async () => {
    const dr = buildHelloDestinationRule() as unknown as KubeObject
    dr.spec.trafficPolicy.outlierDetection.maxEjectionPercent = 10
    await applyDr(dr)
    try {
      const r = await mesh(home, ['verify', 'ejection', '--json'])
      expect(r.status).toBe(1)
      expect(r.json.warnings).toEqual([expect.objectContaining({code: 'MESH_EJECTION_IMPOSSIBLE'})])
      expect(check(r.json, 'ejection.possible')).toMatchObject({status: 'fail', severity: 'warning', evidence: {code: 'MESH_EJECTION_IMPOSSIBLE', maxEjectionPercent: 10, v1Endpoints: 2}})
      expect(check(r.json, 'ejection').status).toBe('fail')
      expect(check(r.json, 'ejection').evidence.load).toBeUndefined()
      expect(await faultyReplicas()).toBe(0)
      const text = await mesh(home, ['verify', 'ejection'])
      expect(text.stderr).toMatch(/‼ subset v1: ejecting 1 of 2 endpoints is 50% of the pool, above maxEjectionPercent 10, so Envoy never ejects \[MESH_EJECTION_IMPOSSIBLE\]/)
      expect(text.stdout).toMatch(/‼ outlier detection can eject an endpoint of subset v1/)
      // the full run does not scale anything: a warning, exit 0
      const all = await mesh(home, ['verify', '--json'])
      expect(all.status, all.stdout).toBe(0)
      expect(all.json.warnings.map((w: {code: string}) => w.code)).toContain('MESH_EJECTION_IMPOSSIBLE')
    } finally {
      await applyDr(buildHelloDestinationRule() as unknown as KubeObject)
    }
  })
})

describe('mesh verify: every applicable check, JUnit for CI, an HTML report', () => {
  it('runs sync, split, mTLS, authz (policies exist) and the static ejection check; JUnit parses; the report has the charts', async () => {
    await mesh(home, ['canary', 'shift', '90/10'])
    await mesh(home, ['policy', 'deny-all'])
    await mesh(home, ['policy', 'allow', '--to', 'hello', '--methods', 'GET'])
    const out = join(home, 'out')
    mkdirSync(out, {recursive: true})
    const xml = join(out, 'verify.xml')
    const html = join(out, 'report.html')
    try {
      const r = await mesh(home, ['verify', '--format', 'junit', '--output', xml, '--report', html])
      expect(r.status, r.stdout + r.stderr).toBe(0)
      expect(r.stdout).toMatch(/Status check results are ✔ {2}\(9 passed, 0 warnings, 0 failed, 0 inconclusive, 0 skipped\)/)
      expect(r.stdout).toContain('– ejection not run: changes the lab (scales hello-v1-faulty); run with --include ejection')
      const doc = new XMLParser({ignoreAttributes: false, attributeNamePrefix: ''}).parse(readFileSync(xml, 'utf8'))
      const suite = doc.testsuites.testsuite
      expect(suite).toMatchObject({tests: '9', failures: '0', errors: '0', skipped: '0'})
      const names = (suite.testcase as Array<{name: string}>).map((t) => t.name.split(':')[0])
      expect(names).toEqual(['sync', 'split', 'mtls.ingress', 'mtls.meshed', 'mtls.legacy', 'authz.ingress', 'authz.meshed', 'authz.legacy', 'ejection.possible'])

      const page = readFileSync(html, 'utf8')
      expect(page).toContain('<svg data-chart="split"')
      expect(page).toContain('<svg data-chart="latency"')
      expect(page).toContain('data-matrix="mTLS: caller → hello (GET /hello)"')
      expect(page).toContain('data-matrix="Authorization: caller × request → outcome"')
      expect(page).not.toMatch(/<script|https?:\/\/(?!127\.0\.0\.1)[a-z]/i)

      // rendered in headless Chromium: no console errors, a screenshot for people to look at
      const CHROMIUM = '/usr/bin/chromium'
      if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing; install it: apt-get install -y chromium`)
      const browser = await chromium.launch({executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu']})
      try {
        const p = await browser.newPage({viewport: {width: 820, height: 1200}})
        const errors: string[] = []
        p.on('console', (m) => m.type() === 'error' && errors.push(m.text()))
        p.on('pageerror', (e) => errors.push(e.message))
        await p.goto(pathToFileURL(html).href)
        expect(await p.locator('svg[data-chart]').count()).toBe(2)
        expect(await p.locator('table.matrix').count()).toBe(2)
        expect(await p.locator('td.bad').count()).toBe(0)
        mkdirSync(join(ROOT, 'test-results'), {recursive: true})
        await p.screenshot({path: join(ROOT, 'test-results', 'verify-report.png'), fullPage: true})
        expect(errors).toEqual([])
      } finally {
        await browser.close()
      }

      const j = await mesh(home, ['verify', '--json'])
      expect(j.status).toBe(0)
      expect(j.json).toMatchObject({ok: true, command: 'verify', result: {summary: {total: 9, pass: 9, exitCode: 0}, skipped: [{group: 'ejection'}]}})
    } finally {
      await mesh(home, ['lab', 'reset'])
    }
  }, 120_000)
})
