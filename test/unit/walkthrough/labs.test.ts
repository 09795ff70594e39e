// Every lab in labs/ loads, has a check on every step, and uses only the planned command
// surface (so a typo in a lab fails here, not in front of a workshop).
import {existsSync} from 'node:fs'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {describe, expect, it} from 'vitest'
import {listLabFiles, loadCatalog, loadLab, type Lab} from '../../../src/walkthrough/index.js'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const dir = join(root, 'labs')

// The command surface the labs are written against (issue 6/7 commands).
const MESH_COMMANDS = [
  /^mesh lab (up|down|status|reset)( --json)?$/,
  /^mesh canary (shift \d+\/\d+|step|rollback|status)( --json)?$/,
  /^mesh call \/hello --from (ingress|meshed|legacy)( --method (GET|POST))?( --json)?$/,
  /^mesh verify (split --expect \d+\/\d+|mtls|authz|ejection)( --json)?$/,
  /^mesh load( --duration \d+| --connections \d+| --requests \d+)*( --json)?$/,
  /^mesh mtls (strict|permissive)( --namespace mesh-lab| --mesh)?$/,
  /^mesh mtls status( --json)?$/,
  /^mesh policy (deny-all( --namespace mesh-lab)?|allow --to hello --methods GET|list|reset)( --json)?$/,
]
const KUBECTL = [/^kubectl get pods -n mesh-lab$/, /^kubectl apply -f (configs\/\S+\.yaml)$/]

const commandsOf = (lab: Lab): string[] => [
  ...lab.setup,
  ...lab.prerequisites.flatMap((p) => (p.check?.run ? [p.check.run] : [])),
  ...lab.steps.flatMap((s) => [s.command, ...s.checks.flatMap((c) => (c.run ? [c.run] : []))]),
]

