// One entry point for every command: pick the target with select.ts's rules (--context /
// MESH_CONTEXT → real, else the remembered target, else embedded) and build it. Opening does not
// contact the cluster; the first API call does (embedded and down → MESH_LAB_DOWN, 69).
import {meshHome} from '../local/home.js'
import {RealTarget} from './real-target.js'
import {selectTarget, type TargetDescriptor} from './select.js'
import {EmbeddedTarget, type Target} from './target.js'

export interface OpenTargetOptions {
  /** --context (a real cluster) */
  context?: string
  /** --kubeconfig */
  kubeconfig?: string
  /** mesh home (default $MESH_HOME or ~/.mesh) */
  home?: string
  env?: NodeJS.ProcessEnv
  /** pinned Istio version a real target downloads/checks istioctl for */
  istioVersion?: string
  /** don't require a real context to exist in the kubeconfig (e.g. tearing down a deleted cluster) */
  skipContextCheck?: boolean
}

/** A target plus how it was chosen; `close()` stops port-forwards a real target opened. */
export type OpenedTarget = Target & {
  readonly descriptor: TargetDescriptor
  close(): Promise<void>
}

/**
 * The target a command works on. Unknown --context → MESH_CONTEXT_NOT_FOUND (65); a missing
 * --kubeconfig → MESH_KUBECONFIG_NOT_FOUND (65). Call `close()` when done (real targets may hold a
 * port-forward to the ingress).
 */
export async function openTarget(opts: OpenTargetOptions = {}): Promise<OpenedTarget> {
  const env = opts.env ?? process.env
  const home = opts.home ?? meshHome(env)
  const descriptor = selectTarget({context: opts.context, kubeconfig: opts.kubeconfig, home, env, skipContextCheck: opts.skipContextCheck})
  return targetFor(descriptor, {home, env, istioVersion: opts.istioVersion})
}

/** Build the target a descriptor names (no I/O). */
export function targetFor(descriptor: TargetDescriptor, opts: {home?: string; env?: NodeJS.ProcessEnv; istioVersion?: string} = {}): OpenedTarget {
  const env = opts.env ?? process.env
  const home = opts.home ?? meshHome(env)
  if (descriptor.kind === 'embedded') {
    const t = new EmbeddedTarget(home) as EmbeddedTarget & {descriptor: TargetDescriptor; close(): Promise<void>}
    t.descriptor = descriptor
    t.close = async () => {}
    return t
  }
  const t = RealTarget.fromDescriptor(descriptor, {env, home, ...(opts.istioVersion ? {istioVersion: opts.istioVersion} : {})}) as RealTarget & {descriptor: TargetDescriptor}
  t.descriptor = descriptor
  return t
}
