// What the embedded API server refuses at write time (422 with field causes), like Istio's
// validating webhook: the domain model's structural + semantic rules for every Istio kind,
// plus the security rules the embedded data plane enforces (e.g. CUSTOM is unsupported here).
import type {FieldCause} from '../lib/errors.js'
import {isIstioObject, validateIstioObject} from '../mesh/index.js'
import type {KubeObject} from './api/types.js'
import {validateAuthorizationPolicySemantics, validatePeerAuthenticationSemantics} from './dataplane/security/validate.js'

export function istioAdmission(obj: KubeObject): FieldCause[] {
  if (!isIstioObject(obj)) return []
  const causes: FieldCause[] = validateIstioObject(obj).map((c) => ({field: c.field, message: c.message, ...(c.value !== undefined ? {value: c.value} : {})}))
  const extra =
    obj.kind === 'AuthorizationPolicy' ? validateAuthorizationPolicySemantics(obj) : obj.kind === 'PeerAuthentication' ? validatePeerAuthenticationSemantics(obj) : []
  for (const c of extra) if (!causes.some((k) => k.field === c.field)) causes.push(c)
  return causes
}
