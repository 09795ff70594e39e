// Whether mesh installed the cluster's Istio lives in the cluster itself: ConfigMap
// istio-system/mesh-state, labelled managed-by mesh (ADR 0080). `lab down --purge` uninstalls
// Istio only when that record exists, so an Istio someone else installed is never removed.
import {CoreV1Api, type KubeConfig, type V1ConfigMap} from '@kubernetes/client-node'
import {FIELD_MANAGER, MANAGED_BY_LABEL, MANAGED_BY_VALUE, assertManaged, isManaged} from '../cluster/guard.js'
import {unavailable} from '../lib/errors.js'

export const ISTIO_NAMESPACE = 'istio-system'
export const INSTALL_RECORD_NAME = 'mesh-state'

export interface InstallRecord {
  istioVersion: string
  profile: string
  revision?: string
  installedAt: string
  /** the istioctl client version that ran the install */
  istioctlVersion?: string
}

const statusOf = (e: unknown): number | undefined => {
  const err = e as {code?: number; statusCode?: number; response?: {httpStatusCode?: number}}
  return typeof err?.code === 'number' ? err.code : err?.statusCode ?? err?.response?.httpStatusCode
}

const apiError = (what: string, e: unknown) =>
  unavailable('MESH_CLUSTER_API', `${what} failed: ${(e as Error).message?.split('\n')[0] ?? String(e)}`, 'Check the cluster is reachable (`kubectl get ns`) and that you may read ConfigMaps in istio-system.', e)

/** The record if mesh installed Istio here; undefined if there is none or it is not ours. */
export async function readInstallRecord(kc: KubeConfig): Promise<InstallRecord | undefined> {
  const core = kc.makeApiClient(CoreV1Api)
  let cm: V1ConfigMap
  try {
    cm = await core.readNamespacedConfigMap({name: INSTALL_RECORD_NAME, namespace: ISTIO_NAMESPACE})
  } catch (e) {
    if (statusOf(e) === 404) return undefined
    throw apiError(`reading ${ISTIO_NAMESPACE}/${INSTALL_RECORD_NAME}`, e)
  }
  if (!isManaged({metadata: {labels: cm.metadata?.labels}})) return undefined
  const d = cm.data ?? {}
  if (d.installedBy !== MANAGED_BY_VALUE || !d.istioVersion) return undefined
  return {
    istioVersion: d.istioVersion,
    profile: d.profile ?? '',
    installedAt: d.installedAt ?? '',
    ...(d.revision ? {revision: d.revision} : {}),
    ...(d.istioctlVersion ? {istioctlVersion: d.istioctlVersion} : {}),
  }
}

export async function writeInstallRecord(kc: KubeConfig, rec: InstallRecord): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api)
  const body: V1ConfigMap = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {name: INSTALL_RECORD_NAME, namespace: ISTIO_NAMESPACE, labels: {[MANAGED_BY_LABEL]: MANAGED_BY_VALUE}},
    data: {
      installedBy: MANAGED_BY_VALUE,
      istioVersion: rec.istioVersion,
      profile: rec.profile,
      installedAt: rec.installedAt,
      ...(rec.revision ? {revision: rec.revision} : {}),
      ...(rec.istioctlVersion ? {istioctlVersion: rec.istioctlVersion} : {}),
    },
  }
  try {
    await core.createNamespacedConfigMap({namespace: ISTIO_NAMESPACE, body, fieldManager: FIELD_MANAGER})
  } catch (e) {
    if (statusOf(e) !== 409) throw apiError(`creating ${ISTIO_NAMESPACE}/${INSTALL_RECORD_NAME}`, e)
    // never overwrite a ConfigMap of that name that someone else owns
    const existing = await core.readNamespacedConfigMap({name: INSTALL_RECORD_NAME, namespace: ISTIO_NAMESPACE}).catch((e3: unknown) => {
      throw apiError(`reading ${ISTIO_NAMESPACE}/${INSTALL_RECORD_NAME}`, e3)
    })
    assertManaged({kind: 'ConfigMap', metadata: {name: INSTALL_RECORD_NAME, namespace: ISTIO_NAMESPACE, labels: existing.metadata?.labels}}, 'overwrite')
    try {
      await core.replaceNamespacedConfigMap({name: INSTALL_RECORD_NAME, namespace: ISTIO_NAMESPACE, body, fieldManager: FIELD_MANAGER})
    } catch (e2) {
      throw apiError(`updating ${ISTIO_NAMESPACE}/${INSTALL_RECORD_NAME}`, e2)
    }
  }
}

export async function deleteInstallRecord(kc: KubeConfig): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api)
  try {
    await core.deleteNamespacedConfigMap({name: INSTALL_RECORD_NAME, namespace: ISTIO_NAMESPACE})
  } catch (e) {
    if (statusOf(e) !== 404) throw apiError(`deleting ${ISTIO_NAMESPACE}/${INSTALL_RECORD_NAME}`, e)
  }
}
