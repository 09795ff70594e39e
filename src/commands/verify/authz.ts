import {outputFlags, securityFlags, securityOptions} from '../../verify/flags.js'
import {targetFlags} from '../../lab/flags.js'
import {VerifyCommand, type VerifyResult} from './index.js'

export default class VerifyAuthz extends VerifyCommand {
  static override summary = 'Authorization matrix: 200/403 per caller × method × path, against the AuthorizationPolicies in force'
  static override description =
    'For each caller (ingress, meshed, legacy), method (default GET and POST) and path (default /hello), computes the decision of the ' +
    'AuthorizationPolicies with the same engine the embedded proxies use (CUSTOM, DENY, then ALLOW; no ALLOW policy = allow; Istio ' +
    'semantics, so it holds for a real cluster too), after mTLS (a reset comes before any policy). Then makes the calls and compares: ' +
    '"denied" is 403 RBAC: access denied from the sidecar; "allowed" is whatever the application answers (helloworld answers POST with ' +
    '405). Exit 0 as predicted, 1 a difference, 69 lab down.'
  static override examples = ['<%= config.bin %> verify authz', '<%= config.bin %> verify authz --method GET --method DELETE --path /hello --path /health']
  static override flags = {...securityFlags, ...outputFlags, ...targetFlags}

  async run(): Promise<VerifyResult> {
    const {flags} = await this.parse(VerifyAuthz)
    const sec = securityOptions(flags)
    return this.execute(flags, () => ({only: ['authz'], authz: sec}))
  }
}
