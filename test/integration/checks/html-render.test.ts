// The HTML report from a real (loopback) split check, rendered in headless Chromium:
// screenshot taken, charts present, no console errors, nothing fetched from elsewhere.
import {existsSync} from 'node:fs'
import {mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import {tmpdir} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'
import {chromium, type BrowserContext} from 'playwright-core'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {renderHtml, type HtmlReport} from '../../../src/checks/report.js'
import {runSplitCheck, splitCheckResult, splitReportSections} from '../../../src/checks/split.js'

const CHROMIUM = '/usr/bin/chromium'
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
const OUT = join(ROOT, 'test-results')

let i = 0
const server = http.createServer((_req, res) => {
  res.end(i++ % 10 === 0 ? 'Hello version: v2\n' : 'Hello version: v1\n')
})
let work = ''
let context: BrowserContext | undefined

beforeAll(async () => {
  // fail, not skip: the report test is part of "done"
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing; install it first: apt-get update && apt-get install -y chromium`)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  work = await mkdtemp(join(tmpdir(), 'mesh-html-'))
  await mkdir(OUT, {recursive: true})
  context = await chromium.launchPersistentContext(join(work, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
})

afterAll(async () => {
  await context?.close()
  server.closeAllConnections()
  await new Promise<void>((r) => server.close(() => r()))
  if (work) await rm(work, {recursive: true, force: true})
})

describe('HTML report in headless Chromium', () => {
  it('renders the split chart, latency histogram and matrix without console errors', async () => {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hello`
    const outcome = await runSplitCheck({url, expectedV2Share: 10, maxRequests: 20_000, connections: 4})
    expect(outcome.decision.verdict).toBe('pass')
    const report: HtmlReport = {
      title: 'mesh verify — report test',
      checks: [
        splitCheckResult(outcome),
        {
          id: 'mtls.strict',
          description: 'legacy callers are refused under STRICT',
          hintUrl: 'docs/statistics.md',
          severity: 'fatal',
          status: 'fail',
          message: 'legacy client got 200',
          evidence: {caller: 'legacy'},
        },
      ],
      ...splitReportSections(outcome),
      matrices: [
        {
          title: 'mTLS STRICT',
          columns: ['hello'],
          rows: [
            {caller: 'ingress', cells: [{outcome: '200', expected: '200', detail: 'spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway'}]},
            {caller: 'meshed client', cells: [{outcome: '200', expected: '200'}]},
            {caller: 'legacy client', cells: [{outcome: '200', expected: 'reset'}]},
          ],
        },
      ],
    }
    const file = join(work, 'report.html')
    await writeFile(file, renderHtml(report))

    const page = await context!.newPage()
    const problems: string[] = []
    const foreign: string[] = []
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`)
    })
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`))
    page.on('request', (r) => {
      if (!r.url().startsWith('file:') && !r.url().startsWith('data:')) foreign.push(r.url())
    })
    await page.goto(pathToFileURL(file).href, {waitUntil: 'load'})

    const charts = page.locator('svg[data-chart]')
    expect(await charts.count()).toBe(2)
    for (const name of ['split', 'latency']) {
      const box = await page.locator(`svg[data-chart="${name}"]`).boundingBox()
      expect(box?.width).toBeGreaterThan(100)
      expect(box?.height).toBeGreaterThan(100)
    }
    expect(await page.locator('svg[data-chart="split"] polyline.share').count()).toBe(1)
    expect(await page.locator('svg[data-chart="latency"] rect.bar').count()).toBe(outcome.load.latencyHistogram.length)
    expect(await page.locator('table.matrix tr').count()).toBe(4)
    expect(await page.locator('table.matrix td.bad').innerText()).toContain('expected reset')
    expect(await page.locator('li.s-fail').innerText()).toContain('legacy callers are refused')

    const png = join(OUT, 'checks-html-report.png')
    await page.screenshot({path: png, fullPage: true})
    const bytes = await readFile(png)
    expect(bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true)
    expect(bytes.length).toBeGreaterThan(5000)

    expect(problems).toEqual([])
    expect(foreign).toEqual([])
    await page.close()
  })
})
