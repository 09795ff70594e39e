import {Flags} from '@oclif/core'
import {MeshCommand} from '../../lib/command.js'
import {LAB} from '../../mesh/lab.js'
import {rollbackCanary, type ShiftResult} from '../../lab/canary.js'
import {changeFlags, changeOptions, openLabFromFlags, targetFlags} from '../../lab/flags.js'
import {describeChanges, describeSync, dryRunNote, formatMs, splitBars, transition} from '../../lab/render.js'

export default class CanaryRollback extends MeshCommand<ShiftResult> {
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
      if (!opts.dryRun) this.ui.stage('Rolling back to 100/0')
      const r = await rollbackCanary(lab, opts).catch((e: unknown) => {
        this.ui.fail()
        throw e
      })
      if (r.dryRun) {
        for (const n of r.notes) this.meshWarn('MESH_CANARY_NOTE', n)
        this.out(r.yaml.trimEnd())
        process.stderr.write(`${dryRunNote(r)}\n`)
        return r
      }
      this.ui.succeed(describeChanges(r.changes))
      for (const n of r.notes) this.meshWarn('MESH_CANARY_NOTE', n)
      this.out(transition(r.from, r.to))
      for (const line of splitBars(r.to)) this.out(line)
      this.out(`${describeSync(r.sync!)}; took ${formatMs(r.elapsedMs)} in all`)
      return r
    } finally {
      await lab.close()
    }
  }
}
