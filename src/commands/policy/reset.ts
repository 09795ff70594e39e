import {Flags} from '@oclif/core'
import {MeshCommand} from '../../lib/command.js'
import {changeFlags, changeOptions, openLabFromFlags, targetFlags} from '../../lab/flags.js'
import {resetPolicies, type PolicyResetResult} from '../../lab/policy.js'
import {describeSync, formatMs} from '../../lab/render.js'

export default class PolicyReset extends MeshCommand<PolicyResetResult> {
  static override summary = 'Delete the AuthorizationPolicies mesh manages (never others), then wait for the proxies'
  static override description = 'Only policies labelled app.kubernetes.io/managed-by=mesh are deleted; the others are listed and left as they are.'
  static override examples = ['<%= config.bin %> policy reset', '<%= config.bin %> policy reset --dry-run']
  static override flags = {
    namespace: Flags.string({char: 'n', description: 'only this namespace [default: all namespaces]'}),
    ...changeFlags,
    ...targetFlags,
  }

  async run(): Promise<PolicyResetResult> {
    const {flags} = await this.parse(PolicyReset)
    const opts = {...changeOptions(flags), ...(flags.namespace ? {namespace: flags.namespace} : {})}
    const lab = await openLabFromFlags(flags, {dryRun: opts.dryRun})
    try {
      const r = await resetPolicies(lab, opts)
      const verb = r.dryRun ? 'would delete' : 'deleted'
      if (r.deleted.length === 0) this.out(lab.up ? 'No mesh-managed AuthorizationPolicies to delete.' : 'The lab is down: nothing to list or delete.')
      for (const d of r.deleted) this.out(`${verb} ${d.namespace}/${d.name}`)
      for (const k of r.kept) this.meshWarn('MESH_POLICY_NOT_MANAGED', `left ${k.namespace}/${k.name} in place: it is not managed by mesh (${k.summary})`)
      if (r.dryRun) process.stderr.write('dry run: nothing was deleted\n')
      else if (r.sync) this.out(`${describeSync(r.sync)}; took ${formatMs(r.elapsedMs)} in all`)
      return r
    } finally {
      await lab.close()
    }
  }
}
