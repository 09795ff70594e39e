import {XMLParser} from 'fast-xml-parser'
import {describe, expect, it} from 'vitest'
import {
  overallExit,
  renderHtml,
  renderJson,
  renderJunit,
  renderText,
  summarize,
  type CheckResult,
  type HtmlReport,
} from '../../../src/checks/report.js'

const check = (o: Partial<CheckResult> & Pick<CheckResult, 'id' | 'status'>): CheckResult => ({
  description: `${o.id} works`,
  hintUrl: `https://example.test/hints#${o.id}`,
  severity: 'fatal',
  evidence: {},
  message: `${o.id}: ${o.status}`,
  ...o,
})

const results: CheckResult[] = [
  check({
    id: 'split',
    status: 'pass',
    description: 'traffic split matches v1/v2 90/10',
    evidence: {observedV2Share: 10.2, interval: [7.9, 12.8], requests: 850},
    category: 'traffic',
  }),
  check({id: 'ejection', status: 'fail', message: 'faulty endpoint still received 37 requests', evidence: {requests: 37, window: '30s'}, category: 'traffic'}),
  check({id: 'ejection.possible', status: 'fail', severity: 'warning', message: 'maxEjectionPercent 10 is below one endpoint (33%)', category: 'traffic'}),
  check({id: 'mtls.strict', status: 'inconclusive', message: 'legacy client did not start', category: 'security'}),
  check({id: 'authz', status: 'skip', message: 'no AuthorizationPolicy in the namespace', category: 'security'}),
]

describe('overallExit', () => {
  it('is 0 when all pass, warnings allowed', () => {
    expect(overallExit([results[0]])).toBe(0)
    expect(overallExit([results[0], results[2], results[4]])).toBe(0)
  })
  it('is 1 when a fatal check fails, even with inconclusive ones', () => {
    expect(overallExit(results)).toBe(1)
  })
  it('is 2 when a fatal check is inconclusive and none failed', () => {
    expect(overallExit([results[0], results[2], results[3]])).toBe(2)
  })
  it('counts a failed warning-severity check as a warning', () => {
    expect(summarize(results)).toEqual({total: 5, pass: 1, fail: 1, warn: 1, inconclusive: 1, skip: 1, exitCode: 1})
  })
})

