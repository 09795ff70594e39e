// Expectations of the mTLS and authorization matrices, from PeerAuthentications,
// AuthorizationPolicies and the DestinationRule's tls, for the lab's three callers.
import {describe, expect, it} from 'vitest'
import type {KubeObject} from '../../../src/cluster/client.js'
import {
  expectCell,
  INGRESS_SPIFFE_ID,
  labCallers,
  MESHED_SPIFFE_ID,
  outcomeOf,
  serverWorkloads,
  type SecurityInputs,
  type ServerWorkload,
} from '../../../src/verify/expect.js'
import {identityMismatch, peerFromCall} from '../../../src/verify/security.js'
import type {CallResult} from '../../../src/lab/callers.js'

const pa = (namespace: string, name: string, mode: string, extra: Record<string, unknown> = {}): KubeObject => ({
  apiVersion: 'security.istio.io/v1',
  kind: 'PeerAuthentication',
  metadata: {name, namespace, creationTimestamp: '2026-01-01T00:00:00Z'},
  spec: {mtls: {mode}, ...extra},
})
const ap = (name: string, spec: Record<string, unknown>, namespace = 'mesh-lab'): KubeObject => ({
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: {name, namespace},
  spec,
})
const hello = (version: string): ServerWorkload => ({version, namespace: 'mesh-lab', labels: {app: 'hello', version}, sidecar: true})
const [ingress, meshed, legacy] = labCallers({legacy: '127.9.0.5'})
const both = [hello('v1'), hello('v2')]
const inputs = (o: Partial<SecurityInputs> = {}): SecurityInputs => ({peerAuthentications: [], authorizationPolicies: [], ...o})
const row = (i: SecurityInputs, method = 'GET', path = '/hello') =>
  Object.fromEntries([ingress!, meshed!, legacy!].map((c) => [c.kind, expectCell(i, c, both, method, path).outcomes.join('|')]))

describe('mTLS matrix', () => {
  it('PERMISSIVE (default, no policy): everyone reaches hello; proxied callers over mTLS with their identity, legacy in plaintext', () => {
    expect(row(inputs())).toEqual({ingress: 'allowed', meshed: 'allowed', legacy: 'allowed'})
    expect(expectCell(inputs(), ingress!, both, 'GET', '/hello').identity).toBe(INGRESS_SPIFFE_ID)
    expect(expectCell(inputs(), meshed!, both, 'GET', '/hello').identity).toBe(MESHED_SPIFFE_ID)
    expect(MESHED_SPIFFE_ID).toBe('spiffe://cluster.local/ns/mesh-lab/sa/curl')
    expect(expectCell(inputs(), legacy!, both, 'GET', '/hello').identity).toBeNull()
  })

  it('namespace STRICT and mesh STRICT: only the legacy caller is reset', () => {
    expect(row(inputs({peerAuthentications: [pa('mesh-lab', 'default', 'STRICT')]}))).toEqual({ingress: 'allowed', meshed: 'allowed', legacy: 'reset'})
    expect(row(inputs({peerAuthentications: [pa('istio-system', 'default', 'STRICT')]}))).toEqual({ingress: 'allowed', meshed: 'allowed', legacy: 'reset'})
    // STRICT in another namespace does not matter
    expect(row(inputs({peerAuthentications: [pa('other', 'default', 'STRICT')]})).legacy).toBe('allowed')
  })

  it('namespace PERMISSIVE overrides mesh STRICT; a workload port DISABLE overrides namespace STRICT', () => {
    expect(row(inputs({peerAuthentications: [pa('istio-system', 'default', 'STRICT'), pa('mesh-lab', 'default', 'PERMISSIVE')]})).legacy).toBe('allowed')
    const wl = pa('mesh-lab', 'hello-port', 'STRICT', {selector: {matchLabels: {app: 'hello'}}, portLevelMtls: {5000: {mode: 'DISABLE'}}})
    const i = inputs({peerAuthentications: [pa('mesh-lab', 'default', 'STRICT'), wl]})
    expect(row(i)).toEqual({ingress: 'allowed', meshed: 'allowed', legacy: 'allowed'})
    // DISABLE on the server: auto mTLS sends plaintext, so no identity
    expect(expectCell(i, meshed!, both, 'GET', '/hello').identity).toBeNull()
  })

  it('a workload STRICT policy on v2 only makes the legacy caller see both outcomes', () => {
    const i = inputs({peerAuthentications: [pa('mesh-lab', 'v2-strict', 'STRICT', {selector: {matchLabels: {version: 'v2'}}})]})
    expect(expectCell(i, legacy!, both, 'GET', '/hello').outcomes.sort()).toEqual(['allowed', 'reset'])
    expect(expectCell(i, legacy!, [hello('v1')], 'GET', '/hello').outcomes).toEqual(['allowed'])
  })

  it('a DestinationRule tls DISABLE toward a STRICT server: the calling proxy answers 503', () => {
    const i = inputs({peerAuthentications: [pa('mesh-lab', 'default', 'STRICT')], destinationRuleTlsMode: 'DISABLE'})
    expect(row(i)).toEqual({ingress: 'unavailable', meshed: 'unavailable', legacy: 'reset'})
  })
})

