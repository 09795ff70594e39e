// Kubeconfig loading with kubectl's rules: `--kubeconfig` wins, else every file in KUBECONFIG
// (path-delimiter separated, missing files skipped), else ~/.kube/config. When files are merged
// the first file to define a name wins, and the first non-empty current-context wins.
import {readFileSync, statSync} from 'node:fs'
import {homedir} from 'node:os'
import {delimiter, dirname, join, resolve} from 'node:path'
import type {Cluster, Context, KubeConfig, User} from '@kubernetes/client-node'
import {load} from 'js-yaml'
import {EXIT, MeshError, invalid} from '../lib/errors.js'
import {clientNode} from './client-node.js'

export interface KubeconfigSource {
  /** `--kubeconfig`: exactly one file, which must exist */
  kubeconfig?: string
  env?: NodeJS.ProcessEnv
}

export interface ContextInfo {
  name: string
  cluster: string
  user: string
  namespace?: string
  /** API server URL of the context's cluster, when the cluster is defined */
  server?: string
  current: boolean
}

export interface LoadedKubeconfig {
  /** the files that were actually read, in precedence order */
  files: string[]
  /**
   * What to hand to child processes (kubectl, istioctl): one path, or a delimiter-joined
   * list when KUBECONFIG named several files. Empty when nothing was found.
   */
  pathSpec: string
  currentContext?: string
  contexts: ContextInfo[]
  /** merged client-node config; its current context is `currentContext` */
  kc: KubeConfig
}

/** The kubeconfig files kubectl would consider, in precedence order. */
export function kubeconfigPaths(src: KubeconfigSource = {}): string[] {
  const env = src.env ?? process.env
  if (src.kubeconfig) return [resolve(src.kubeconfig)]
  if (env.KUBECONFIG) return env.KUBECONFIG.split(delimiter).filter((p) => p !== '').map((p) => resolve(p))
  return [join(env.HOME ?? homedir(), '.kube', 'config')]
}

interface FileConfig {
  clusters: Cluster[]
  users: User[]
  contexts: Context[]
  currentContext?: string
}

function readOne(file: string): FileConfig {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (e) {
    throw invalid('MESH_KUBECONFIG_INVALID', `cannot read kubeconfig ${file}: ${(e as Error).message}`, 'Check the path given to --kubeconfig or KUBECONFIG.', 'kubeconfig')
  }
  let doc: unknown
  try {
    doc = load(text)
  } catch (e) {
    const reason = ((e as Error).message ?? '').split('\n')[0]
    throw invalid('MESH_KUBECONFIG_INVALID', `kubeconfig ${file} is not valid YAML: ${reason}`, `Fix or replace ${file}; \`kubectl config view\` shows what kubectl can read.`, 'kubeconfig')
  }
  if (doc === null || doc === undefined) return {clusters: [], users: [], contexts: []}
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw invalid('MESH_KUBECONFIG_INVALID', `kubeconfig ${file} is not a kubeconfig: expected a mapping with clusters, users and contexts`, `Fix or replace ${file}.`, 'kubeconfig')
  }
  const kc = new (clientNode().KubeConfig)()
  try {
    // client-node checks names, servers and references; throw on the first bad entry
    kc.loadFromString(text, {onInvalidEntry: 'throw'})
  } catch (e) {
    throw invalid('MESH_KUBECONFIG_INVALID', `kubeconfig ${file} has an invalid entry: ${(e as Error).message}`, `Fix or replace ${file}.`, 'kubeconfig')
  }
  // certificate paths inside a kubeconfig are relative to that file
  kc.makePathsAbsolute(dirname(file))
  return {clusters: kc.clusters ?? [], users: kc.users ?? [], contexts: kc.contexts ?? [], currentContext: kc.currentContext || undefined}
}

const exists = (p: string) => {
  try {
    return statSync(p).isFile()
  } catch {
    return false
  }
}

