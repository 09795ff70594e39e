// Table of AuthorizationPolicy cases. Each row names the rule of istio-semantics.md §4 it
// checks (AZ-n), the expected decision and, where it matters, the deciding rule id.
import {describe, expect, it} from 'vitest'
import type {KubeObject} from '../../../src/local/dataplane/snapshot.js'
import {
  evaluate,
  rbacDeniedDetails,
  RBAC_ACCESS_DENIED_BODY,
  CUSTOM_UNSUPPORTED_REASON,
  type PolicyRequest,
} from '../../../src/local/dataplane/security/authz.js'
import type {Peer} from '../../../src/local/dataplane/security-provider.js'

const NS = 'mesh-lab'
const ROOT = 'istio-system'
const hello = {namespace: NS, labels: {app: 'hello', version: 'v1'}}

let seq = 0
function pol(name: string, spec: Record<string, unknown>, o: {ns?: string; annotations?: Record<string, string>} = {}): KubeObject {
  seq++
  return {
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: {name, namespace: o.ns ?? NS, annotations: o.annotations, creationTimestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, seq)).toISOString()},
    spec,
  }
}
const mtls = (ns: string, sa: string, ip = '127.0.0.5'): Peer => ({principal: `spiffe://cluster.local/ns/${ns}/sa/${sa}`, namespace: ns, ip, mtls: true})
const plain = (ip = '127.0.0.9'): Peer => ({ip, mtls: false})
const sleepFoo = mtls('foo', 'sleep')

function req(over: Partial<PolicyRequest> = {}): PolicyRequest {
  return {method: 'GET', path: '/hello', host: 'hello.mesh-lab:5000', port: 5000, headers: {}, peer: sleepFoo, protocol: 'http', ...over}
}

const id = (name: string, rule = 0, ns = NS) => `ns[${ns}]-policy[${name}]-rule[${rule}]`
const allowRules = (rules: unknown[], name = 'allow') => pol(name, {action: 'ALLOW', rules})
const denyRules = (rules: unknown[], name = 'deny') => pol(name, {action: 'DENY', rules})
const src = (source: Record<string, unknown>) => ({from: [{source}]})
const op = (operation: Record<string, unknown>) => ({to: [{operation}]})
const when = (...conds: Record<string, unknown>[]) => ({when: conds})

interface Case {
  rule: string
  name: string
  policies: KubeObject[]
  request?: Partial<PolicyRequest>
  workload?: {namespace: string; labels: Record<string, string>}
  expect: 'ALLOW' | 'DENY'
  /** deciding rule id; null = decided by default (no policy) */
  policy?: string | null
  check?: (d: ReturnType<typeof evaluate>) => void
}

