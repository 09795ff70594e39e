// PeerAuthentication precedence (PA-1, PA-2) and the client's upstream TLS choice (DR-10).
import {describe, expect, it} from 'vitest'
import type {Endpoint, KubeObject} from '../../../src/local/dataplane/snapshot.js'
import {
  effectiveMtlsMode,
  explainMtlsMode,
  upstreamTlsMode,
} from '../../../src/local/dataplane/security/peer-authentication.js'

const ROOT = 'istio-system'
let seq = 0
function pa(
  name: string,
  ns: string,
  spec: Record<string, unknown>,
  createdMinute?: number,
): KubeObject {
  seq++
  return {
    apiVersion: 'security.istio.io/v1',
    kind: 'PeerAuthentication',
    metadata: {name, namespace: ns, creationTimestamp: new Date(Date.UTC(2026, 0, 1, 0, createdMinute ?? seq)).toISOString()},
    spec,
  }
}
const mode = (m: string) => ({mtls: {mode: m}})
const sel = (labels: Record<string, string>, extra: Record<string, unknown> = {}) => ({selector: {matchLabels: labels}, ...extra})
const snap = (...pas: KubeObject[]) => ({peerAuthentications: pas, rootNamespace: ROOT})

const foo = {namespace: 'foo', labels: {app: 'httpbin'}}

interface PaCase {
  rule: string
  name: string
  policies: KubeObject[]
  port?: number
  expect: string
  scope?: string
  policy?: string
}