describe('authorization matrix', () => {
  const denyAll = ap('deny-all', {})
  const allowGet = ap('allow-get-hello', {selector: {matchLabels: {app: 'hello'}}, rules: [{to: [{operation: {methods: ['GET']}}]}]})

  it('deny-all: every caller gets 403 for GET and POST', () => {
    const i = inputs({authorizationPolicies: [denyAll]})
    expect(row(i, 'GET')).toEqual({ingress: 'denied', meshed: 'denied', legacy: 'denied'})
    expect(row(i, 'POST')).toEqual({ingress: 'denied', meshed: 'denied', legacy: 'denied'})
  })

  it('deny-all + allow GET: GET allowed, POST denied, for every caller', () => {
    const i = inputs({authorizationPolicies: [denyAll, allowGet]})
    expect(row(i, 'GET')).toEqual({ingress: 'allowed', meshed: 'allowed', legacy: 'allowed'})
    expect(row(i, 'POST')).toEqual({ingress: 'denied', meshed: 'denied', legacy: 'denied'})
  })

  it('under STRICT the reset comes before any policy', () => {
    const i = inputs({authorizationPolicies: [allowGet], peerAuthentications: [pa('mesh-lab', 'default', 'STRICT')]})
    expect(row(i, 'POST')).toEqual({ingress: 'denied', meshed: 'denied', legacy: 'reset'})
  })

  it('principal and namespace rules need mTLS: only the meshed caller matches; plaintext never does', () => {
    const byPrincipal = ap('curl-only', {rules: [{from: [{source: {principals: ['cluster.local/ns/mesh-lab/sa/curl']}}]}]})
    expect(row(inputs({authorizationPolicies: [byPrincipal]}))).toEqual({ingress: 'denied', meshed: 'allowed', legacy: 'denied'})
    const byNs = ap('lab-only', {rules: [{from: [{source: {namespaces: ['mesh-lab']}}]}]})
    expect(row(inputs({authorizationPolicies: [byNs]}))).toEqual({ingress: 'denied', meshed: 'allowed', legacy: 'denied'})
    const notAuthenticated = ap('deny-plaintext', {action: 'DENY', rules: [{from: [{source: {notPrincipals: ['*']}}]}]})
    expect(row(inputs({authorizationPolicies: [notAuthenticated]}))).toEqual({ingress: 'allowed', meshed: 'allowed', legacy: 'denied'})
  })

  it('a DENY on a path and a root-namespace policy apply; a policy for another app does not', () => {
    const denyHealth = ap('no-health', {action: 'DENY', rules: [{to: [{operation: {paths: ['/health']}}]}]})
    expect(row(inputs({authorizationPolicies: [denyHealth]}), 'GET', '/health').meshed).toBe('denied')
    expect(row(inputs({authorizationPolicies: [denyHealth]}), 'GET', '/hello').meshed).toBe('allowed')
    expect(row(inputs({authorizationPolicies: [ap('mesh-deny', {}, 'istio-system')]})).meshed).toBe('denied')
    expect(row(inputs({authorizationPolicies: [ap('other-app', {selector: {matchLabels: {app: 'other'}}})]})).meshed).toBe('allowed')
  })

  it('a policy selecting v2 only splits the expectation by version', () => {
    const i = inputs({authorizationPolicies: [ap('v2-none', {selector: {matchLabels: {version: 'v2'}}})]})
    expect(expectCell(i, meshed!, both, 'GET', '/hello').outcomes.sort()).toEqual(['allowed', 'denied'])
    expect(expectCell(i, meshed!, [hello('v1')], 'GET', '/hello').outcomes).toEqual(['allowed'])
  })
})

