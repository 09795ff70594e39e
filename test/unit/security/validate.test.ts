// Apply-time (422) validation of AuthorizationPolicy and PeerAuthentication semantics.
import {describe, expect, it} from 'vitest'
import {
  isValidIpOrCidr,
  validateAuthorizationPolicySemantics as validateAp,
  validatePeerAuthenticationSemantics as validatePa,
} from '../../../src/local/dataplane/security/validate.js'

const ap = (spec: unknown) => ({apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: {name: 'p', namespace: 'mesh-lab'}, spec})
const fields = (causes: {field: string}[]) => causes.map((c) => c.field)

describe('AuthorizationPolicy semantics', () => {
  it.each([
    ['allow-nothing', {}],
    ['deny-all', {action: 'DENY', rules: [{}]}],
    ['SC-9 GET on hello', {selector: {matchLabels: {app: 'hello'}}, action: 'ALLOW', rules: [{to: [{operation: {methods: ['GET']}}]}]}],
    ['principal-scoped', {rules: [{from: [{source: {principals: ['cluster.local/ns/foo/sa/sleep', 'cluster.local/ns/*']}}]}]}],
    ['ip blocks v4 and v6', {rules: [{from: [{source: {ipBlocks: ['10.0.0.0/8', '127.0.0.1', '::1/128'], notRemoteIpBlocks: ['fd00::/8']}}]}]}],
    ['every when key', {action: 'DENY', rules: [{when: [
      {key: 'request.headers[x-user]', values: ['a']}, {key: 'source.ip', values: ['1.2.3.4/32']}, {key: 'remote.ip', notValues: ['1.2.3.4']},
      {key: 'source.namespace', values: ['foo']}, {key: 'source.principal', values: ['cluster.local/ns/foo/sa/x']},
      {key: 'request.auth.principal', values: ['iss/sub']}, {key: 'request.auth.claims[groups]', values: ['g']},
      {key: 'destination.ip', values: ['127.0.0.0/8']}, {key: 'destination.port', values: ['80', 8080]}, {key: 'connection.sni', values: ['*.local']},
    ]}]}],
    ['ports as numbers', {rules: [{to: [{operation: {ports: [5000]}}]}]}],
  ])('accepts %s', (_n, spec) => {
    expect(validateAp(ap(spec))).toEqual([])
  })

  const cases: [string, unknown, string, RegExp?][] = [
    ['unknown action', {action: 'REJECT', rules: [{}]}, 'spec.action', /unknown action "REJECT"/],
    ['CUSTOM on the embedded cluster', {action: 'CUSTOM', provider: {name: 'opa'}, rules: [{}]}, 'spec.action', /not supported by the embedded cluster/],
    ['CUSTOM without provider', {action: 'CUSTOM', rules: [{}]}, 'spec.provider.name'],
    ['provider with ALLOW', {provider: {name: 'x'}, rules: [{}]}, 'spec.provider'],
    ['DENY without rules', {action: 'DENY'}, 'spec.rules', /never triggered/],
    ['principal with spiffe:// prefix', {rules: [{from: [{source: {principals: ['spiffe://cluster.local/ns/foo/sa/sleep']}}]}]}, 'spec.rules[0].from[0].source.principals[0]', /must not start with spiffe:\/\//],
    ['principal with whitespace', {rules: [{from: [{source: {notPrincipals: ['cluster.local/ns/foo/sa/a b']}}]}]}, 'spec.rules[0].from[0].source.notPrincipals[0]', /whitespace/],
    ['invalid CIDR in ipBlocks', {rules: [{from: [{source: {ipBlocks: ['10.0.0.0/33']}}]}]}, 'spec.rules[0].from[0].source.ipBlocks[0]', /not a valid IP address or CIDR/],
    ['invalid address in notIpBlocks', {rules: [{from: [{source: {notIpBlocks: ['300.1.1.1']}}]}]}, 'spec.rules[0].from[0].source.notIpBlocks[0]'],
    ['invalid CIDR in remoteIpBlocks', {rules: [{from: [{source: {remoteIpBlocks: ['fd00::/129']}}]}]}, 'spec.rules[0].from[0].source.remoteIpBlocks[0]'],
    ['unknown when key', {rules: [{when: [{key: 'source.color', values: ['blue']}]}]}, 'spec.rules[0].when[0].key', /unknown attribute "source.color"/],
    ['request.headers without a name', {rules: [{when: [{key: 'request.headers', values: ['x']}]}]}, 'spec.rules[0].when[0].key'],
    ['when without values', {rules: [{when: [{key: 'source.ip'}]}]}, 'spec.rules[0].when[0]', /values or notValues/],
    ['when source.ip invalid', {rules: [{when: [{key: 'source.ip', values: ['nope']}]}]}, 'spec.rules[0].when[0].values[0]'],
    ['when destination.port not a number', {rules: [{when: [{key: 'destination.port', values: ['http']}]}]}, 'spec.rules[0].when[0].values[0]'],
    ['operation port out of range', {rules: [{to: [{operation: {ports: ['70000']}}]}]}, 'spec.rules[0].to[0].operation.ports[0]'],
    ['empty from', {rules: [{from: []}]}, 'spec.rules[0].from'],
    ['empty source', {rules: [{from: [{source: {}}]}]}, 'spec.rules[0].from[0].source'],
    ['empty operation', {rules: [{to: [{operation: {}}]}]}, 'spec.rules[0].to[0].operation'],
    ['empty value', {rules: [{to: [{operation: {paths: ['']}}]}]}, 'spec.rules[0].to[0].operation.paths[0]', /empty value/],
    ['unknown field in a source', {rules: [{from: [{source: {principal: ['x']}}]}]}, 'spec.rules[0].from[0].source.principal', /unknown field/],
    ['unknown field in a rule', {rules: [{form: [{source: {principals: ['x']}}]}]}, 'spec.rules[0].form'],
    ['unknown field in spec', {rulez: []}, 'spec.rulez'],
    ['wildcard in selector', {selector: {matchLabels: {app: 'hel*'}}}, 'spec.selector.matchLabels.app'],
    ['serviceAccounts with principals', {rules: [{from: [{source: {serviceAccounts: ['sleep'], principals: ['cluster.local/ns/a/sa/b']}}]}]}, 'spec.rules[0].from[0].source.serviceAccounts'],
    ['a list that is not a list', {rules: [{to: [{operation: {methods: 'GET'}}]}]}, 'spec.rules[0].to[0].operation.methods'],
  ]
  it.each(cases)('refuses %s, naming the field', (_n, spec, field, message) => {
    const causes = validateAp(ap(spec))
    expect(fields(causes)).toContain(field)
    if (message) expect(causes.find((c) => c.field === field)?.message).toMatch(message)
  })

  it('accepts CUSTOM with a provider when validating for a real cluster', () => {
    expect(validateAp(ap({action: 'CUSTOM', provider: {name: 'opa'}, rules: [{to: [{operation: {paths: ['/admin']}}]}]}), {allowCustom: true})).toEqual([])
  })

  it('reports every problem, not only the first', () => {
    const causes = validateAp(ap({action: 'ALLOW', rules: [{from: [{source: {principals: ['spiffe://x'], ipBlocks: ['bad']}}], when: [{key: 'nope', values: ['1']}]}]}))
    expect(causes.length).toBeGreaterThanOrEqual(3)
  })

  it.each([
    ['10.0.0.0/8', true], ['127.0.0.1', true], ['::1', true], ['fd00::/8', true],
    ['10.0.0.0/33', false], ['10.0.0/8', false], ['1.2.3.4/8/1', false], ['', false], ['10.0.0.0/-1', false], ['abc', false],
  ])('CIDR %s valid=%s', (v, ok) => {
    expect(isValidIpOrCidr(v as string)).toBe(ok)
  })
})

describe('PeerAuthentication semantics', () => {
  const pa = (spec: unknown) => ({apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: {name: 'p', namespace: 'foo'}, spec})
  it('accepts the SC-8 shapes', () => {
    expect(validatePa(pa({mtls: {mode: 'STRICT'}}))).toEqual([])
    expect(validatePa(pa({selector: {matchLabels: {app: 'httpbin'}}, mtls: {mode: 'STRICT'}, portLevelMtls: {'8080': {mode: 'DISABLE'}}}))).toEqual([])
  })
  it.each([
    ['unknown mode', {mtls: {mode: 'STRICTT'}}, 'spec.mtls.mode'],
    ['portLevelMtls without selector', {mtls: {mode: 'STRICT'}, portLevelMtls: {'8080': {mode: 'DISABLE'}}}, 'spec.portLevelMtls'],
    ['empty portLevelMtls', {selector: {matchLabels: {app: 'a'}}, portLevelMtls: {}}, 'spec.portLevelMtls'],
    ['port out of range', {selector: {matchLabels: {app: 'a'}}, portLevelMtls: {'0': {mode: 'DISABLE'}}}, 'spec.portLevelMtls.0'],
    ['unknown port mode', {selector: {matchLabels: {app: 'a'}}, portLevelMtls: {'80': {mode: 'OFF'}}}, 'spec.portLevelMtls.80.mode'],
    ['unknown field', {mtl: {mode: 'STRICT'}}, 'spec.mtl'],
  ])('refuses %s', (_n, spec, field) => {
    expect(fields(validatePa(pa(spec)))).toContain(field)
  })
})
