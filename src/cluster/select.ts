// Which cluster a command talks to: --context (or MESH_CONTEXT) means a real cluster; without
// it, the target `mesh lab up` remembered in <home>/target.json; without that, the embedded one.
import {mkdirSync, readFileSync, renameSync, rmSync, writeFileSync} from 'node:fs'
import {join, resolve} from 'node:path'
import {MeshError, EXIT} from '../lib/errors.js'
import {KUBE_CONTEXT, homePaths, meshHome} from '../local/home.js'
import {loadKubeconfig, resolveContext} from './kubeconfig.js'

export type TargetKind = 'embedded' | 'real'

export interface TargetDescriptor {
  kind: TargetKind
  context: string
  /** kubeconfig for this target: one path or a path-delimiter list (KUBECONFIG style) */
  kubeconfigPath: string
  /** how it was chosen */
  source: 'flag' | 'env' | 'remembered' | 'default'
}

export interface SelectOptions {
  /** --context */
  context?: string
  /** --kubeconfig */
  kubeconfig?: string
  home?: string
  env?: NodeJS.ProcessEnv
  /** skip checking that a real context exists in the kubeconfig (e.g. for `lab down` of a deleted cluster) */
  skipContextCheck?: boolean
}

/** The context name of the embedded cluster in the kubeconfig `mesh lab up` writes. */
export const EMBEDDED_CONTEXT = KUBE_CONTEXT

/** mesh's state directory: MESH_HOME, else ~/.mesh (same rule as meshd's) */
export {meshHome}

/** Where the embedded cluster's kubeconfig lives (meshd writes it there). */
export const embeddedKubeconfigPath = (home: string) => homePaths(home).kubeconfig

const targetFile = (home: string) => join(home, 'target.json')

export function selectTarget(opts: SelectOptions = {}): TargetDescriptor {
  const env = opts.env ?? process.env
  const home = opts.home ?? meshHome(env)
  const flagContext = opts.context ?? undefined
  const envContext = env.MESH_CONTEXT || undefined
  const explicit = flagContext ?? envContext
  if (explicit !== undefined) {
    return realDescriptor(explicit, flagContext !== undefined ? 'flag' : 'env', opts, env)
  }
  const remembered = loadTarget(home)
  if (remembered) {
    if (remembered.kind === 'real') {
      // a --kubeconfig flag still overrides where the remembered context is looked up
      const kubeconfigPath = opts.kubeconfig ? resolve(opts.kubeconfig) : remembered.kubeconfigPath
      if (!opts.skipContextCheck) resolveContext(loadKubeconfig({kubeconfig: opts.kubeconfig, env: {...env, KUBECONFIG: kubeconfigPath}}), remembered.context)
      return {...remembered, kubeconfigPath, source: 'remembered'}
    }
    return {...remembered, source: 'remembered'}
  }
  return {kind: 'embedded', context: EMBEDDED_CONTEXT, kubeconfigPath: embeddedKubeconfigPath(home), source: 'default'}
}

function realDescriptor(context: string, source: 'flag' | 'env', opts: SelectOptions, env: NodeJS.ProcessEnv): TargetDescriptor {
  const loaded = loadKubeconfig({kubeconfig: opts.kubeconfig, env})
  if (!opts.skipContextCheck) resolveContext(loaded, context)
  const kubeconfigPath = opts.kubeconfig ? resolve(opts.kubeconfig) : loaded.pathSpec
  return {kind: 'real', context, kubeconfigPath, source}
}

/** Remember the lab's target (written by `mesh lab up`), atomically. */
export function rememberTarget(home: string, target: Omit<TargetDescriptor, 'source'> & {source?: TargetDescriptor['source']}): void {
  mkdirSync(home, {recursive: true})
  const body = {kind: target.kind, context: target.context, kubeconfigPath: target.kubeconfigPath, rememberedAt: new Date().toISOString()}
  const tmp = `${targetFile(home)}.${process.pid}.tmp`
  writeFileSync(tmp, JSON.stringify(body, null, 2) + '\n')
  renameSync(tmp, targetFile(home))
}

/** The remembered target, or undefined. A corrupt file is MESH_TARGET_INVALID (exit 65). */
export function loadTarget(home: string): Omit<TargetDescriptor, 'source'> | undefined {
  let text: string
  try {
    text = readFileSync(targetFile(home), 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw e
  }
  let doc: Partial<TargetDescriptor>
  try {
    doc = JSON.parse(text) as Partial<TargetDescriptor>
  } catch {
    doc = {}
  }
  if ((doc.kind !== 'embedded' && doc.kind !== 'real') || typeof doc.context !== 'string' || typeof doc.kubeconfigPath !== 'string') {
    throw new MeshError('MESH_TARGET_INVALID', `${targetFile(home)} does not describe a lab target (expected kind, context, kubeconfigPath)`, {
      suggestion: `Delete ${targetFile(home)} and run \`mesh lab up\` again, or pass --context.`,
      field: 'target',
      exit: EXIT.invalidInput,
    })
  }
  return {kind: doc.kind, context: doc.context, kubeconfigPath: doc.kubeconfigPath}
}

/** Forget the remembered target (`mesh lab down --purge`). */
export function forgetTarget(home: string): void {
  rmSync(targetFile(home), {force: true})
}