describe('labs/', () => {
  const catalog = loadCatalog(dir)

  it('has the five workshop labs, in course order, all valid', () => {
    expect(catalog.invalid.map((i) => i.error.message)).toEqual([])
    expect(catalog.labs.map((l) => l.id)).toEqual(['first-request', 'canary', 'mtls', 'authz', 'circuit-breaking'])
    expect(listLabFiles(dir).map((f) => f.number)).toEqual([1, 2, 3, 4, 5])
  })

  for (const lab of loadCatalog(dir).labs) {
    describe(lab.id, () => {
      it('has metadata, setup for --reset, and a check on every step', () => {
        expect(lab.title.length).toBeGreaterThan(5)
        expect(lab.summary.length).toBeGreaterThan(20)
        expect(lab.minutes).toBeGreaterThan(0)
        expect(lab.setup.length).toBeGreaterThan(0)
        expect(lab.steps.length).toBeGreaterThanOrEqual(4)
        for (const s of lab.steps) {
          expect(s.checks.length, s.id).toBeGreaterThan(0)
          expect(s.explanation.length, s.id).toBeGreaterThan(40)
        }
      })

      it('uses only the planned mesh and kubectl commands, and files that exist', () => {
        for (const cmd of commandsOf(lab)) {
          const known = [...MESH_COMMANDS, ...KUBECTL].some((re) => re.test(cmd))
          expect(known, `unplanned command in ${lab.id}: ${cmd}`).toBe(true)
          const file = /^kubectl apply -f (\S+)$/.exec(cmd)?.[1]
          if (file) expect(existsSync(join(root, file)), file).toBe(true)
        }
      })
    })
  }

  const stepCommands = (lab: Lab) => lab.steps.map((s) => [s.command, ...s.checks.flatMap((c) => (c.run ? [c.run] : []))].join(' && '))

  it('01 brings the lab up, lists pods and gets v1 through the ingress', () => {
    const lab = loadLab(dir, '1')
    expect(lab.setup).toEqual(['mesh lab down'])
    expect(lab.steps[0]!.command).toBe('mesh lab up')
    expect(lab.steps.map((s) => s.command)).toContain('kubectl get pods -n mesh-lab')
    const first = lab.steps.find((s) => s.command === 'mesh call /hello --from ingress')!
    expect(first.checks[0]!.stdoutContains).toContain('Hello version: v1')
  })

  it('02 verifies the split at 90/10, 50/50 and 0/100, and exactly v1 after the rollback', () => {
    const lab = loadLab(dir, 'canary')
    const cmds = stepCommands(lab).join('\n')
    for (const w of ['90/10', '50/50', '0/100']) {
      expect(cmds).toContain(`mesh canary shift ${w}`)
      expect(cmds).toContain(`mesh verify split --expect ${w}`)
    }
    const rollback = lab.steps.find((s) => s.command === 'mesh canary rollback')!
    expect(rollback.checks.map((c) => c.run)).toContain('mesh verify split --expect 100/0')
    // the order of the story: shift up, then roll back
    const order = lab.steps.map((s) => s.command)
    expect(order.indexOf('mesh canary shift 0/100')).toBeLessThan(order.indexOf('mesh canary rollback'))
  })

  it('03 accepts the legacy caller under PERMISSIVE and resets it under STRICT, meshed still 200', () => {
    const lab = loadLab(dir, 'mtls')
    const ids = lab.steps.map((s) => s.id)
    const legacyOk = lab.steps[ids.indexOf('legacy-permissive')]!
    const strict = ids.indexOf('strict')
    const refused = lab.steps[ids.indexOf('legacy-refused')]!
    expect(legacyOk.command).toBe('mesh call /hello --from legacy')
    expect(legacyOk.checks[0]!.stdoutContains).toContain('200')
    expect(lab.steps[strict]!.command).toBe('mesh mtls strict --namespace mesh-lab')
    expect(refused.command).toBe('mesh call /hello --from legacy')
    expect(refused.checks[0]!.stdoutContains).toEqual(['000 connection reset'])
    expect(ids.indexOf('legacy-permissive')).toBeLessThan(strict)
    expect(strict).toBeLessThan(ids.indexOf('legacy-refused'))
    expect(lab.steps.find((s) => s.id === 'meshed-ok')!.command).toBe('mesh call /hello --from meshed')
    expect(lab.steps.map((s) => s.command)).toContain('mesh verify mtls')
  })

  it('04 denies with 403 RBAC, then allows GET but not POST, and resets', () => {
    const lab = loadLab(dir, 'authz')
    const by = (id: string) => lab.steps.find((s) => s.id === id)!
    expect(by('deny-all').command).toBe('mesh policy deny-all --namespace mesh-lab')
    expect(by('denied').checks[0]!.stdoutContains).toEqual(['403', 'RBAC: access denied'])
    expect(by('allow-get').command).toBe('mesh policy allow --to hello --methods GET')
    expect(by('get-allowed').checks[0]!.stdoutContains).toContain('200')
    expect(by('post-denied').command).toBe('mesh call /hello --from ingress --method POST')
    expect(by('post-denied').checks[0]!.stdoutContains).toContain('403')
    expect(lab.steps.map((s) => s.command)).toEqual(expect.arrayContaining(['mesh verify authz', 'mesh policy reset']))
  })

  it('05 overflows the circuit breaker (503 UO), restores it, then verifies ejection', () => {
    const lab = loadLab(dir, 'circuit-breaking')
    const [apply, overflow, restore, ejection] = lab.steps
    expect(apply!.command).toBe('kubectl apply -f configs/traffic/destination-rule-circuit-breaker.yaml')
    expect(overflow!.command).toMatch(/^mesh load --connections 3 --requests 60/)
    expect(overflow!.checks[0]!.stdoutContains).toEqual(['503', 'UO'])
    expect(restore!.command).toBe('kubectl apply -f configs/traffic/destination-rule.yaml')
    expect(restore!.checks.some((c) => c.stdoutNotContains?.includes('UO'))).toBe(true)
    expect(ejection!.command).toBe('mesh verify ejection')
  })

  it('labs after the first need the lab up, and say how to get there', () => {
    for (const lab of catalog.labs.slice(1)) {
      expect(lab.prerequisites[0]?.check?.run, lab.id).toBe('mesh lab status')
      expect(lab.prerequisites[0]?.hint, lab.id).toContain('--reset')
      expect(lab.setup, lab.id).toEqual(['mesh lab up', 'mesh lab reset'])
    }
  })
})
