import {describe, expect, it} from 'vitest'
import type {KubeObject} from '../../../src/cluster/client.js'
import {buildHelloDestinationRule, buildHelloVirtualServices} from '../../../src/mesh/traffic.js'
import {CanaryPlan} from '../../../src/mesh/canary.js'
import {canaryStatus, rollbackCanary, shiftCanary, stepCanary} from '../../../src/lab/canary.js'
import {labFor} from '../../../src/lab/open-target.js'
import {FakeClient, fakeLab, ns, tempHome} from './fake-cluster.js'

const seedLab = (c: FakeClient, weights = {v1: 100, v2: 0}) =>
  c.seed(ns('mesh-lab'), buildHelloDestinationRule() as unknown as KubeObject, ...(buildHelloVirtualServices(weights) as unknown as KubeObject[]))

const routeWeights = (o: KubeObject | undefined) => (o?.spec.http[0].route as Array<{destination: {subset: string}; weight: number}>).map((r) => `${r.destination.subset}=${r.weight}`).join(',')

describe('canary shift', () => {
  it('applies both VirtualServices as field manager mesh, then waits for the generation it wrote', async () => {
    const {lab, client, target} = fakeLab()
    seedLab(client)
    const r = await shiftCanary(lab, '90/10')
    expect(r.from).toEqual({v1: 100, v2: 0})
    expect(r.to).toEqual({v1: 90, v2: 10})
    expect(client.applyCalls).toHaveLength(1)
    expect(client.applyCalls[0]!.opts).toMatchObject({fieldManager: 'mesh', dryRun: false, force: false})
    expect(client.applyCalls[0]!.objects.map((o) => o.metadata.name)).toEqual(['hello', 'hello-ingress'])
    expect(routeWeights(client.find('VirtualService', 'mesh-lab', 'hello'))).toBe('v1=90,v2=10')
    expect(routeWeights(client.find('VirtualService', 'mesh-lab', 'hello-ingress'))).toBe('v1=90,v2=10')
    expect(client.find('VirtualService', 'mesh-lab', 'hello')!.metadata.labels!['app.kubernetes.io/managed-by']).toBe('mesh')
    const written = Math.max(...r.changes.map((c) => Number(c.resourceVersion)))
    expect(target.syncCalls).toEqual([{generation: written, timeoutMs: 30_000}])
    expect(r.sync).toMatchObject({synced: true, proxies: 1})
    expect(r.changes.map((c) => c.action)).toEqual(['configured', 'configured'])
  })

  it.each([
    ['90/20', 'MESH_WEIGHTS_SUM'],
    ['v3', 'MESH_WEIGHTS_FORMAT'],
    ['abc', 'MESH_WEIGHTS_FORMAT'],
    ['-5/105', 'MESH_WEIGHTS_RANGE'],
  ])('%s is refused with %s (exit 65) and nothing is applied', async (input, code) => {
    const {lab, client, target} = fakeLab()
    seedLab(client, {v1: 90, v2: 10})
    const before = client.versions()
    await expect(shiftCanary(lab, input)).rejects.toMatchObject({code, exit: 65})
    expect(client.applyCalls).toHaveLength(0)
    expect(target.syncCalls).toHaveLength(0)
    expect(client.versions()).toEqual(before)
  })

  it('--dry-run sends a server-side dry run and changes nothing', async () => {
    const {lab, client, target} = fakeLab()
    seedLab(client)
    const before = client.versions()
    const r = await shiftCanary(lab, '50/50', {dryRun: true})
    expect(r.dryRun).toBe(true)
    expect(r.serverValidated).toBe(true)
    expect(client.applyCalls[0]!.opts.dryRun).toBe(true)
    expect(r.yaml).toContain('weight: 50')
    expect(r.sync).toBeUndefined()
    expect(target.syncCalls).toHaveLength(0)
    expect(client.versions()).toEqual(before)
  })

  it('--dry-run with the lab down prints the YAML without contacting the cluster', async () => {
    const {lab, client} = fakeLab({up: false})
    const r = await shiftCanary(lab, '0/100', {dryRun: true})
    expect(r.serverValidated).toBe(false)
    expect(r.yaml).toMatch(/subset: v2\n\s+port:\n\s+number: 5000\n\s+weight: 100/)
    expect(client.applyCalls).toHaveLength(0)
  })

  it('refuses to overwrite a VirtualService mesh does not manage', async () => {
    const {lab, client} = fakeLab()
    const [mesh, ingress] = buildHelloVirtualServices({v1: 100, v2: 0}) as unknown as KubeObject[]
    mesh!.metadata.labels = {team: 'someone-else'}
    client.seed(ns('mesh-lab'), buildHelloDestinationRule() as unknown as KubeObject, mesh!, ingress!)
    const before = client.versions()
    await expect(shiftCanary(lab, '90/10')).rejects.toMatchObject({code: 'MESH_NOT_MANAGED', exit: 65})
    expect(client.versions()).toEqual(before)
  })

  it('a lab whose namespace is missing is MESH_LAB_NOT_READY (69)', async () => {
    const {lab} = fakeLab()
    await expect(shiftCanary(lab, '90/10')).rejects.toMatchObject({code: 'MESH_LAB_NOT_READY', exit: 69})
  })

  it('warns when the DestinationRule with the subsets is missing', async () => {
    const {lab, client} = fakeLab()
    client.seed(ns('mesh-lab'))
    const r = await shiftCanary(lab, '90/10')
    expect(r.fromSource).toBe('default')
    expect(r.notes.join(' ')).toMatch(/DestinationRule mesh-lab\/hello is missing/)
  })

  it('two shifts at once are serialized by the lab lock: the second sees the first one\'s result', async () => {
    const home = tempHome()
    const {lab, client} = fakeLab({home})
    seedLab(client)
    client.applyDelayMs = 40
    const other = labFor(lab.target, home)
    const [a, b] = await Promise.all([shiftCanary(lab, '90/10'), shiftCanary(other, '50/50')])
    const first = a.from.v2 === 0 ? a : b
    const second = first === a ? b : a
    expect(first.from).toEqual({v1: 100, v2: 0})
    expect(second.from).toEqual(first.to)
  })
})

