// Pure pieces of mesh verify / mesh load: admin parsers, flag parsing, response flags, the load
// summary text, where each output goes.
import {XMLParser} from 'fast-xml-parser'
import {describe, expect, it} from 'vitest'
import {isMeshError} from '../../../src/lib/errors.js'
import {parseClusters, parsePrometheus, subsetClusterName, sumMetric} from '../../../src/verify/admin.js'
import {CHECKS, resultOf} from '../../../src/verify/catalog.js'
import {ejectionOptions, securityOptions, splitOptions} from '../../../src/verify/flags.js'
import {planOutput} from '../../../src/verify/output.js'
import {parseGroups, type VerifyReport} from '../../../src/verify/run.js'
import {renderLoadSummary, responseFlag, validateLoadInput, type TrafficSummary} from '../../../src/verify/traffic.js'
import {summarize} from '../../../src/checks/report.js'

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn()
  } catch (e) {
    return isMeshError(e) ? `${e.code}:${e.exit}` : `not a MeshError: ${(e as Error).message}`
  }
  return undefined
}

describe('proxy admin parsing', () => {
  it('parses Prometheus text with escaped label values and sums by labels', () => {
    const text = [
      '# HELP istio_requests_total x',
      'istio_requests_total{reporter="destination",source_principal="spiffe://cluster.local/ns/mesh-lab/sa/curl",connection_security_policy="mutual_tls"} 4',
      'istio_requests_total{reporter="source",source_principal="unknown",note="a \\"quoted\\", {braced} value"} 2',
      'envoy_cluster_outlier_detection_ejections_enforced_total{cluster_name="outbound|5000|v1|hello.mesh-lab.svc.cluster.local"} 3',
      'up 1',
    ].join('\n')
    const s = parsePrometheus(text)
    expect(s).toHaveLength(4)
    expect(s[1]!.labels.note).toBe('a "quoted", {braced} value')
    expect(sumMetric(s, 'istio_requests_total')).toBe(6)
    expect(sumMetric(s, 'istio_requests_total', {reporter: 'destination'})).toBe(4)
    expect(sumMetric(s, 'envoy_cluster_outlier_detection_ejections_enforced_total', {cluster_name: subsetClusterName('hello', 'mesh-lab', 5000, 'v1')})).toBe(3)
    expect(s[3]).toEqual({name: 'up', labels: {}, value: 1})
  })

  it('reads per-host outlier state from the embedded data plane and from Envoy\'s shape', () => {
    const embedded = {
      cluster_statuses: [
        {
          name: 'outbound|5000|v1|hello.mesh-lab.svc.cluster.local',
          stats: {ejections_enforced_total: 1},
          host_statuses: [{address: '127.9.0.4:5000', pod: 'hello-v1-faulty-x.mesh-lab', ejected: true, lastEjectedAt: 10, ejectedUntil: 10010, consecutive5xx: 0, ejections: 1, rqTotal: 3, rqActive: 0}],
        },
      ],
    }
    expect(parseClusters(embedded)[0]).toMatchObject({stats: {ejections_enforced_total: 1}, hosts: [{address: '127.9.0.4:5000', pod: 'hello-v1-faulty-x.mesh-lab', ejected: true, rqTotal: 3, ejectedUntil: 10010}]})
    const envoy = {
      cluster_statuses: [
        {
          name: 'outbound|5000|v1|hello.mesh-lab.svc.cluster.local',
          host_statuses: [
            {address: {socket_address: {address: '10.0.0.7', port_value: 5000}}, stats: [{name: 'rq_total', value: '12'}, {name: 'rq_active'}], health_status: {failed_outlier_check: true, eds_health_status: 'HEALTHY'}},
          ],
        },
      ],
    }
    expect(parseClusters(envoy)[0]!.hosts[0]).toEqual({address: '10.0.0.7:5000', ejected: true, rqTotal: 12})
  })
})

