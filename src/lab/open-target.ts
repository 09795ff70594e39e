// Opens the lab a command works on: picks the target (select.ts rules), checks the embedded
// lab is running; real clusters are RealTarget behind the one Target interface (ADR 0100, 0111).
import {EXIT, MeshError} from '../lib/errors.js'
import {meshdStatus} from '../cluster/meshd-process.js'
import {selectTarget, type TargetDescriptor} from '../cluster/select.js'
import {EmbeddedTarget, canExec, labDownError, type PodExec, type Target} from '../cluster/target.js'
import {meshHome} from '../local/home.js'

export {canExec, type ExecOptions, type ExecResult, type PodExec} from '../cluster/target.js'

/** The lab a command works on. */
export interface Lab {
  target: Target
  /** mesh home: the lock, canary-run.json and target.json live here */
  home: string
  descriptor: Pick<TargetDescriptor, 'kind' | 'context' | 'kubeconfigPath'> & {source?: TargetDescriptor['source']}
  /** the cluster answered (embedded: meshd runs); false only when opened with requireUp: false */
  up: boolean
  /** stop port-forwards and the like */
  close(): Promise<void>
}

export interface OpenLabOptions {
  home?: string
  /** --context: a real cluster */
  context?: string
  /** --kubeconfig */
  kubeconfig?: string
  env?: NodeJS.ProcessEnv
  /** default true: a lab that is down is MESH_LAB_DOWN (69); false lets --dry-run work offline */
  requireUp?: boolean
}

/** Wrap an already-built target (tests, other libraries). */
export function labFor(target: Target, home: string, opts: {up?: boolean; close?: () => Promise<void>} = {}): Lab {
  return {
    target,
    home,
    descriptor: {kind: target.kind, context: target.context, kubeconfigPath: target.kubeconfigPath},
    up: opts.up ?? true,
    close: opts.close ?? (async () => (target as Partial<{close(): Promise<void>}>).close?.()),
  }
}

/**
 * The lab of this home: --context/MESH_CONTEXT → a real cluster (unknown context →
 * MESH_CONTEXT_NOT_FOUND, 65), else the remembered target, else the embedded cluster, which
 * must be running (MESH_LAB_DOWN, 69) unless requireUp is false.
 */
export async function openLab(opts: OpenLabOptions = {}): Promise<Lab> {
  const env = opts.env ?? process.env
  const home = opts.home ?? meshHome(env)
  const d = selectTarget({context: opts.context, kubeconfig: opts.kubeconfig, home, env})
  if (d.kind === 'embedded') {
    const target = new EmbeddedTarget(home)
    const up = meshdStatus(home).running
    if (!up && opts.requireUp !== false) throw labDownError(home)
    return {target, home, descriptor: d, up, close: async () => {}}
  }
  // loaded only for real clusters: it brings execa and the istioctl code along
  const {targetFor} = await import('../cluster/open.js')
  const target = targetFor(d, {env, home})
  return {target, home, descriptor: d, up: true, close: () => target.close()}
}

/** The lab must be reachable for this operation. */
export function requireUp(lab: Lab): void {
  if (!lab.up) throw labDownError(lab.home)
}

/** Guard for library entry points that need a real cluster's exec. */
export function requireExec(t: Target): PodExec {
  if (canExec(t)) return t
  throw new MeshError('MESH_INTERNAL', `target ${t.kind}/${t.context} cannot exec into pods`, {exit: EXIT.internal})
}