describe('canary step, rollback, status', () => {
  it('steps along the default plan and says so at the last step without changing anything', async () => {
    const {lab, client} = fakeLab()
    seedLab(client)
    const seen: string[] = []
    for (let i = 0; i < 3; i++) {
      const r = await stepCanary(lab)
      expect(r.atLastStep).toBe(false)
      seen.push(`${r.shift!.to.v1}/${r.shift!.to.v2}`)
    }
    expect(seen).toEqual(['90/10', '50/50', '0/100'])
    const before = client.versions()
    const calls = client.applyCalls.length
    const last = await stepCanary(lab)
    expect(last).toMatchObject({atLastStep: true, current: {v1: 0, v2: 100}})
    expect(last.shift).toBeUndefined()
    expect(client.applyCalls).toHaveLength(calls)
    expect(client.versions()).toEqual(before)
  })

  it('off-plan weights step to the next step above them; a custom plan is honoured', async () => {
    const {lab, client} = fakeLab()
    seedLab(client, {v1: 70, v2: 30})
    const r = await stepCanary(lab)
    expect(r.position.onPlan).toBe(false)
    expect(r.shift!.to).toEqual({v1: 50, v2: 50})
    const r2 = await stepCanary(lab, {plan: CanaryPlan.parse('100/0,40/60,0/100')})
    expect(r2.shift!.to).toEqual({v1: 40, v2: 60})
  })

  it('rollback returns to 100/0 and status places the weights on the plan', async () => {
    const {lab, client} = fakeLab()
    seedLab(client, {v1: 50, v2: 50})
    const s1 = await canaryStatus(lab)
    expect(s1.position).toMatchObject({onPlan: true, step: 3, total: 4})
    const r = await rollbackCanary(lab)
    expect(r.from).toEqual({v1: 50, v2: 50})
    expect(r.to).toEqual({v1: 100, v2: 0})
    const s2 = await canaryStatus(lab)
    expect(s2.weights.weights).toEqual({v1: 100, v2: 0})
    expect(s2.proxies.synced).toBe(true)
  })
})