const cases: Case[] = [
  // ---------------------------------------------------------------- AZ-1 scope
  {rule: 'AZ-1', name: 'DENY-all in another namespace does not apply', policies: [pol('deny-all', {action: 'DENY', rules: [{}]}, {ns: 'other'})], expect: 'ALLOW', policy: null},
  {rule: 'AZ-1', name: 'DENY-all in the root namespace applies mesh-wide', policies: [pol('deny-all', {action: 'DENY', rules: [{}]}, {ns: ROOT})], expect: 'DENY', policy: id('deny-all', 0, ROOT)},
  {rule: 'AZ-1', name: 'selector matching the workload applies', policies: [pol('d', {selector: {matchLabels: {app: 'hello'}}, action: 'DENY', rules: [{}]})], expect: 'DENY', policy: id('d')},
  {rule: 'AZ-1', name: 'selector not matching the workload does not apply', policies: [pol('d', {selector: {matchLabels: {app: 'world'}}, action: 'DENY', rules: [{}]})], expect: 'ALLOW', policy: null},
  {rule: 'AZ-1', name: 'selector must match every label', policies: [pol('d', {selector: {matchLabels: {app: 'hello', version: 'v2'}}, action: 'DENY', rules: [{}]})], expect: 'ALLOW'},
  {rule: 'AZ-1', name: 'root-namespace policy with selector applies to matching workloads everywhere', policies: [pol('d', {selector: {matchLabels: {app: 'hello'}}, action: 'DENY', rules: [{}]}, {ns: ROOT})], expect: 'DENY', policy: id('d', 0, ROOT)},
  {rule: 'AZ-1', name: 'root-namespace policy with non-matching selector does not apply', policies: [pol('d', {selector: {matchLabels: {app: 'x'}}, action: 'DENY', rules: [{}]}, {ns: ROOT})], expect: 'ALLOW'},
  {rule: 'AZ-1', name: 'empty matchLabels means the whole namespace', policies: [pol('d', {selector: {matchLabels: {}}, action: 'DENY', rules: [{}]})], expect: 'DENY'},
  {rule: 'AZ-1', name: 'a policy bound with targetRefs does not apply to a sidecar', policies: [pol('d', {targetRefs: [{kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'gw'}], action: 'DENY', rules: [{}]})], expect: 'ALLOW'},

  // ---------------------------------------------------------------- AZ-2 order
  {rule: 'AZ-2', name: 'no policy at all allows', policies: [], expect: 'ALLOW', policy: null},
  {rule: 'AZ-2', name: 'DENY is evaluated before ALLOW', policies: [allowRules([{}]), denyRules([op({methods: ['GET']})])], expect: 'DENY', policy: id('deny')},
  {rule: 'AZ-2', name: 'ALLOW policies present but none matching denies by default', policies: [allowRules([op({methods: ['POST']})])], expect: 'DENY', policy: null, check: (d) => expect(d.details).toBe('rbac_access_denied_matched_policy[none]')},
  {rule: 'AZ-2', name: 'any matching ALLOW policy allows (second of two)', policies: [allowRules([op({methods: ['POST']})], 'a1'), allowRules([op({methods: ['GET']})], 'a2')], expect: 'ALLOW', policy: id('a2')},
  {rule: 'AZ-2', name: 'action defaults to ALLOW (GET allowed)', policies: [pol('get-only', {rules: [op({methods: ['GET']})]})], expect: 'ALLOW', policy: id('get-only')},
  {rule: 'AZ-2', name: 'action defaults to ALLOW (POST denied)', policies: [pol('get-only', {rules: [op({methods: ['GET']})]})], request: {method: 'POST'}, expect: 'DENY', policy: null},
  {rule: 'AZ-2', name: 'AUDIT alone never denies, and is reported', policies: [pol('audit', {action: 'AUDIT', rules: [{}]})], expect: 'ALLOW', check: (d) => expect(d.audited).toEqual([id('audit')])},
  {rule: 'AZ-2', name: 'AUDIT does not turn an allow-nothing deny into allow', policies: [pol('audit', {action: 'AUDIT', rules: [{}]}), pol('allow-nothing', {})], expect: 'DENY', policy: null},
  {rule: 'AZ-2', name: 'AUDIT does not count as an ALLOW policy', policies: [pol('audit', {action: 'AUDIT', rules: [op({methods: ['POST']})]})], expect: 'ALLOW', check: (d) => expect(d.audited).toEqual([])},
  {rule: 'AZ-2', name: 'CUSTOM matching denies with a clear unsupported reason', policies: [pol('ext', {action: 'CUSTOM', provider: {name: 'opa'}, rules: [{}]})], expect: 'DENY', policy: id('ext'), check: (d) => expect(d.reason).toContain(CUSTOM_UNSUPPORTED_REASON)},
  {rule: 'AZ-2', name: 'CUSTOM whose rules do not match has no effect', policies: [pol('ext', {action: 'CUSTOM', provider: {name: 'opa'}, rules: [op({paths: ['/admin']})]})], expect: 'ALLOW'},
  {rule: 'AZ-2', name: 'CUSTOM is evaluated before DENY', policies: [denyRules([{}], 'a-deny'), pol('z-ext', {action: 'CUSTOM', provider: {name: 'opa'}, rules: [{}]})], expect: 'DENY', policy: id('z-ext')},
  {rule: 'AZ-2', name: 'a dry-run DENY is recorded but not enforced', policies: [pol('deny-dry', {action: 'DENY', rules: [{}]}, {annotations: {'istio.io/dry-run': 'true'}})], expect: 'ALLOW', check: (d) => expect(d.dryRun).toEqual([{action: 'DENY', policy: id('deny-dry')}])},
  {rule: 'AZ-2', name: 'workload DENY beats a root-namespace ALLOW-all', policies: [pol('allow-all', {rules: [{}]}, {ns: ROOT}), denyRules([{}])], expect: 'DENY', policy: id('deny')},

  // ---------------------------------------------------------------- AZ-3 special shapes
  {rule: 'AZ-3', name: 'spec: {} allows nothing', policies: [pol('allow-nothing', {})], expect: 'DENY', policy: null},
  {rule: 'AZ-3', name: 'explicit ALLOW without rules allows nothing', policies: [pol('allow-nothing', {action: 'ALLOW'})], expect: 'DENY', policy: null},
  {rule: 'AZ-3', name: 'rules: [{}] allows everything', policies: [pol('allow-all', {rules: [{}]})], request: {method: 'DELETE', path: '/anything'}, expect: 'ALLOW', policy: id('allow-all')},
  {rule: 'AZ-3', name: 'DENY with rules: [{}] denies everything', policies: [pol('deny-all', {action: 'DENY', rules: [{}]})], request: {peer: plain()}, expect: 'DENY', policy: id('deny-all')},
  {rule: 'AZ-3', name: 'allow-nothing plus allow-all allows', policies: [pol('allow-nothing', {}), pol('allow-all', {rules: [{}]})], expect: 'ALLOW', policy: id('allow-all')},
  {rule: 'AZ-3', name: 'DENY without rules never triggers', policies: [pol('deny-none', {action: 'DENY'})], expect: 'ALLOW'},
  {rule: 'AZ-3', name: 'rules: [{}] also allows plaintext callers', policies: [pol('allow-all', {rules: [{}]})], request: {peer: plain()}, expect: 'ALLOW'},

  // ---------------------------------------------------------------- AZ-4 sources
  {rule: 'AZ-4', name: 'principals exact match', policies: [allowRules([src({principals: ['cluster.local/ns/foo/sa/sleep']})])], expect: 'ALLOW', policy: id('allow')},
  {rule: 'AZ-4', name: 'principals of another identity', policies: [allowRules([src({principals: ['cluster.local/ns/foo/sa/other']})])], expect: 'DENY', policy: null},
  {rule: 'AZ-4', name: 'principals values are ORed', policies: [allowRules([src({principals: ['cluster.local/ns/bar/sa/x', 'cluster.local/ns/foo/sa/sleep']})])], expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'notPrincipals containing the caller does not match', policies: [allowRules([src({notPrincipals: ['cluster.local/ns/foo/sa/sleep']})])], expect: 'DENY'},
  {rule: 'AZ-4', name: 'notPrincipals of others matches', policies: [allowRules([src({notPrincipals: ['cluster.local/ns/foo/sa/other']})])], expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'namespaces match the caller namespace', policies: [allowRules([src({namespaces: ['foo']})])], expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'namespaces of another namespace', policies: [allowRules([src({namespaces: ['bar']})])], expect: 'DENY'},
  {rule: 'AZ-4', name: 'notNamespaces in a DENY rule', policies: [denyRules([src({notNamespaces: ['bar']})])], expect: 'DENY', policy: id('deny')},
  {rule: 'AZ-4', name: 'ipBlocks CIDR containing the peer', policies: [allowRules([src({ipBlocks: ['127.0.0.0/24']})])], expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'ipBlocks single address', policies: [allowRules([src({ipBlocks: ['127.0.0.5']})])], expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'ipBlocks not containing the peer', policies: [allowRules([src({ipBlocks: ['10.0.0.0/8']})])], expect: 'DENY'},
  {rule: 'AZ-4', name: 'notIpBlocks containing the peer', policies: [allowRules([src({notIpBlocks: ['127.0.0.0/8']})])], expect: 'DENY'},
  {rule: 'AZ-4', name: 'ipBlocks on IPv6', policies: [allowRules([src({ipBlocks: ['::1/128']})])], request: {peer: plain('::1')}, expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'IPv4-mapped IPv6 peer address matches an IPv4 block', policies: [allowRules([src({ipBlocks: ['127.0.0.9/32']})])], request: {peer: plain('::ffff:127.0.0.9')}, expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'remoteIpBlocks use the original client address', policies: [allowRules([src({remoteIpBlocks: ['203.0.113.0/24']})])], request: {remoteIp: '203.0.113.7'}, expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'remoteIpBlocks fall back to the peer address', policies: [allowRules([src({remoteIpBlocks: ['203.0.113.0/24']})])], expect: 'DENY'},
  {rule: 'AZ-4', name: 'notRemoteIpBlocks containing the client', policies: [denyRules([src({notRemoteIpBlocks: ['203.0.113.0/24']})])], request: {remoteIp: '203.0.113.7'}, expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'requestPrincipals never match (no JWT support)', policies: [allowRules([src({requestPrincipals: ['*']})])], expect: 'DENY'},
  {rule: 'AZ-4', name: 'notRequestPrincipals ["*"] matches requests without a token', policies: [denyRules([src({notRequestPrincipals: ['*']})])], expect: 'DENY', policy: id('deny')},
  {rule: 'AZ-4', name: 'fields of one source are ANDed (principal ok, ip not)', policies: [allowRules([src({principals: ['cluster.local/ns/foo/sa/sleep'], ipBlocks: ['10.0.0.0/8']})])], expect: 'DENY'},
  {rule: 'AZ-4', name: 'sources are ORed (second matches)', policies: [allowRules([{from: [{source: {namespaces: ['bar']}}, {source: {namespaces: ['foo']}}]}])], expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'serviceAccounts with namespace', policies: [allowRules([src({serviceAccounts: ['foo/sleep']})])], expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'serviceAccounts without namespace mean the policy namespace', policies: [allowRules([src({serviceAccounts: ['sleep']})])], expect: 'DENY'},

  // ---------------------------------------------------------------- AZ-4 operations
  {rule: 'AZ-4', name: 'methods GET allows GET', policies: [allowRules([op({methods: ['GET']})])], expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'methods GET denies POST', policies: [allowRules([op({methods: ['GET']})])], request: {method: 'POST'}, expect: 'DENY'},
  {rule: 'AZ-4', name: 'methods are case-sensitive', policies: [allowRules([op({methods: ['get']})])], expect: 'DENY'},
  {rule: 'AZ-4', name: 'notMethods in DENY (deny all but GET)', policies: [denyRules([op({notMethods: ['GET']})])], request: {method: 'PUT'}, expect: 'DENY'},
  {rule: 'AZ-4', name: 'notMethods in DENY lets GET through', policies: [denyRules([op({notMethods: ['GET']})])], expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'paths exact ignores the query string', policies: [allowRules([op({paths: ['/hello']})])], request: {path: '/hello?name=x'}, expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'paths exact does not match a trailing slash', policies: [allowRules([op({paths: ['/hello']})])], request: {path: '/hello/'}, expect: 'DENY'},
  {rule: 'AZ-4', name: 'paths are normalized before matching (dot segments)', policies: [denyRules([op({paths: ['/admin']})])], request: {path: '/public/../admin'}, expect: 'DENY'},
  {rule: 'AZ-4', name: 'notPaths', policies: [allowRules([op({notPaths: ['/admin*']})])], request: {path: '/admin/users'}, expect: 'DENY'},
  {rule: 'AZ-4', name: 'path template {*} matches one segment', policies: [allowRules([op({paths: ['/api/{*}/items']})])], request: {path: '/api/v1/items'}, expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'path template {*} does not match two segments', policies: [allowRules([op({paths: ['/api/{*}/items']})])], request: {path: '/api/v1/x/items'}, expect: 'DENY'},
  {rule: 'AZ-4', name: 'ports match the destination port', policies: [allowRules([op({ports: ['5000']})])], expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'ports of another port', policies: [allowRules([op({ports: ['8080']})])], expect: 'DENY'},
  {rule: 'AZ-4', name: 'notPorts containing the port', policies: [allowRules([op({notPorts: ['5000']})])], expect: 'DENY'},
  {rule: 'AZ-4', name: 'hosts are case-insensitive', policies: [allowRules([op({hosts: ['hello.mesh-lab:5000']})])], request: {host: 'HELLO.Mesh-Lab:5000'}, expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'hosts without a port do not match an authority with a port', policies: [allowRules([op({hosts: ['hello.mesh-lab']})])], expect: 'DENY'},
  {rule: 'AZ-4', name: 'notHosts', policies: [denyRules([op({notHosts: ['hello.mesh-lab:5000']})])], request: {host: 'evil.example'}, expect: 'DENY'},
  {rule: 'AZ-4', name: 'fields of one operation are ANDed (GET but wrong path)', policies: [allowRules([op({methods: ['GET'], paths: ['/health']})])], expect: 'DENY'},
  {rule: 'AZ-4', name: 'operations are ORed', policies: [allowRules([{to: [{operation: {paths: ['/health']}}, {operation: {paths: ['/hello']}}]}])], expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'from and to are ANDed (source ok, operation not)', policies: [allowRules([{...src({namespaces: ['foo']}), ...op({methods: ['POST']})}])], expect: 'DENY'},
  {rule: 'AZ-4', name: 'rules are ORed (second rule matches)', policies: [allowRules([op({methods: ['POST']}), op({methods: ['GET']})])], expect: 'ALLOW', policy: id('allow', 1)},

  // ---------------------------------------------------------------- AZ-4 when
  {rule: 'AZ-4', name: 'when request.headers exact', policies: [allowRules([when({key: 'request.headers[x-user]', values: ['jason']})])], request: {headers: {'x-user': 'jason'}}, expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'when request.headers other value', policies: [allowRules([when({key: 'request.headers[x-user]', values: ['jason']})])], request: {headers: {'x-user': 'kim'}}, expect: 'DENY'},
  {rule: 'AZ-4', name: 'when request.headers name is case-insensitive', policies: [allowRules([when({key: 'request.headers[X-User]', values: ['jason']})])], request: {headers: {'x-user': 'jason'}}, expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'when request.headers notValues', policies: [denyRules([when({key: 'request.headers[x-env]', notValues: ['prod']})])], request: {headers: {'x-env': 'dev'}}, expect: 'DENY'},
  {rule: 'AZ-4', name: 'when header absent does not match values', policies: [allowRules([when({key: 'request.headers[x-user]', values: ['*']})])], expect: 'DENY'},
  {rule: 'AZ-4', name: 'when source.ip', policies: [allowRules([when({key: 'source.ip', values: ['127.0.0.0/16']})])], expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'when remote.ip', policies: [allowRules([when({key: 'remote.ip', values: ['198.51.100.1']})])], request: {remoteIp: '198.51.100.1'}, expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'when source.namespace', policies: [allowRules([when({key: 'source.namespace', values: ['foo']})])], expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'when source.principal', policies: [allowRules([when({key: 'source.principal', values: ['cluster.local/ns/foo/sa/sleep']})])], expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'when destination.port values', policies: [allowRules([when({key: 'destination.port', values: ['5000']})])], expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'when destination.port notValues', policies: [allowRules([when({key: 'destination.port', notValues: ['5000']})])], expect: 'DENY'},
  {rule: 'AZ-4', name: 'when destination.ip', policies: [allowRules([when({key: 'destination.ip', values: ['127.42.0.0/16']})])], request: {destinationIp: '127.42.0.7'}, expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'when connection.sni', policies: [allowRules([when({key: 'connection.sni', values: ['outbound_.5000_*']})])], request: {sni: 'outbound_.5000_._.hello.mesh-lab.svc.cluster.local'}, expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'when request.auth.principal never matches (no JWT)', policies: [allowRules([when({key: 'request.auth.principal', values: ['*']})])], expect: 'DENY'},
  {rule: 'AZ-4', name: 'when request.auth.claims notValues matches without a token', policies: [allowRules([when({key: 'request.auth.claims[iss]', notValues: ['evil']})])], expect: 'ALLOW'},
  {rule: 'AZ-4', name: 'when conditions are ANDed', policies: [allowRules([when({key: 'source.namespace', values: ['foo']}, {key: 'destination.port', values: ['8080']})])], expect: 'DENY'},
  {rule: 'AZ-4', name: 'when values and notValues together', policies: [allowRules([when({key: 'request.headers[x-v]', values: ['v*'], notValues: ['v2']})])], request: {headers: {'x-v': 'v2'}}, expect: 'DENY'},
  {rule: 'AZ-4', name: 'a rule with an unknown when key is skipped', policies: [allowRules([when({key: 'source.color', values: ['blue']})])], expect: 'DENY', policy: null},

  // ---------------------------------------------------------------- AZ-5 string forms
  {rule: 'AZ-5', name: 'prefix form on principals', policies: [allowRules([src({principals: ['cluster.local/ns/foo/*']})])], expect: 'ALLOW'},
  {rule: 'AZ-5', name: 'suffix form on principals', policies: [allowRules([src({principals: ['*/sa/sleep']})])], expect: 'ALLOW'},
  {rule: 'AZ-5', name: 'suffix form not matching', policies: [allowRules([src({principals: ['*/sa/curl']})])], expect: 'DENY'},
  {rule: 'AZ-5', name: '"*" principal matches any mTLS identity', policies: [allowRules([src({principals: ['*']})])], expect: 'ALLOW'},
  {rule: 'AZ-5', name: 'suffix form on paths', policies: [allowRules([op({paths: ['*.png']})])], request: {path: '/img/logo.png'}, expect: 'ALLOW'},
  {rule: 'AZ-5', name: 'prefix form on paths', policies: [allowRules([op({paths: ['/api/*']})])], request: {path: '/api/v1'}, expect: 'ALLOW'},
  {rule: 'AZ-5', name: 'exact form is case-sensitive on paths', policies: [allowRules([op({paths: ['/hello']})])], request: {path: '/Hello'}, expect: 'DENY'},
  {rule: 'AZ-5', name: 'prefix form on hosts', policies: [allowRules([op({hosts: ['hello.*']})])], expect: 'ALLOW'},
  {rule: 'AZ-5', name: '"*" header value only asks for presence', policies: [allowRules([when({key: 'request.headers[x-debug]', values: ['*']})])], request: {headers: {'x-debug': ''}}, expect: 'ALLOW'},
  {rule: 'AZ-5', name: 'prefix form on namespaces', policies: [allowRules([src({namespaces: ['fo*']})])], expect: 'ALLOW'},

  // ---------------------------------------------------------------- AZ-6 plaintext
  {rule: 'AZ-6', name: 'principals ["*"] never match plaintext', policies: [allowRules([src({principals: ['*']})])], request: {peer: plain()}, expect: 'DENY'},
  {rule: 'AZ-6', name: 'notPrincipals ["*"] matches plaintext (deny plaintext)', policies: [denyRules([src({notPrincipals: ['*']})])], request: {peer: plain()}, expect: 'DENY', policy: id('deny')},
  {rule: 'AZ-6', name: 'notPrincipals ["*"] does not match an mTLS caller', policies: [denyRules([src({notPrincipals: ['*']})])], expect: 'ALLOW'},
  {rule: 'AZ-6', name: 'namespaces never match plaintext', policies: [allowRules([src({namespaces: ['foo']})])], request: {peer: {ip: '127.0.0.9', mtls: false, namespace: 'foo'}}, expect: 'DENY'},
  {rule: 'AZ-6', name: 'a claimed principal without mTLS is ignored', policies: [allowRules([src({principals: ['cluster.local/ns/foo/sa/sleep']})])], request: {peer: {ip: '127.0.0.9', mtls: false, principal: 'spiffe://cluster.local/ns/foo/sa/sleep'}}, expect: 'DENY'},
  {rule: 'AZ-6', name: 'ipBlocks still match plaintext', policies: [allowRules([src({ipBlocks: ['127.0.0.9']})])], request: {peer: plain()}, expect: 'ALLOW'},
  {rule: 'AZ-6', name: 'when source.principal never matches plaintext', policies: [allowRules([when({key: 'source.principal', values: ['*']})])], request: {peer: plain()}, expect: 'DENY'},

  // ---------------------------------------------------------------- AZ-7 TCP
  {rule: 'AZ-7', name: 'TCP: ALLOW rule with methods is dropped (deny)', policies: [allowRules([op({methods: ['GET']})])], request: {protocol: 'tcp'}, expect: 'DENY', policy: null},
  {rule: 'AZ-7', name: 'TCP: ALLOW rule with ports only applies', policies: [allowRules([op({ports: ['5000']})])], request: {protocol: 'tcp'}, expect: 'ALLOW'},
  {rule: 'AZ-7', name: 'TCP: ALLOW rule with ports and paths is dropped entirely', policies: [allowRules([op({ports: ['5000'], paths: ['/hello']})])], request: {protocol: 'tcp'}, expect: 'DENY'},
  {rule: 'AZ-7', name: 'TCP: DENY rule with methods only denies all TCP', policies: [denyRules([op({methods: ['POST']})])], request: {protocol: 'tcp'}, expect: 'DENY', policy: id('deny')},
  {rule: 'AZ-7', name: 'TCP: DENY ports+methods drops methods, port matches', policies: [denyRules([op({ports: ['5000'], methods: ['POST']})])], request: {protocol: 'tcp'}, expect: 'DENY'},
  {rule: 'AZ-7', name: 'TCP: DENY ports+methods drops methods, other port allowed', policies: [denyRules([op({ports: ['5000'], methods: ['POST']})])], request: {protocol: 'tcp', port: 9000}, expect: 'ALLOW'},
  {rule: 'AZ-7', name: 'TCP: DENY with principals and paths keeps the principal', policies: [denyRules([{...src({principals: ['cluster.local/ns/foo/sa/other']}), ...op({paths: ['/admin']})}])], request: {protocol: 'tcp'}, expect: 'ALLOW'},
  {rule: 'AZ-7', name: 'TCP: ALLOW with a request.headers condition is dropped', policies: [allowRules([when({key: 'request.headers[x-user]', values: ['a']})])], request: {protocol: 'tcp'}, expect: 'DENY'},
  {rule: 'AZ-7', name: 'TCP: ALLOW on principals applies to mTLS TCP', policies: [allowRules([src({principals: ['cluster.local/ns/foo/sa/sleep']})])], request: {protocol: 'tcp'}, expect: 'ALLOW'},
  {rule: 'AZ-7', name: 'TCP: ALLOW with notRequestPrincipals (HTTP only) is dropped', policies: [allowRules([src({notRequestPrincipals: ['*']})])], request: {protocol: 'tcp'}, expect: 'DENY'},
  {rule: 'AZ-7', name: 'HTTP: the same notRequestPrincipals rule allows a request without a token', policies: [allowRules([src({notRequestPrincipals: ['*']})])], expect: 'ALLOW'},
  {rule: 'AZ-7', name: 'TCP: DENY requestPrincipals drops the field, empty source matches all', policies: [denyRules([src({requestPrincipals: ['*']})])], request: {protocol: 'tcp'}, expect: 'DENY'},
  {rule: 'AZ-7', name: 'TCP: second ALLOW rule (ports) matches when the first (methods) is dropped', policies: [allowRules([op({methods: ['GET']}), op({ports: ['5000']})])], request: {protocol: 'tcp'}, expect: 'ALLOW', policy: id('allow', 1)},
  {rule: 'AZ-7', name: 'HTTP: the same ports+paths rule applies to HTTP', policies: [allowRules([op({ports: ['5000'], paths: ['/hello']})])], expect: 'ALLOW'},
  {rule: 'AZ-7', name: 'malformed CIDR drops an ALLOW rule', policies: [allowRules([src({ipBlocks: ['127.0.0.0/99']})])], expect: 'DENY'},
  {rule: 'AZ-7', name: 'malformed CIDR only drops that value from a DENY rule', policies: [denyRules([src({ipBlocks: ['not-an-ip', '127.0.0.5']})])], expect: 'DENY'},

  // ---------------------------------------------------------------- AZ-8 denial details
  {rule: 'AZ-8', name: 'denial by a DENY rule names it in the details', policies: [denyRules([op({paths: ['/admin']})], 'no-admin')], request: {path: '/admin'}, expect: 'DENY', check: (d) => expect(d.details).toBe('rbac_access_denied_matched_policy[ns[mesh-lab]-policy[no-admin]-rule[0]]')},
  {rule: 'AZ-8', name: 'default deny has details [none]', policies: [pol('allow-nothing', {})], expect: 'DENY', check: (d) => expect(d.details).toBe(rbacDeniedDetails())},
]

