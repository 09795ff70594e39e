// What `mesh render <what>` prints: validated objects for one part of the lab.
import {LAB, fail} from './lab.js'
import type {MeshWarning} from './codes.js'
import {labBaseline} from './baseline.js'
import {buildAllowPolicy, buildDenyAll, buildPeerAuthentication, parseSelector} from './security.js'
import {buildGateway, buildHelloDestinationRule, buildHelloVirtualServices, checkEjectionPossible} from './traffic.js'
import {assertValid} from './validate.js'
import {parseWeights} from './weights.js'
import {dumpYamlObjects} from './yaml.js'

export interface Rendered {
  what: string
  objects: Record<string, unknown>[]
  warnings: MeshWarning[]
}

const done = (what: string, objects: object[], ctx: {destinationRules?: unknown[]} = {}, warnings: MeshWarning[] = []): Rendered => ({
  what,
  objects: objects.map((o) => assertValid(o as Record<string, unknown>, ctx)),
  warnings,
})

/** Both hello VirtualServices for "V1/V2", checked against the lab DestinationRule's subsets. */
export function renderCanary(weights: string, opts: {namespace?: string} = {}): Rendered {
  const w = parseWeights(weights)
  const dr = buildHelloDestinationRule(opts)
  return done('canary', buildHelloVirtualServices(w, opts), {destinationRules: [dr]})
}

export function renderMtls(mode: string, opts: {namespace?: string; mesh?: boolean} = {}): Rendered {
  return done('mtls', [buildPeerAuthentication({mode, ...opts})])
}

export interface RenderPolicyOptions {
  namespace?: string
  name?: string
  selector?: string[]
  methods?: string[]
  paths?: string[]
  principals?: string[]
  namespaces?: string[]
}

export const POLICY_KINDS = ['deny-all', 'allow'] as const

export function renderPolicy(kind: string, opts: RenderPolicyOptions = {}): Rendered {
  if (kind === 'deny-all') return done('policy', [buildDenyAll(opts.namespace ?? LAB.namespace)])
  if (kind !== 'allow') fail('MESH_POLICY_KIND', `policy "${kind}" is not one of ${POLICY_KINDS.join(', ')}`, 'policy')
  const policy = buildAllowPolicy({
    name: opts.name,
    namespace: opts.namespace,
    selector: opts.selector?.length ? parseSelector(opts.selector) : undefined,
    methods: opts.methods,
    paths: opts.paths,
    principals: opts.principals,
    namespaces: opts.namespaces,
  })
  return done('policy', [policy])
}

/** The lab DestinationRule; warns when subset v1 with `endpoints` endpoints could never eject one. */
export function renderDestinationRule(opts: {namespace?: string; circuitBreaker?: boolean; endpoints?: number} = {}): Rendered {
  const dr = buildHelloDestinationRule({namespace: opts.namespace, variant: opts.circuitBreaker ? 'circuit-breaker' : 'baseline'})
  const warning = checkEjectionPossible(dr, opts.endpoints ?? LAB.v1EndpointsWithFaulty, 'v1')
  return done('destination-rule', [dr], {}, warning ? [warning] : [])
}

export const renderGateway = (opts: {namespace?: string} = {}): Rendered => done('gateway', [buildGateway(opts)])

export function renderBaseline(): Rendered {
  const objects = labBaseline()
  return done('baseline', objects, {destinationRules: objects.filter((o) => o.kind === 'DestinationRule')})
}

export const renderedYaml = (r: Rendered): string => dumpYamlObjects(r.objects)