describe('observations', () => {
  const call = (o: Partial<CallResult>): CallResult => ({from: 'meshed', url: '', method: 'GET', status: 200, body: '', reset: false, outcome: 'response', headers: {}, via: '', durationMs: 1, ...o})

  it('classifies calls: RBAC 403 denied, any app answer allowed (405 included), reset, proxy 503 unavailable', () => {
    expect(outcomeOf(call({status: 403, body: 'RBAC: access denied'}))).toBe('denied')
    expect(outcomeOf(call({status: 403, body: 'forbidden by the app'}))).toBe('allowed')
    expect(outcomeOf(call({status: 405, body: '<h1>Method Not Allowed</h1>'}))).toBe('allowed')
    expect(outcomeOf(call({status: 0, outcome: 'reset', reset: true}))).toBe('reset')
    expect(outcomeOf(call({status: 503, body: 'upstream connect error or disconnect/reset before headers. reset reason: connection termination'}))).toBe('unavailable')
  })

  it('reads the peer from callAs evidence and compares identities', () => {
    expect(peerFromCall(call({peer: {xfcc: 'x', identity: MESHED_SPIFFE_ID}} as Partial<CallResult>))).toBe(MESHED_SPIFFE_ID)
    expect(peerFromCall(call({body: 'x-forwarded-client-cert: By=spiffe://a;Hash=1;URI=spiffe://cluster.local/ns/x/sa/y\n'}))).toBe('spiffe://cluster.local/ns/x/sa/y')
    expect(identityMismatch(MESHED_SPIFFE_ID, [{principal: MESHED_SPIFFE_ID, security: 'mutual_tls', requests: 2}])).toBeUndefined()
    expect(identityMismatch(MESHED_SPIFFE_ID, [{principal: null, security: 'none', requests: 2}])).toMatch(/expected mTLS as spiffe:\/\/cluster.local\/ns\/mesh-lab\/sa\/curl, the server saw no identity \(plaintext\)/)
    expect(identityMismatch(null, [{principal: MESHED_SPIFFE_ID, security: 'mutual_tls', requests: 1}])).toMatch(/expected plaintext/)
    expect(identityMismatch(null, [])).toBeUndefined()
  })

  it('builds one server workload per version from the pods, skipping the faulty replica', () => {
    const pod = (name: string, labels: Record<string, string>): KubeObject => ({apiVersion: 'v1', kind: 'Pod', metadata: {name, namespace: 'mesh-lab', labels}})
    const ws = serverWorkloads(
      [pod('hello-v2-b', {app: 'hello', version: 'v2'}), pod('hello-v1-a', {app: 'hello', version: 'v1', 'mesh.lab/faulty': 'false'}), pod('hello-v1-faulty-x', {app: 'hello', version: 'v1', 'mesh.lab/faulty': 'true'})],
      () => true,
    )
    expect(ws.map((w) => [w.version, w.labels['mesh.lab/faulty']])).toEqual([
      ['v1', 'false'],
      ['v2', undefined],
    ])
  })
})
