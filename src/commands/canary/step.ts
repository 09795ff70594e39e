import {Flags} from '@oclif/core'
import {ChangeCommand} from '../../lib/change-command.js'
import {CanaryPlan} from '../../mesh/canary.js'
import {LAB} from '../../mesh/lab.js'
import {formatWeights} from '../../mesh/weights.js'
import {stepCanary, type StepResult} from '../../lab/canary.js'
import {changeFlags, changeOptions, openLabFromFlags, targetFlags} from '../../lab/flags.js'
import {splitBars, transition} from '../../lab/render.js'

export default class CanaryStep extends ChangeCommand<StepResult> {
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
      const r = await this.whileApplying('Stepping the canary', opts.dryRun, () => stepCanary(lab, opts))
      if (r.atLastStep) {
        this.ui.succeed('Nothing to do')
        this.out(`Already at the last step (${formatWeights(r.current)}) of ${plan.toString()}; nothing changed.`)
        return r
      }
      const s = r.shift!
      const idx = plan.steps.findIndex((x) => x.v1 === s.to.v1 && x.v2 === s.to.v2)
      this.printChange(s, () => [`${transition(s.from, s.to)}   step ${idx + 1} of ${plan.steps.length} (${plan.toString()})`, ...splitBars(s.to)], 'MESH_CANARY_NOTE')
      return r
    } finally {
      await lab.close()
    }
  }
}
