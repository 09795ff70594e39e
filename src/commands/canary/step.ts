import {Flags} from '@oclif/core'
import {MeshCommand} from '../../lib/command.js'
import {CanaryPlan} from '../../mesh/canary.js'
import {LAB} from '../../mesh/lab.js'
import {formatWeights} from '../../mesh/weights.js'
import {stepCanary, type StepResult} from '../../lab/canary.js'
import {changeFlags, changeOptions, openLabFromFlags, targetFlags} from '../../lab/flags.js'
import {describeChanges, describeSync, dryRunNote, formatMs, splitBars, transition} from '../../lab/render.js'

export default class CanaryStep extends MeshCommand<StepResult> {
  static override summary = 'Move the split to the next step of the canary plan (100/0 → 90/10 → 50/50 → 0/100)'
  static override description =
    'Reads the current weights, picks the plan step after them and shifts to it (waiting for the proxies). At the last step it says ' +
    'so, changes nothing and exits 0. --steps sets another plan; each step must send more to v2 than the one before.'
  static override examples = ['<%= config.bin %> canary step', '<%= config.bin %> canary step --steps 100/0,80/20,0/100']
  static override flags = {
    steps: Flags.string({description: 'the plan: comma-separated V1/V2 steps', default: '100/0,90/10,50/50,0/100'}),
    namespace: Flags.string({char: 'n', description: 'namespace of the hello VirtualServices', default: LAB.namespace}),
    ...changeFlags,
    ...targetFlags,
  }

  async run(): Promise<StepResult> {
    const {flags} = await this.parse(CanaryStep)
    const plan = CanaryPlan.parse(flags.steps)
    const opts = {...changeOptions(flags), namespace: flags.namespace, plan}
    const lab = await openLabFromFlags(flags, {dryRun: opts.dryRun})
    try {
      if (!opts.dryRun) this.ui.stage('Stepping the canary')
      const r = await stepCanary(lab, opts).catch((e: unknown) => {
        this.ui.fail()
        throw e
      })
      if (r.atLastStep) {
        this.ui.succeed('Nothing to do')
        this.out(`Already at the last step (${formatWeights(r.current)}) of ${plan.toString()}; nothing changed.`)
        return r
      }
      const s = r.shift!
      if (s.dryRun) {
        for (const n of s.notes) this.meshWarn('MESH_CANARY_NOTE', n)
        this.out(s.yaml.trimEnd())
        process.stderr.write(`${dryRunNote(s)}\n`)
        return r
      }
      const idx = plan.steps.findIndex((x) => x.v1 === s.to.v1 && x.v2 === s.to.v2)
      this.ui.succeed(describeChanges(s.changes))
      for (const n of s.notes) this.meshWarn('MESH_CANARY_NOTE', n)
      this.out(`${transition(s.from, s.to)}   step ${idx + 1} of ${plan.steps.length} (${plan.toString()})`)
      for (const line of splitBars(s.to)) this.out(line)
      this.out(`${describeSync(s.sync!)}; took ${formatMs(s.elapsedMs)} in all`)
      return r
    } finally {
      await lab.close()
    }
  }
}