const cases: PaCase[] = [
  {rule: 'PA-1', name: 'no policy → PERMISSIVE default', policies: [], expect: 'PERMISSIVE', scope: 'default'},
  {rule: 'PA-1', name: 'mesh UNSET → PERMISSIVE', policies: [pa('default', ROOT, mode('UNSET'))], expect: 'PERMISSIVE', scope: 'default'},
  {rule: 'PA-1', name: 'mesh without mtls block → PERMISSIVE', policies: [pa('default', ROOT, {})], expect: 'PERMISSIVE'},
  {rule: 'PA-2', name: 'mesh STRICT applies to every namespace', policies: [pa('default', ROOT, mode('STRICT'))], expect: 'STRICT', scope: 'mesh', policy: `${ROOT}/default`},
  {rule: 'PA-2', name: 'namespace beats mesh', policies: [pa('default', ROOT, mode('STRICT')), pa('ns', 'foo', mode('PERMISSIVE'))], expect: 'PERMISSIVE', scope: 'namespace', policy: 'foo/ns'},
  {rule: 'PA-2', name: 'namespace UNSET inherits mesh', policies: [pa('default', ROOT, mode('STRICT')), pa('ns', 'foo', mode('UNSET'))], expect: 'STRICT', scope: 'mesh'},
  {rule: 'PA-2', name: 'another namespace\'s policy does not apply', policies: [pa('ns', 'bar', mode('STRICT'))], expect: 'PERMISSIVE'},
  {rule: 'PA-2', name: 'workload selector beats namespace', policies: [pa('ns', 'foo', mode('STRICT')), pa('wl', 'foo', sel({app: 'httpbin'}, mode('DISABLE')))], expect: 'DISABLE', scope: 'workload', policy: 'foo/wl'},
  {rule: 'PA-2', name: 'workload selector not matching is ignored', policies: [pa('ns', 'foo', mode('STRICT')), pa('wl', 'foo', sel({app: 'other'}, mode('DISABLE')))], expect: 'STRICT'},
  {rule: 'PA-2', name: 'workload UNSET inherits namespace', policies: [pa('ns', 'foo', mode('STRICT')), pa('wl', 'foo', sel({app: 'httpbin'}, mode('UNSET')))], expect: 'STRICT', scope: 'namespace'},
  {rule: 'PA-2', name: 'workload without mtls inherits mesh', policies: [pa('m', ROOT, mode('STRICT')), pa('wl', 'foo', sel({app: 'httpbin'}))], expect: 'STRICT', scope: 'mesh'},
  {rule: 'PA-2', name: 'selector policy in the root namespace is ignored', policies: [pa('wl-root', ROOT, sel({app: 'httpbin'}, mode('STRICT')))], expect: 'PERMISSIVE', scope: 'default'},
  {rule: 'PA-2', name: 'empty matchLabels counts as namespace-level', policies: [pa('ns', 'foo', {selector: {matchLabels: {}}, ...mode('STRICT')})], expect: 'STRICT', scope: 'namespace'},
  {rule: 'PA-2', name: 'two namespace policies: the oldest wins', policies: [pa('newer', 'foo', mode('DISABLE'), 30), pa('older', 'foo', mode('STRICT'), 10)], expect: 'STRICT', policy: 'foo/older'},
  {rule: 'PA-2', name: 'two mesh policies: the oldest wins', policies: [pa('b', ROOT, mode('STRICT'), 5), pa('a', ROOT, mode('DISABLE'), 50)], expect: 'STRICT', policy: `${ROOT}/b`},
  {rule: 'PA-2', name: 'two workload policies: the oldest wins', policies: [pa('w2', 'foo', sel({app: 'httpbin'}, mode('PERMISSIVE')), 20), pa('w1', 'foo', sel({app: 'httpbin'}, mode('STRICT')), 2)], expect: 'STRICT', policy: 'foo/w1'},
  {rule: 'PA-2', name: 'oldest workload policy wins even when UNSET (it then inherits)', policies: [pa('ns', 'foo', mode('PERMISSIVE')), pa('w-old', 'foo', sel({app: 'httpbin'}, mode('UNSET')), 1), pa('w-new', 'foo', sel({app: 'httpbin'}, mode('STRICT')), 40)], expect: 'PERMISSIVE', scope: 'namespace'},
  {rule: 'PA-2', name: 'portLevelMtls DISABLE on the port', port: 8080, policies: [pa('ns', 'foo', mode('STRICT')), pa('wl', 'foo', sel({app: 'httpbin'}, {...mode('STRICT'), portLevelMtls: {'8080': {mode: 'DISABLE'}}}))], expect: 'DISABLE', scope: 'workload-port'},
  {rule: 'PA-2', name: 'portLevelMtls does not affect other ports', port: 80, policies: [pa('wl', 'foo', sel({app: 'httpbin'}, {...mode('STRICT'), portLevelMtls: {'8080': {mode: 'DISABLE'}}}))], expect: 'STRICT', scope: 'workload'},
  {rule: 'PA-2', name: 'portLevelMtls with numeric keys (JSON)', port: 8080, policies: [pa('wl', 'foo', sel({app: 'httpbin'}, {portLevelMtls: {8080: {mode: 'STRICT'}}}))], expect: 'STRICT'},
  {rule: 'PA-2', name: 'portLevelMtls UNSET inherits the workload level', port: 8080, policies: [pa('wl', 'foo', sel({app: 'httpbin'}, {...mode('DISABLE'), portLevelMtls: {'8080': {mode: 'UNSET'}}}))], expect: 'DISABLE', scope: 'workload'},
  {rule: 'PA-2', name: 'portLevelMtls with workload mtls unset inherits namespace for other ports', port: 80, policies: [pa('ns', 'foo', mode('STRICT')), pa('wl', 'foo', sel({app: 'httpbin'}, {portLevelMtls: {'8080': {mode: 'DISABLE'}}}))], expect: 'STRICT', scope: 'namespace'},
  {rule: 'PA-2', name: 'portLevelMtls on a namespace-level policy is ignored', port: 8080, policies: [pa('ns', 'foo', {...mode('STRICT'), portLevelMtls: {'8080': {mode: 'DISABLE'}}})], expect: 'STRICT'},
  {rule: 'PA-2', name: 'portLevelMtls on a root-namespace selector policy is ignored', port: 8080, policies: [pa('m', ROOT, mode('STRICT')), pa('w', ROOT, sel({app: 'httpbin'}, {portLevelMtls: {'8080': {mode: 'DISABLE'}}}))], expect: 'STRICT', scope: 'mesh'},
]