describe('AuthorizationPolicy engine (table)', () => {
  it('has at least 60 cases covering AZ-1..AZ-8', () => {
    expect(cases.length).toBeGreaterThanOrEqual(60)
    for (const r of ['AZ-1', 'AZ-2', 'AZ-3', 'AZ-4', 'AZ-5', 'AZ-6', 'AZ-7', 'AZ-8']) expect(cases.some((c) => c.rule === r)).toBe(true)
  })

  it.each(cases.map((c) => [`${c.rule} ${c.name} → ${c.expect}`, c] as const))('%s', (_title, c) => {
    const d = evaluate(c.policies, c.workload ?? hello, req(c.request))
    expect(d.decision, d.reason).toBe(c.expect)
    if (c.policy !== undefined) expect(d.policy ?? null).toBe(c.policy)
    if (d.decision === 'DENY') expect(d.details).toBe(rbacDeniedDetails(d.policy))
    c.check?.(d)
  })

  it('AZ-8 the local reply body is Envoy\'s', () => {
    expect(RBAC_ACCESS_DENIED_BODY).toBe('RBAC: access denied')
  })

  it('AZ-2 a policy object replaced by a push is re-read (no stale compiled rules)', () => {
    const p1 = allowRules([op({methods: ['GET']})], 'p')
    expect(evaluate([p1], hello, req({method: 'POST'})).decision).toBe('DENY')
    const p2 = allowRules([op({methods: ['GET', 'POST']})], 'p')
    expect(evaluate([p2], hello, req({method: 'POST'})).decision).toBe('ALLOW')
  })
})
