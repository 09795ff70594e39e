// Every check `mesh verify` can run, as data: a stable id, what passing means, where the hints
// are (an anchor in docs/verify.md), fatal or warning, and the group it is shown under.
// Runners fill in status, message and evidence; nothing here touches the cluster.
import type {CheckResult, CheckStatus, Severity} from '../checks/report.js'

export const VERIFY_DOC = 'docs/verify.md'

export type CheckId =
  | 'sync'
  | 'split'
  | 'ejection.possible'
  | 'ejection'
  | 'mtls.ingress'
  | 'mtls.meshed'
  | 'mtls.legacy'
  | 'authz.ingress'
  | 'authz.meshed'
  | 'authz.legacy'

export interface CheckSpec {
  id: CheckId
  /** the passing state, one line */
  description: string
  /** docs/verify.md#anchor */
  hintUrl: string
  severity: Severity
  category: string
}

const spec = (id: CheckId, description: string, anchor: string, severity: Severity, category: string): CheckSpec => ({
  id,
  description,
  hintUrl: `${VERIFY_DOC}#${anchor}`,
  severity,
  category,
})

export const CHECKS: Readonly<Record<CheckId, CheckSpec>> = {
  sync: spec('sync', 'every proxy acknowledged the current configuration', 'sync', 'fatal', 'propagation'),
  split: spec('split', 'traffic through the ingress is split as the weights say', 'split', 'fatal', 'traffic split'),
  'ejection.possible': spec('ejection.possible', 'outlier detection can eject an endpoint of subset v1', 'ejection-possible', 'warning', 'outlier ejection'),
  ejection: spec('ejection', 'the faulty v1 endpoint is ejected within the predicted window', 'ejection', 'fatal', 'outlier ejection'),
  'mtls.ingress': spec('mtls.ingress', 'ingress → hello behaves as the PeerAuthentication says', 'mtls', 'fatal', 'mTLS'),
  'mtls.meshed': spec('mtls.meshed', 'meshed client → hello behaves as the PeerAuthentication says', 'mtls', 'fatal', 'mTLS'),
  'mtls.legacy': spec('mtls.legacy', 'legacy client (no sidecar) → hello behaves as the PeerAuthentication says', 'mtls', 'fatal', 'mTLS'),
  'authz.ingress': spec('authz.ingress', 'ingress → hello gets the statuses the AuthorizationPolicies predict', 'authz', 'fatal', 'authorization'),
  'authz.meshed': spec('authz.meshed', 'meshed client → hello gets the statuses the AuthorizationPolicies predict', 'authz', 'fatal', 'authorization'),
  'authz.legacy': spec('authz.legacy', 'legacy client → hello gets the statuses the AuthorizationPolicies predict', 'authz', 'fatal', 'authorization'),
}

/** A result for a catalogued check; `description` may be made specific (e.g. the expected split). */
export function resultOf(
  id: CheckId,
  status: CheckStatus,
  message: string,
  evidence: Record<string, unknown>,
  extra: {description?: string; severity?: Severity; durationMs?: number} = {},
): CheckResult {
  const s = CHECKS[id]
  return {
    id,
    description: extra.description ?? s.description,
    hintUrl: s.hintUrl,
    severity: extra.severity ?? s.severity,
    status,
    message,
    evidence,
    category: s.category,
    ...(extra.durationMs !== undefined ? {durationMs: Math.round(extra.durationMs)} : {}),
  }
}

/** The named checks `mesh verify` can be asked to run, and which of them change the lab. */
export const VERIFY_GROUPS = ['split', 'mtls', 'authz', 'ejection'] as const
export type VerifyGroup = (typeof VERIFY_GROUPS)[number]
/** Groups that change the lab while they run; `mesh verify` runs them only with --include. */
export const INTRUSIVE_GROUPS: readonly VerifyGroup[] = ['ejection']