describe('PeerAuthentication precedence (table)', () => {
  it.each(cases.map((c) => [`${c.rule} ${c.name} → ${c.expect}`, c] as const))('%s', (_t, c) => {
    const e = explainMtlsMode(snap(...c.policies), foo, c.port)
    expect(e.mode).toBe(c.expect)
    expect(effectiveMtlsMode(snap(...c.policies), foo, c.port)).toBe(c.expect)
    if (c.scope) expect(e.scope).toBe(c.scope)
    if (c.policy) expect(e.policy).toBe(c.policy)
  })

  it('SC-8 migration: namespace STRICT in foo only leaves bar PERMISSIVE', () => {
    const s = snap(pa('default', 'foo', mode('STRICT')))
    expect(effectiveMtlsMode(s, {namespace: 'foo', labels: {}}, 80)).toBe('STRICT')
    expect(effectiveMtlsMode(s, {namespace: 'bar', labels: {}}, 80)).toBe('PERMISSIVE')
  })
})

describe('upstream TLS choice (DR-10 auto mTLS)', () => {
  const ep = (over: Partial<Endpoint> = {}): Endpoint => ({
    address: '127.42.0.7', podName: 'httpbin-1', namespace: 'foo', labels: {app: 'httpbin'}, serviceAccount: 'httpbin', sidecar: true, ready: true, ports: [8000], ...over,
  })
  const cases: {name: string; policies: KubeObject[]; endpoint?: Partial<Endpoint>; tls?: Record<string, unknown>; port?: number; expect: string}[] = [
    {name: 'sidecar endpoint, no DR → ISTIO_MUTUAL', policies: [], expect: 'ISTIO_MUTUAL'},
    {name: 'endpoint without sidecar → plaintext', policies: [], endpoint: {sidecar: false}, expect: 'DISABLE'},
    {name: 'endpoint without sidecar, mesh STRICT → still plaintext (the server cannot do mTLS)', policies: [pa('m', ROOT, mode('STRICT'))], endpoint: {sidecar: false}, expect: 'DISABLE'},
    {name: 'server namespace DISABLE → plaintext', policies: [pa('ns', 'foo', mode('DISABLE'))], expect: 'DISABLE'},
    {name: 'server port-level DISABLE on the target port → plaintext', policies: [pa('w', 'foo', sel({app: 'httpbin'}, {...mode('STRICT'), portLevelMtls: {'8000': {mode: 'DISABLE'}}}))], port: 8000, expect: 'DISABLE'},
    {name: 'server port-level DISABLE on another port → mTLS', policies: [pa('w', 'foo', sel({app: 'httpbin'}, {...mode('STRICT'), portLevelMtls: {'9000': {mode: 'DISABLE'}}}))], port: 8000, expect: 'ISTIO_MUTUAL'},
    {name: 'explicit DR DISABLE wins over auto mTLS (toward STRICT it will fail)', policies: [pa('ns', 'foo', mode('STRICT'))], tls: {mode: 'DISABLE'}, expect: 'DISABLE'},
    {name: 'explicit DR ISTIO_MUTUAL toward a non-sidecar endpoint', policies: [], endpoint: {sidecar: false}, tls: {mode: 'ISTIO_MUTUAL'}, expect: 'ISTIO_MUTUAL'},
    {name: 'explicit DR SIMPLE', policies: [], tls: {mode: 'SIMPLE'}, expect: 'SIMPLE'},
    {name: 'DR tls block without mode falls back to auto', policies: [], tls: {sni: 'x'}, expect: 'ISTIO_MUTUAL'},
  ]
  it.each(cases.map((c) => [`DR-10 ${c.name}`, c] as const))('%s', (_t, c) => {
    expect(upstreamTlsMode(snap(...c.policies), 'sleep-ns', ep(c.endpoint), c.tls, c.port)).toBe(c.expect)
  })
})
