import {Flags} from '@oclif/core'
import {MeshCommand} from '../../lib/command.js'
import {LAB} from '../../mesh/lab.js'
import {changeFlags, changeOptions, openLabFromFlags, targetFlags} from '../../lab/flags.js'
import {denyAll, type PolicyResult} from '../../lab/policy.js'
import {describeChanges, describeSync, dryRunNote, formatMs} from '../../lab/render.js'

export default class PolicyDenyAll extends MeshCommand<PolicyResult> {
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
      if (!opts.dryRun) this.ui.stage(`Applying deny-all in ${flags.namespace}`)
      const r = await denyAll(lab, opts).catch((e: unknown) => {
        this.ui.fail()
        throw e
      })
      if (r.dryRun) {
        this.out(r.yaml.trimEnd())
        process.stderr.write(`${dryRunNote(r)}\n`)
        return r
      }
      this.ui.succeed(describeChanges(r.changes))
      this.out(`${r.policy.namespace}/${r.policy.name}: ${r.summary}`)
      this.out(`${describeSync(r.sync!)}; took ${formatMs(r.elapsedMs)} in all`)
      return r
    } finally {
      await lab.close()
    }
  }
}
