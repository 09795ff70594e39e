import {Flags} from '@oclif/core'
import {ChangeCommand} from '../../lib/change-command.js'
import {LAB} from '../../mesh/lab.js'
import {rollbackCanary, type ShiftResult} from '../../lab/canary.js'
import {changeFlags, changeOptions, openLabFromFlags, targetFlags} from '../../lab/flags.js'
import {splitBars, transition} from '../../lab/render.js'

export default class CanaryRollback extends ChangeCommand<ShiftResult> {
  static override summary = 'Send every request back to v1 (100/0) and wait until the proxies have it'
  static override examples = ['<%= config.bin %> canary rollback', '<%= config.bin %> canary rollback --json']
  static override flags = {
    namespace: Flags.string({char: 'n', description: 'namespace of the hello VirtualServices', default: LAB.namespace}),
    ...changeFlags,
    ...targetFlags,
  }

  async run(): Promise<ShiftResult> {
    const {flags} = await this.parse(CanaryRollback)
    const opts = {...changeOptions(flags), namespace: flags.namespace}
    const lab = await openLabFromFlags(flags, {dryRun: opts.dryRun})
    try {
      const r = await this.whileApplying('Rolling back to 100/0', opts.dryRun, () => rollbackCanary(lab, opts))
      this.printChange(r, () => [transition(r.from, r.to), ...splitBars(r.to)], 'MESH_CANARY_NOTE')
      return r
    } finally {
      await lab.close()
    }
  }
}