describe('renderText', () => {
  it('renders linkerd-style lines: what a passing check measured, hints on problems only', () => {
    expect(renderText(results, {color: false})).toBe(
      [
        'traffic',
        '-------',
        '✔ traffic split matches v1/v2 90/10',
        '    split: pass',
        '× ejection works',
        '    faulty endpoint still received 37 requests',
        '    requests=37 window=30s',
        '    see https://example.test/hints#ejection for hints',
        '‼ ejection.possible works',
        '    maxEjectionPercent 10 is below one endpoint (33%)',
        '    see https://example.test/hints#ejection.possible for hints',
        '',
        'security',
        '--------',
        '? mtls.strict works',
        '    legacy client did not start',
        '    see https://example.test/hints#mtls.strict for hints',
        '– authz works (skipped)',
        '    no AuthorizationPolicy in the namespace',
        '',
        'Status check results are ×  (1 passed, 1 warnings, 1 failed, 1 inconclusive, 1 skipped)',
        '',
      ].join('\n'),
    )
  })

  it('shows evidence of passing checks with verbose, and colours only on request', () => {
    const plain = renderText(results, {color: false, verbose: true})
    expect(plain).toContain('observedV2Share=10.2 interval=[7.9, 12.8] requests=850')
    expect(plain).not.toMatch(/\u001b\[/)
    expect(renderText(results, {color: true})).toMatch(/\u001b\[3\dm×/)
  })
})

describe('renderJson', () => {
  it('carries the summary and every check', () => {
    const parsed = JSON.parse(renderJson(results))
    expect(parsed.summary.exitCode).toBe(1)
    expect(parsed.checks.map((c: CheckResult) => c.id)).toEqual(['split', 'ejection', 'ejection.possible', 'mtls.strict', 'authz'])
  })
})

describe('renderJunit', () => {
  const parser = new XMLParser({ignoreAttributes: false, attributeNamePrefix: '', isArray: (name) => name === 'testcase'})

  it('parses back with the right counts, names and failure bodies', () => {
    const xml = renderJunit(results, 'mesh verify', new Date('2026-11-22T10:00:00Z'))
    expect(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>')).toBe(true)
    const doc = parser.parse(xml)
    const suite = doc.testsuites.testsuite
    expect(suite.name).toBe('mesh verify')
    expect(Number(suite.tests)).toBe(5)
    expect(Number(suite.failures)).toBe(1)
    expect(Number(suite.errors)).toBe(1)
    expect(Number(suite.skipped)).toBe(1)
    expect(suite.timestamp).toBe('2026-11-22T10:00:00.000Z')
    const cases = suite.testcase as Array<Record<string, any>>
    expect(cases.map((c) => c.name)).toEqual([
      'split: traffic split matches v1/v2 90/10',
      'ejection: ejection works',
      'ejection.possible: ejection.possible works',
      'mtls.strict: mtls.strict works',
      'authz: authz works',
    ])
    expect(cases[0].failure).toBeUndefined()
    expect(cases[1].failure.message).toBe('faulty endpoint still received 37 requests')
    expect(cases[1].failure['#text']).toContain('"requests": 37')
    expect(cases[1].failure['#text']).toContain('hint: https://example.test/hints#ejection')
    expect(cases[2].failure).toBeUndefined()
    expect(cases[2]['system-out']).toContain('maxEjectionPercent 10')
    expect(cases[3].error.type).toBe('inconclusive')
    expect(cases[4].skipped.message).toBe('no AuthorizationPolicy in the namespace')
    expect(cases[1].classname).toBe('mesh verify.traffic')
  })

  it('escapes markup and drops characters XML cannot carry', () => {
    const nasty = check({id: 'x', status: 'fail', description: 'a <b> & "c"', message: 'bad \u0007bell & <tag>', evidence: {body: ']]> & <'}})
    const doc = parser.parse(renderJunit([nasty]))
    const tc = doc.testsuites.testsuite.testcase[0]
    expect(tc.name).toBe('x: a <b> & "c"')
    expect(tc.failure.message).toBe('bad bell & <tag>')
    expect(tc.failure['#text']).toContain(']]> & <')
  })
})

describe('renderHtml', () => {
  const report: HtmlReport = {
    title: 'mesh verify <lab>',
    generatedAt: '2026-11-22T10:00:00Z',
    checks: results,
    split: {
      expectedV2Share: 10,
      tolerance: 5,
      confidence: 0.999,
      points: [
        {requests: 50, observedShare: 12, interval: [1.5, 38]},
        {requests: 100, observedShare: 9, interval: [3.1, 24]},
        {requests: 500, observedShare: 10.4, interval: [6.2, 16]},
        {requests: 850, observedShare: 10.2, interval: [7.9, 12.8]},
      ],
    },
    latency: {
      buckets: [
        {loMs: 0.1, hiMs: 0.119, count: 30},
        {loMs: 0.119, hiMs: 0.141, count: 300},
        {loMs: 0.141, hiMs: 0.168, count: 120},
        {loMs: 0.168, hiMs: 0.2, count: 8},
      ],
      percentiles: {p50: 0.13, p99: 0.18},
    },
    matrices: [
      {
        title: 'mTLS STRICT',
        columns: ['hello.default'],
        rows: [
          {caller: 'ingress', cells: [{outcome: '200', expected: '200', detail: 'spiffe://cluster.local/ns/istio-system/sa/ingress'}]},
          {caller: 'legacy (no sidecar)', cells: [{outcome: '200', expected: 'reset'}]},
        ],
      },
    ],
  }

  it('is one self-contained page with both charts and the matrix', () => {
    const html = renderHtml(report)
    expect(html).toMatch(/^<!DOCTYPE html>/)
    expect(html).toContain('<svg data-chart="split"')
    expect(html).toContain('<svg data-chart="latency"')
    expect(html).toContain('<polygon class="cs"')
    expect(html).toContain('<polyline class="share"')
    expect((html.match(/<rect class="bar"/g) ?? []).length).toBe(4)
    expect(html).toContain('<table class="matrix" data-matrix="mTLS STRICT">')
    expect(html).toContain('<th scope="row">legacy (no sidecar)</th><td class="bad">200 <span class="exp">(expected reset)</span>')
    expect(html).toContain('spiffe://cluster.local/ns/istio-system/sa/ingress')
    // nothing loaded from elsewhere
    expect(html).not.toMatch(/<script/i)
    expect(html).not.toMatch(/\ssrc=/i)
    expect(html).not.toMatch(/rel="stylesheet"/)
    expect(html).not.toMatch(/@import|url\(/)
    // user text is escaped
    expect(html).toContain('<title>mesh verify &lt;lab&gt;</title>')
  })

  it('leaves out sections it has no data for', () => {
    const html = renderHtml({title: 'only checks', checks: [results[0]]})
    expect(html).not.toContain('<svg')
    expect(html).not.toContain('<table')
    expect(html).toContain('data-check="split"')
  })
})
