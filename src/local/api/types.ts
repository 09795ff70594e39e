// Contract between the embedded API server's store and the in-process controllers
// (controllers use the store directly, like informers on a real control plane).
import type {KubeObject} from '../dataplane/snapshot.js'

export type {KubeObject}

/** A resource type: group '' is the core group. */
export interface ResourceType {
  group: string
  version: string
  /** plural, lower case: 'pods', 'virtualservices' */
  resource: string
  kind: string
  namespaced: boolean
}

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED'
  object: KubeObject
}

export interface ListOptions {
  labelSelector?: string
  fieldSelector?: string
  limit?: number
  continue?: string
}

export interface ListResult {
  items: KubeObject[]
  resourceVersion: string
  continue?: string
}

export interface Store {
  /** known resource types, for discovery and for controllers to look up kinds */
  types(): ResourceType[]
  typeFor(kindOrResource: string, group?: string): ResourceType | undefined
  get(type: ResourceType, namespace: string | undefined, name: string): KubeObject | undefined
  list(type: ResourceType, namespace: string | undefined, opts?: ListOptions): ListResult
  /** assigns uid, resourceVersion, generation, creationTimestamp; durable when the promise resolves */
  create(type: ResourceType, obj: KubeObject): Promise<KubeObject>
  /** optimistic concurrency: a set metadata.resourceVersion that is not current → 409 Conflict (MeshApiError) */
  update(type: ResourceType, obj: KubeObject): Promise<KubeObject>
  /** status-only update (controllers); does not bump generation */
  updateStatus(type: ResourceType, obj: KubeObject): Promise<KubeObject>
  /** deletes and cascades to objects whose ownerReferences point at it (background GC) */
  delete(type: ResourceType, namespace: string | undefined, name: string): Promise<KubeObject>
  /** events after `fromResourceVersion` (or from now when undefined); returns an unsubscribe function */
  watch(type: ResourceType | undefined, fromResourceVersion: string | undefined, onEvent: (type: ResourceType, ev: WatchEvent) => void): () => void
  /** current store-wide resourceVersion (monotonic across restarts) */
  currentResourceVersion(): string
}

// Added by the API server work: the error class the store throws (HTTP status + Kubernetes reason).
export {MeshApiError, isMeshApiError} from './errors.js'