/** Load and merge the kubeconfig files. Throws MESH_KUBECONFIG_INVALID / MESH_KUBECONFIG_NOT_FOUND. */
export function loadKubeconfig(src: KubeconfigSource = {}): LoadedKubeconfig {
  const candidates = kubeconfigPaths(src)
  if (src.kubeconfig && !exists(candidates[0])) {
    throw invalid('MESH_KUBECONFIG_NOT_FOUND', `--kubeconfig ${src.kubeconfig}: no such file`, 'Pass the path of an existing kubeconfig file.', 'kubeconfig')
  }
  const files = candidates.filter(exists)
  const merged: FileConfig = {clusters: [], users: [], contexts: []}
  const seen = {clusters: new Set<string>(), users: new Set<string>(), contexts: new Set<string>()}
  for (const file of files) {
    const one = readOne(file)
    for (const key of ['clusters', 'users', 'contexts'] as const) {
      for (const item of one[key]) {
        if (seen[key].has(item.name)) continue
        seen[key].add(item.name)
        ;(merged[key] as Array<{name: string}>).push(item)
      }
    }
    merged.currentContext ??= one.currentContext
  }
  const kc = new (clientNode().KubeConfig)()
  kc.loadFromOptions({clusters: merged.clusters, users: merged.users, contexts: merged.contexts, currentContext: merged.currentContext ?? ''})
  const contexts = merged.contexts.map((c) => ({
    name: c.name,
    cluster: c.cluster,
    user: c.user,
    ...(c.namespace ? {namespace: c.namespace} : {}),
    ...(kc.getCluster(c.cluster)?.server ? {server: kc.getCluster(c.cluster)!.server} : {}),
    current: c.name === merged.currentContext,
  }))
  return {files, pathSpec: files.join(delimiter), currentContext: merged.currentContext, contexts, kc}
}

/** Context names, current one flagged. */
export function listContexts(src: KubeconfigSource = {}): ContextInfo[] {
  return loadKubeconfig(src).contexts
}

/**
 * The context to use: `name` if given, else the current context. Throws MESH_CONTEXT_NOT_FOUND
 * (exit 65) listing what is available.
 */
export function resolveContext(loaded: LoadedKubeconfig, name?: string): ContextInfo {
  const wanted = name ?? loaded.currentContext
  const found = wanted === undefined ? undefined : loaded.contexts.find((c) => c.name === wanted)
  if (found) return found
  const available = loaded.contexts.map((c) => c.name)
  const where = loaded.files.length > 0 ? loaded.files.join(', ') : 'no kubeconfig file found'
  const list = available.length > 0 ? `available: ${available.join(', ')}` : 'no contexts are defined'
  const message =
    wanted === undefined
      ? `no --context given and the kubeconfig has no current-context (${where}); ${list}`
      : `context "${wanted}" not found in ${where}; ${list}`
  throw new MeshError('MESH_CONTEXT_NOT_FOUND', message, {
    suggestion: 'Run `kubectl config get-contexts` and pass one of them with --context.',
    field: 'context',
    exit: EXIT.invalidInput,
  })
}

/** A client-node KubeConfig whose current context is `context` (validated). */
export function kubeConfigFor(src: KubeconfigSource & {context?: string}): {kc: KubeConfig; context: ContextInfo; loaded: LoadedKubeconfig} {
  const loaded = loadKubeconfig(src)
  const context = resolveContext(loaded, src.context)
  loaded.kc.setCurrentContext(context.name)
  return {kc: loaded.kc, context, loaded}
}

/** How to hand a kubeconfig spec (one path or a KUBECONFIG-style list) to kubectl/istioctl. */
export function childKubeconfig(spec: string): {args: string[]; env: Record<string, string>} {
  return spec.includes(delimiter) ? {args: [], env: {KUBECONFIG: spec}} : {args: ['--kubeconfig', spec], env: {}}
}

/** The loader input for a kubeconfig spec as stored in a target descriptor. */
export function kubeconfigSource(spec: string, env: NodeJS.ProcessEnv = process.env): KubeconfigSource {
  return spec.includes(delimiter) ? {env: {...env, KUBECONFIG: spec}} : {kubeconfig: spec, env}
}
