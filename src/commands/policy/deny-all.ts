import {Flags} from '@oclif/core'
import {ChangeCommand} from '../../lib/change-command.js'
import {LAB} from '../../mesh/lab.js'
import {changeFlags, changeOptions, openLabFromFlags, targetFlags} from '../../lab/flags.js'
import {denyAll, type PolicyResult} from '../../lab/policy.js'

export default class PolicyDenyAll extends ChangeCommand<PolicyResult> {
  static override summary = 'Deny every request in a namespace (an ALLOW policy with no rules), then wait for the proxies'
  static override description =
    'Applies AuthorizationPolicy deny-all (spec: {}) in the namespace. Requests to its workloads then get 403 "RBAC: access denied" ' +
    'until an allow policy matches them (mesh policy allow). mesh policy reset removes it.'
  static override examples = ['<%= config.bin %> policy deny-all', '<%= config.bin %> policy deny-all --namespace mesh-lab --dry-run']
  static override flags = {
    namespace: Flags.string({char: 'n', description: 'namespace to lock down', default: LAB.namespace}),
    ...changeFlags,
    ...targetFlags,
  }

  async run(): Promise<PolicyResult> {
    const {flags} = await this.parse(PolicyDenyAll)
    const opts = {...changeOptions(flags), namespace: flags.namespace}
    const lab = await openLabFromFlags(flags, {dryRun: opts.dryRun})
    try {
      const r = await this.whileApplying(`Applying deny-all in ${flags.namespace}`, opts.dryRun, () => denyAll(lab, opts))
      this.printChange(r, () => [`${r.policy.namespace}/${r.policy.name}: ${r.summary}`])
      return r
    } finally {
      await lab.close()
    }
  }
}
