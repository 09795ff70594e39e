// mTLS mode of a namespace (or mesh-wide): the `default` PeerAuthentication, applied and waited
// for. `mesh mtls status` reads the effective modes (state.ts).
import type {KubeObject} from '../cluster/client.js'
import {LAB} from '../mesh/lab.js'
import {buildPeerAuthentication, parseMtlsMode, type MtlsMode} from '../mesh/security.js'
import {assertValid} from '../mesh/validate.js'
import {applyAndSync, locked, requireNamespace, type ChangeOptions, type ChangeReport} from './change.js'
import type {Lab} from './open-target.js'
import {readMtls, type EffectiveMtlsMode, type MtlsState} from './state.js'

export interface SetMtlsOptions extends ChangeOptions {
  /** default mesh-lab */
  namespace?: string
  /** mesh-wide: the root namespace istio-system */
  mesh?: boolean
}

export interface SetMtlsResult extends ChangeReport {
  scope: 'namespace' | 'mesh'
  namespace: string
  /** the effective mode of that scope before the change (null when the lab was down) */
  from: EffectiveMtlsMode | null
  to: MtlsMode
  elapsedMs: number
}

/** Set STRICT or PERMISSIVE ("strict" etc. accepted). Bad modes throw MESH_MTLS_MODE (65) first. */
export async function setMtls(lab: Lab, mode: string, opts: SetMtlsOptions = {}): Promise<SetMtlsResult> {
  const to = parseMtlsMode(mode)
  const pa = buildPeerAuthentication({mode: to, ...(opts.mesh ? {mesh: true} : {}), ...(opts.namespace !== undefined ? {namespace: opts.namespace} : {})})
  assertValid(pa as unknown as Record<string, unknown>)
  const namespace = pa.metadata.namespace
  const scope = opts.mesh ? 'mesh' : 'namespace'
  const started = Date.now()
  return locked(lab, opts, async () => {
    await requireNamespace(lab, namespace, [LAB.namespace, LAB.rootNamespace])
    let from: EffectiveMtlsMode | null = null
    if (lab.up) {
      const before = await readMtls(lab.target.client, {namespaces: [namespace]})
      from = scope === 'mesh' ? before.mesh.mode : (before.namespaces.find((n) => n.namespace === namespace)?.mode ?? null)
    }
    const report = await applyAndSync(lab, [pa as unknown as KubeObject], opts)
    return {...report, scope, namespace, from, to, elapsedMs: Date.now() - started}
  })
}

export async function mtlsStatus(lab: Lab): Promise<MtlsState> {
  return readMtls(lab.target.client)
}
