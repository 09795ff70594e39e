import {Flags} from '@oclif/core'
import {MeshCommand} from '../../lib/command.js'
import {CanaryPlan} from '../../mesh/canary.js'
import {LAB} from '../../mesh/lab.js'
import {formatWeights} from '../../mesh/weights.js'
import {canaryStatus, type CanaryStatus} from '../../lab/canary.js'
import {openLabFromFlags, targetFlags} from '../../lab/flags.js'
import {splitBars} from '../../lab/render.js'

export default class CanaryStatusCommand extends MeshCommand<CanaryStatus> {
  static override summary = 'Show the current hello split, where it is on the plan, pods per version and proxy sync'
  static override examples = ['<%= config.bin %> canary status', '<%= config.bin %> canary status --json']
  static override flags = {
    steps: Flags.string({description: 'the plan to place the weights on', default: '100/0,90/10,50/50,0/100'}),
    namespace: Flags.string({char: 'n', description: 'namespace of the hello VirtualServices', default: LAB.namespace}),
    ...targetFlags,
  }

  async run(): Promise<CanaryStatus> {
    const {flags} = await this.parse(CanaryStatusCommand)
    const plan = CanaryPlan.parse(flags.steps)
    const lab = await openLabFromFlags(flags)
    try {
      const s = await canaryStatus(lab, {namespace: flags.namespace, plan})
      for (const n of s.weights.notes) this.meshWarn('MESH_CANARY_NOTE', n)
      const w = s.weights.weights
      const where = s.position.onPlan ? `step ${s.position.step} of ${s.position.total}` : `between steps of the plan`
      this.out(`hello ${formatWeights(w)}${s.weights.source === 'default' ? ' (no VirtualService: baseline)' : ''}   ${where} (${plan.toString()})`)
      const bars = splitBars(w)
      for (const [i, v] of (['v1', 'v2'] as const).entries()) {
        const pods = s.pods.versions.find((x) => x.version === v)
        this.out(`${bars[i]}   ${pods ? `${pods.ready}/${pods.total} pods ready` : 'no pods'}`)
      }
      const px = s.proxies
      if (px.error) this.out(`proxies: unknown (${px.error})`)
      else this.out(`proxies: ${px.items.length} connected, ${px.synced ? 'all in sync' : `${px.items.filter((p) => p.state === 'STALE').length} STALE`}`)
      if (s.run) this.out(`last canary run: ${s.run.status}${s.run.lastApplied ? ` at step ${s.run.lastApplied.index + 1} (${formatWeights(s.run.lastApplied.weights)})` : ''}, updated ${s.run.updatedAt}`)
      return s
    } finally {
      await lab.close()
    }
  }
}