describe('flags → options (bad input is 65 with the domain code, before the lab is touched)', () => {
  const split = {tolerance: '5', confidence: '0.999', budget: '5000', connections: '10', 'max-duration': '120'}
  it('accepts the defaults and an --expect', () => {
    expect(splitOptions({...split, expect: '90/10'})).toMatchObject({expect: {v1: 90, v2: 10}, tolerance: 5, confidence: 0.999, budget: 5000, connections: 10, maxDurationSec: 120})
  })
  it('refuses bad weights, numbers and ranges with their codes', () => {
    expect(codeOf(() => splitOptions({...split, expect: '90/20'}))).toBe('MESH_WEIGHTS_SUM:65')
    expect(codeOf(() => splitOptions({...split, tolerance: 'five'}))).toBe('MESH_INVALID_TOLERANCE:65')
    expect(codeOf(() => splitOptions({...split, connections: '0'}))).toBe('MESH_INVALID_CONNECTIONS:65')
    expect(codeOf(() => splitOptions({...split, budget: '1.5'}))).toBe('MESH_INVALID_BUDGET:65')
    expect(codeOf(() => splitOptions({...split, 'max-duration': '-3'}))).toBe('MESH_INVALID_MAX_DURATION:65')
    expect(codeOf(() => securityOptions({calls: '2', method: ['FETCH']}))).toBe('MESH_HTTP_METHOD:65')
    expect(codeOf(() => securityOptions({calls: '2', path: ['hello']}))).toBe('MESH_CALL_PATH:65')
    expect(codeOf(() => ejectionOptions({'ejection-connections': '4', 'ejection-rate': 'fast'}))).toBe('MESH_INVALID_EJECTION_RATE:65')
    expect(codeOf(() => parseGroups(['split', 'latency'], 'include'))).toBe('MESH_VERIFY_CHECK:65')
    expect(parseGroups(['split,Ejection'], 'include')).toEqual(['split', 'ejection'])
  })
  it('load bounds', () => {
    expect(codeOf(() => validateLoadInput({durationSec: 5, requests: 10}))).toBe('MESH_LOAD_BOUNDS:65')
    expect(codeOf(() => validateLoadInput({requests: 0}))).toBe('MESH_INVALID_REQUESTS:65')
    expect(codeOf(() => validateLoadInput({path: 'hello'}))).toBe('MESH_CALL_PATH:65')
    expect(codeOf(() => validateLoadInput({durationSec: 2, connections: 3, rate: 50}))).toBeUndefined()
  })
})

describe('mesh load summary', () => {
  it('derives Envoy response flags from the header, x-envoy-overloaded and local-reply bodies', () => {
    expect(responseFlag(503, 'upstream connect error or disconnect/reset before headers. reset reason: overflow', {'x-envoy-overloaded': 'true'})).toBe('UO')
    expect(responseFlag(503, 'no healthy upstream', {})).toBe('UH')
    expect(responseFlag(503, 'upstream connect error or disconnect/reset before headers. reset reason: connection failure', {})).toBe('UF')
    expect(responseFlag(504, 'upstream request timeout', {})).toBe('UT')
    expect(responseFlag(500, 'fault filter abort', {})).toBe('FI')
    expect(responseFlag(503, '', {'x-envoy-response-flags': 'URX,UF'})).toBe('URX,UF')
    expect(responseFlag(503, '', {})).toBe('-') // the application's own 503
    expect(responseFlag(403, 'RBAC: access denied', {})).toBe('-')
  })

  const summary = (statuses: TrafficSummary['statuses']): TrafficSummary => ({
    elapsedSec: 1,
    requests: 60,
    requestsPerSec: 60,
    versions: {v1: 43},
    errors: 17,
    errorRate: 17 / 60,
    latencyMs: {count: 60, min: 0.2, mean: 1, p50: 1, p90: 2, p99: 3, p999: 3, max: 3},
    url: 'http://127.0.0.1:1/hello',
    method: 'GET',
    connections: 3,
    rate: null,
    durationSec: 1,
    stopReason: 'complete',
    statuses,
    flags: {},
    latencyHistogram: [],
  })

  it('prints "503 UO  17" when requests overflowed, and no UO anywhere when none did', () => {
    const text = renderLoadSummary(summary([{status: '200', flag: '-', count: 43}, {status: '503', flag: 'UO', count: 17}])).join('\n')
    expect(text).toMatch(/^503 UO\s+17$/m)
    expect(text).toMatch(/^200\s+43$/m)
    expect(text).toMatch(/v1 +█+░+ +71\.7%/)
    const clean = renderLoadSummary(summary([{status: '200', flag: '-', count: 60}])).join('\n')
    expect(clean).not.toContain('UO')
  })
})

