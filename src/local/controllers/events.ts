// Kubernetes Events for what controllers do (scaling, a pod's process dying), so
// `kubectl get events` and `kubectl describe` tell the story. Best effort: a failed event
// write never fails the controller.
import {randomBytes} from 'node:crypto'
import type {KubeObject, Store} from '../api/types.js'
import {coreTypes, now, type Logger} from './util.js'

/** Events older than this are deleted by `prune()` (Kubernetes keeps them an hour by default). */
export const EVENT_TTL_MS = 60 * 60 * 1000

export class EventRecorder {
  private readonly t

  constructor(
    private readonly store: Store,
    private readonly component: string,
    private readonly log: Logger,
  ) {
    this.t = coreTypes(store)
  }

  record(obj: KubeObject, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const ns = obj.metadata.namespace ?? 'default'
    const at = now()
    const ev: KubeObject = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: {name: `${obj.metadata.name}.${randomBytes(8).toString('hex')}`, namespace: ns},
      involvedObject: {
        apiVersion: obj.apiVersion,
        kind: obj.kind,
        name: obj.metadata.name,
        namespace: obj.metadata.namespace,
        uid: obj.metadata.uid,
        resourceVersion: obj.metadata.resourceVersion,
      },
      reason,
      message,
      type,
      source: {component: this.component, host: 'mesh-local'},
      reportingComponent: this.component,
      reportingInstance: 'mesh-local',
      firstTimestamp: at,
      lastTimestamp: at,
      count: 1,
    }
    if (!this.store.get(this.t.namespace, undefined, ns)) return
    this.store.create(this.t.event, ev).catch((e) => this.log(`event ${reason} for ${obj.metadata.name}: ${(e as Error).message}`))
  }

  /** Deletes events past their TTL. */
  async prune(nowMs = Date.now()): Promise<number> {
    let n = 0
    for (const ev of this.store.list(this.t.event, undefined).items) {
      const ts = Date.parse(String(ev.lastTimestamp ?? ev.metadata.creationTimestamp ?? ''))
      if (Number.isFinite(ts) && nowMs - ts > EVENT_TTL_MS) {
        await this.store.delete(this.t.event, ev.metadata.namespace, ev.metadata.name).catch(() => undefined)
        n++
      }
    }
    return n
  }
}
