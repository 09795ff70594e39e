// Safety rules for real clusters: installing or tearing down on a context that does not look
// like a throwaway lab cluster needs --yes, and mesh only deletes or overwrites objects that
// carry its managed-by label.
import {MeshError, EXIT} from '../lib/errors.js'

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by'
export const MANAGED_BY_VALUE = 'mesh'
/** field manager for server-side apply */
export const FIELD_MANAGER = 'mesh'

/** Context names of local lab clusters (the names their tools give contexts by default). */
export const LOCAL_CONTEXT_PATTERNS: readonly RegExp[] = [
  /^kind-.+/,
  /^minikube$/,
  /^k3d-.+/,
  /^docker-desktop$/,
  /^rancher-desktop$/,
  /^orbstack$/,
  /^mesh-local$/,
]

export function isLocalLabContext(name: string): boolean {
  return LOCAL_CONTEXT_PATTERNS.some((re) => re.test(name))
}

export type Confirmation = 'local-context' | 'yes-flag'

/**
 * Allow a destructive or cluster-wide `action` (e.g. "install Istio") on `context`: local lab
 * contexts pass, others need --yes. Throws MESH_UNSAFE_CONTEXT (exit 65) otherwise.
 */
export function requireConfirmation(context: string, action: string, yes: boolean): Confirmation {
  if (isLocalLabContext(context)) return 'local-context'
  if (yes) return 'yes-flag'
  throw new MeshError(
    'MESH_UNSAFE_CONTEXT',
    `refusing to ${action} on context "${context}": it does not look like a local lab cluster (kind-*, minikube, k3d-*, docker-desktop, rancher-desktop, orbstack, mesh-local)`,
    {suggestion: `If "${context}" is a cluster you may change, re-run with --yes.`, field: 'context', exit: EXIT.invalidInput},
  )
}

export interface ObjectLike {
  apiVersion?: string
  kind?: string
  metadata?: {name?: string; namespace?: string; labels?: Record<string, string> | null}
}

export function isManaged(obj: ObjectLike): boolean {
  return obj.metadata?.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE
}

/** `VirtualService hello/hello` style name for messages. */
export function describeObject(obj: ObjectLike): string {
  const ns = obj.metadata?.namespace
  const name = obj.metadata?.name ?? '(unnamed)'
  return `${obj.kind ?? 'object'} ${ns ? `${ns}/` : ''}${name}`
}

/**
 * Throw MESH_NOT_MANAGED (exit 65) unless mesh manages `obj`. Call with the object as it is in
 * the cluster before deleting or overwriting it.
 */
export function assertManaged(obj: ObjectLike, action = 'change'): void {
  if (isManaged(obj)) return
  throw new MeshError(
    'MESH_NOT_MANAGED',
    `refusing to ${action} ${describeObject(obj)}: it is not managed by mesh (no label ${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE})`,
    {
      suggestion: `Delete or rename ${describeObject(obj)} yourself, or add the label ${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE} if mesh should own it.`,
      field: 'metadata.labels',
      exit: EXIT.invalidInput,
    },
  )
}

/** Before writing `desired`: the existing object (if any) must be ours. */
export function assertWritable(existing: ObjectLike | undefined | null, action = 'overwrite'): void {
  if (existing) assertManaged(existing, action)
}

/** Add the managed-by label to an object we are about to create (returns a copy). */
export function withManagedLabel<T extends ObjectLike>(obj: T): T {
  return {
    ...obj,
    metadata: {...obj.metadata, labels: {...(obj.metadata?.labels ?? {}), [MANAGED_BY_LABEL]: MANAGED_BY_VALUE}},
  }
}
