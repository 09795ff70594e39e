// Canary weights on the lab: shift to a split, step along a plan, roll back, report status.
// Both hello VirtualServices (sidecars and ingress, ADR 0010) change together in one locked
// apply, and the result is reported only once the proxies acknowledged it.
import type {KubeObject} from '../cluster/client.js'
import {CanaryPlan, ROLLBACK_WEIGHTS, type PlanPosition} from '../mesh/canary.js'
import {LAB} from '../mesh/lab.js'
import {buildHelloDestinationRule, buildHelloVirtualServices, NETWORKING_API} from '../mesh/traffic.js'
import {assertValid} from '../mesh/validate.js'
import {checkWeights, parseWeights, sameWeights, type Weights} from '../mesh/weights.js'
import {applyAndSync, locked, requireNamespace, type ChangeOptions, type ChangeReport} from './change.js'
import type {Lab} from './open-target.js'
import {readPods, readProxies, readWeights, type PodsState, type ProxiesState, type WeightsState} from './state.js'
import {readRunProgress, type CanaryRunProgress} from './canary-progress.js'

export interface CanaryOptions extends ChangeOptions {
  /** namespace of the hello VirtualServices, default mesh-lab */
  namespace?: string
}

export interface ShiftResult extends ChangeReport {
  from: Weights
  /** where `from` came from: the VirtualService, or the baseline because it was missing */
  fromSource: WeightsState['source']
  to: Weights
  /** whole command: lock, read, apply, propagation */
  elapsedMs: number
  notes: string[]
}

/** The two VirtualServices for a split, validated against the cluster's DestinationRule (or the lab's). */
async function buildSplit(lab: Lab, w: Weights, namespace: string): Promise<{objects: KubeObject[]; notes: string[]}> {
  const notes: string[] = []
  let dr: unknown = buildHelloDestinationRule({namespace})
  if (lab.up) {
    const live = await lab.target.client.get({apiVersion: NETWORKING_API, kind: 'DestinationRule', name: LAB.destinationRule, namespace})
    if (live) dr = live
    else notes.push(`DestinationRule ${namespace}/${LAB.destinationRule} is missing, so subsets v1 and v2 are undefined and requests fail with 503 (mesh lab reset restores it)`)
  }
  const objects = buildHelloVirtualServices(w, {namespace}).map((o) => assertValid(o as unknown as Record<string, unknown>, {destinationRules: [dr]}) as unknown as KubeObject)
  return {objects, notes}
}

/**
 * Set the split to `weights` ("90/10" or {v1, v2}). Bad weights throw MESH_WEIGHTS_* (65)
 * before the cluster is touched.
 */
export async function shiftCanary(lab: Lab, weights: Weights | string, opts: CanaryOptions = {}): Promise<ShiftResult> {
  const to = typeof weights === 'string' ? parseWeights(weights) : checkWeights(weights)
  const namespace = opts.namespace ?? LAB.namespace
  const started = Date.now()
  return locked(lab, opts, async () => {
    await requireNamespace(lab, namespace, [LAB.namespace])
    const current: Pick<WeightsState, 'weights' | 'source' | 'notes'> = lab.up ? await readWeights(lab.target.client, {namespace}) : {weights: {...ROLLBACK_WEIGHTS}, source: 'default', notes: ['the lab is down: the current split is unknown']}
    const {objects, notes} = await buildSplit(lab, to, namespace)
    const report = await applyAndSync(lab, objects, opts)
    return {...report, from: current.weights, fromSource: current.source, to, elapsedMs: Date.now() - started, notes: [...current.notes, ...notes]}
  })
}

export interface StepResult {
  plan: Weights[]
  /** where the weights were on the plan before this step */
  position: PlanPosition
  current: Weights
  /** already at (or past) the last step: nothing changed */
  atLastStep: boolean
  /** the shift that was made; absent at the last step */
  shift?: ShiftResult
}

/** Move to the plan's next step after the current weights; at the last step change nothing. */
export async function stepCanary(lab: Lab, opts: CanaryOptions & {plan?: CanaryPlan} = {}): Promise<StepResult> {
  const plan = opts.plan ?? new CanaryPlan()
  const namespace = opts.namespace ?? LAB.namespace
  return locked(lab, opts, async () => {
    const current = lab.up ? (await readWeights(lab.target.client, {namespace})).weights : plan.first
    const position = plan.position(current)
    const next = plan.next(current)
    if (!next) return {plan: [...plan.steps], position, current, atLastStep: true}
    const shift = await shiftCanary(lab, next, opts)
    return {plan: [...plan.steps], position, current, atLastStep: false, shift}
  })
}

/** Every request back to v1 (100/0). */
export async function rollbackCanary(lab: Lab, opts: CanaryOptions = {}): Promise<ShiftResult> {
  return shiftCanary(lab, ROLLBACK_WEIGHTS, opts)
}

export interface CanaryStatus {
  weights: WeightsState
  plan: Weights[]
  position: PlanPosition
  pods: PodsState
  proxies: ProxiesState
  /** the last `mesh canary run` on this lab, if any */
  run?: CanaryRunProgress
}

export async function canaryStatus(lab: Lab, opts: {namespace?: string; plan?: CanaryPlan} = {}): Promise<CanaryStatus> {
  const plan = opts.plan ?? new CanaryPlan()
  const client = lab.target.client
  const [weights, pods, proxies] = await Promise.all([readWeights(client, opts), readPods(client, opts), readProxies(lab.target)])
  const run = readRunProgress(lab.home)
  return {weights, plan: [...plan.steps], position: plan.position(weights.weights), pods, proxies, ...(run ? {run} : {})}
}

