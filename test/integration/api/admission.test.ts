// kubectl apply of bad security objects against the embedded API with meshd's admission rules:
// refused with a 422 that names the field, and nothing is stored.
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {istioAdmission} from '../../../src/local/admission.js'
import {startApi, type Harness} from './harness.js'

let h: Harness
beforeAll(async () => {
  h = await startApi({validators: [istioAdmission]})
  const ns = await h.kubectl(['apply', '--server-side', '-f', '-'], 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: mesh-lab\n')
  if (ns.exitCode !== 0) throw new Error(ns.stderr)
})
afterAll(async () => {
  await h?.close()
})

const policy = (spec: string) => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: bad
  namespace: mesh-lab
spec:
${spec}
`

describe('admission of security objects', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['an unknown field', '  action: ALLOW\n  rulez: []', /spec\.rulez/],
    ['a principal with the spiffe:// prefix', '  rules:\n  - from:\n    - source:\n        principals: ["spiffe://cluster.local/ns/a/sa/b"]', /spec\.rules\[0\]\.from\[0\]\.source\.principals\[0\]/],
    ['an invalid CIDR', '  rules:\n  - from:\n    - source:\n        ipBlocks: ["10.0.0.0/33"]', /spec\.rules\[0\]\.from\[0\]\.source\.ipBlocks\[0\]/],
    ['the unsupported CUSTOM action', '  action: CUSTOM\n  provider:\n    name: ext\n  rules:\n  - {}', /spec\.action/],
  ]
  for (const [what, spec, field] of cases) {
    it(`refuses ${what} with a 422 naming the field`, async () => {
      const r = await h.kubectl(['apply', '--server-side', '-f', '-'], policy(spec))
      expect(r.exitCode).not.toBe(0)
      expect(r.stderr).toMatch(/is invalid|Invalid/)
      expect(r.stderr).toMatch(field)
      const get = await h.kubectl(['get', 'authorizationpolicies', '-n', 'mesh-lab', '-o', 'name'])
      expect(get.stdout.trim()).toBe('')
    })
  }

  it('accepts a valid deny-all policy', async () => {
    const r = await h.kubectl(['apply', '--server-side', '-f', '-'], policy('  {}').replace('name: bad', 'name: deny-all'))
    expect(r.stderr).toBe('')
    expect(r.exitCode).toBe(0)
  })
})
