import {Flags} from '@oclif/core'
import {MeshCommand} from '../../lib/command.js'
import {openLabFromFlags, targetFlags} from '../../lab/flags.js'
import {listPolicies} from '../../lab/policy.js'
import type {PolicyInfo} from '../../lab/state.js'

export default class PolicyList extends MeshCommand<PolicyInfo[]> {
  static override summary = 'List AuthorizationPolicies, marking the ones mesh manages'
  static override examples = ['<%= config.bin %> policy list', '<%= config.bin %> policy list --namespace mesh-lab --json']
  static override flags = {
    namespace: Flags.string({char: 'n', description: 'only this namespace [default: all namespaces]'}),
    ...targetFlags,
  }

  async run(): Promise<PolicyInfo[]> {
    const {flags} = await this.parse(PolicyList)
    const lab = await openLabFromFlags(flags)
    try {
      const list = await listPolicies(lab, flags.namespace ? {namespace: flags.namespace} : {})
      if (list.length === 0) this.out(`No AuthorizationPolicies${flags.namespace ? ` in ${flags.namespace}` : ''}: every request is allowed (mTLS permitting).`)
      for (const p of list) this.out(`${p.managed ? 'mesh ' : 'other'}  ${`${p.namespace}/${p.name}`.padEnd(32)} ${p.summary}`)
      if (list.some((p) => !p.managed)) this.out('("other": not managed by mesh; mesh policy reset leaves it alone)')
      return list
    } finally {
      await lab.close()
    }
  }
}