describe('checks as data and where output goes', () => {
  const report = (checks = [resultOf('sync', 'pass', 'ok', {}), resultOf('split', 'fail', 'off', {observedV2Share: 50})]): VerifyReport => ({
    target: {kind: 'embedded', context: 'mesh-local'},
    checks,
    summary: summarize(checks),
    warnings: [],
    skipped: [{group: 'ejection', reason: 'changes the lab'}],
    report: {},
  })

  it('every catalogued check has a docs/verify.md anchor, a severity and a group', () => {
    for (const c of Object.values(CHECKS)) {
      expect(c.hintUrl).toMatch(/^docs\/verify\.md#[a-z-]+$/)
      expect(['fatal', 'warning']).toContain(c.severity)
      expect(c.category).toBeTruthy()
    }
    expect(CHECKS['ejection.possible'].severity).toBe('warning')
  })

  it('text goes to stdout; --format junit --output writes parseable JUnit to the file and keeps text on stdout', () => {
    const p = planOutput(report(), {format: 'junit', output: 'out.xml', title: 'mesh verify', now: new Date(0)})
    expect(p.stdout).toMatch(/× traffic through the ingress is split as the weights say/)
    expect(p.stdout).toContain('– ejection not run: changes the lab')
    expect(p.files.map((f) => f.path)).toEqual(['out.xml'])
    const xml = new XMLParser({ignoreAttributes: false, attributeNamePrefix: ''}).parse(p.files[0]!.content)
    expect(xml.testsuites.testsuite).toMatchObject({tests: '2', failures: '1', errors: '0'})
    expect(xml.testsuites.testsuite.testcase[1].failure.message).toBe('off')
  })

  it('--format json without --output puts the JSON document on stdout; --json envelope leaves stdout to the command; --report writes HTML', () => {
    const j = planOutput(report(), {format: 'json', title: 't'})
    expect(JSON.parse(j.stdout)).toMatchObject({summary: {fail: 1, exitCode: 1}, skipped: [{group: 'ejection'}], target: {kind: 'embedded'}})
    const env = planOutput(report(), {format: 'junit', jsonEnvelope: true, report: 'r.html', title: 't'})
    expect(env.stdout).toBe('')
    expect(env.files[0]!.content).toMatch(/^<!DOCTYPE html>/)
  })
})

describe('matrices as text', () => {
  it('aligns the cells and marks the ones that differ from the expectation', async () => {
    const {renderMatrixText} = await import('../../../src/verify/output.js')
    const text = renderMatrixText({
      title: 'mTLS: caller → hello (GET /hello)',
      columns: ['GET /hello'],
      rows: [
        {caller: 'meshed', cells: [{outcome: 'reached', expected: 'reached', detail: '200 200'}]},
        {caller: 'legacy', cells: [{outcome: 'reached', expected: 'reset', detail: '200 200'}]},
      ],
    })
    expect(text.split('\n')).toEqual(['mTLS: caller → hello (GET /hello)', 'caller  GET /hello', 'meshed  ✔ reached · 200 200', 'legacy  × reached (expected reset) · 200 200', ''])
  })

  it('says briefly what decided a cell', async () => {
    const {decidedBy} = await import('../../../src/verify/security.js')
    const {expectCell, labCallers} = await import('../../../src/verify/expect.js')
    const [, meshed, legacy] = labCallers()
    const hello = {version: 'v1', namespace: 'mesh-lab', labels: {app: 'hello', version: 'v1'}, sidecar: true}
    const allowGet = {apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: {name: 'allow-get-hello', namespace: 'mesh-lab'}, spec: {rules: [{to: [{operation: {methods: ['GET']}}]}]}}
    const strict = {apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: {name: 'default', namespace: 'mesh-lab'}, spec: {mtls: {mode: 'STRICT'}}}
    const i = {peerAuthentications: [strict], authorizationPolicies: [allowGet]}
    expect(decidedBy(expectCell(i, meshed!, [hello], 'GET', '/hello').perWorkload[0]!)).toBe('allowed by allow-get-hello rule 0')
    expect(decidedBy(expectCell(i, meshed!, [hello], 'POST', '/hello').perWorkload[0]!)).toBe('no ALLOW rule matches')
    expect(decidedBy(expectCell(i, legacy!, [hello], 'GET', '/hello').perWorkload[0]!)).toBe('STRICT refuses plaintext')
    expect(decidedBy(expectCell({peerAuthentications: [], authorizationPolicies: []}, meshed!, [hello], 'GET', '/hello').perWorkload[0]!)).toBe('no ALLOW policy applies')
  })
})
