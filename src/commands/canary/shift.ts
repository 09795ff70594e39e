import {Args, Flags} from '@oclif/core'
import {MeshCommand} from '../../lib/command.js'
import {LAB} from '../../mesh/lab.js'
import {parseWeights} from '../../mesh/weights.js'
import {shiftCanary, type ShiftResult} from '../../lab/canary.js'
import {changeFlags, changeOptions, openLabFromFlags, targetFlags} from '../../lab/flags.js'
import {describeChanges, describeSync, dryRunNote, formatMs, splitBars, transition} from '../../lab/render.js'

export default class CanaryShift extends MeshCommand<ShiftResult> {
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
      if (!opts.dryRun) this.ui.stage(`Shifting hello to ${args.weights.trim()}`)
      const r = await shiftCanary(lab, weights, opts).catch((e: unknown) => {
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
