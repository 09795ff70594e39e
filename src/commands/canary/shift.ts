import {Args, Flags} from '@oclif/core'
import {ChangeCommand} from '../../lib/change-command.js'
import {LAB} from '../../mesh/lab.js'
import {parseWeights} from '../../mesh/weights.js'
import {shiftCanary, type ShiftResult} from '../../lab/canary.js'
import {changeFlags, changeOptions, openLabFromFlags, targetFlags} from '../../lab/flags.js'
import {splitBars, transition} from '../../lab/render.js'

export default class CanaryShift extends ChangeCommand<ShiftResult> {
  static override summary = 'Set the hello split between v1 and v2, e.g. 90/10, and wait until the proxies have it'
  static override description =
    'Applies both hello VirtualServices (sidecars and ingress) with the new weights as field manager mesh, waits until every proxy ' +
    'acknowledged the change, then prints old → new with a bar per version and how long propagation took. Weights are two whole ' +
    'numbers 0–100 that add up to 100, v1 first; anything else exits 65 and changes nothing.'
  static override examples = [
    '<%= config.bin %> canary shift 90/10',
    '<%= config.bin %> canary shift 0/100 --json',
    '<%= config.bin %> canary shift 50/50 --dry-run',
    '<%= config.bin %> canary shift 90/10 --context kind-mesh',
  ]
  static override args = {
    weights: Args.string({required: true, description: 'V1/V2 weights, e.g. 90/10', ignoreStdin: true}),
  }
  static override flags = {
    namespace: Flags.string({char: 'n', description: 'namespace of the hello VirtualServices', default: LAB.namespace}),
    ...changeFlags,
    ...targetFlags,
  }

  async run(): Promise<ShiftResult> {
    const {args, flags} = await this.parse(CanaryShift)
    const weights = parseWeights(args.weights)
    const opts = {...changeOptions(flags), namespace: flags.namespace}
    const lab = await openLabFromFlags(flags, {dryRun: opts.dryRun})
    try {
      const r = await this.whileApplying(`Shifting hello to ${args.weights.trim()}`, opts.dryRun, () => shiftCanary(lab, weights, opts))
      this.printChange(r, () => [transition(r.from, r.to), ...splitBars(r.to)], 'MESH_CANARY_NOTE')
      return r
    } finally {
      await lab.close()
    }
  }
}
