import {Flags} from '@oclif/core'
import {MeshCommand} from '../../lib/command.js'
import {CanaryPlan} from '../../mesh/canary.js'
import {LAB} from '../../mesh/lab.js'
import {formatWeights} from '../../mesh/weights.js'
import {runCanary, type CanaryRunEvent, type CanaryRunResult} from '../../lab/canary-run.js'
import {changeFlags, changeOptions, durationFlag, openLabFromFlags, targetFlags} from '../../lab/flags.js'
import {describeSync, formatMs, splitBars, transition} from '../../lab/render.js'
import {invalid} from '../../lib/errors.js'

const {'dry-run': _dryRun, ...runChangeFlags} = changeFlags

export default class CanaryRun extends MeshCommand<CanaryRunResult> {
  static override summary = 'Walk the canary plan with an analysis gate after each step; roll back to 100/0 if a gate fails'
  static override description =
    'Starts from the current weights and moves step by step along the plan. After each step the gate drives traffic through the ' +
    'ingress and runs the sequential split check (expected: that step\'s weights) plus an error-rate limit. A failed gate rolls back ' +
    'to 100/0 and exits 1; an inconclusive one rolls back and exits 2. Ctrl-C stops at once and leaves the last applied step in place ' +
    '(exit 130); running the command again resumes from there (progress in <home>/canary-run.json).'
  static override examples = [
    '<%= config.bin %> canary run',
    '<%= config.bin %> canary run --steps 100/0,50/50,0/100 --interval 10s',
    '<%= config.bin %> canary run --analysis none --interval 0s',
  ]
  static override flags = {
    steps: Flags.string({description: 'the plan: comma-separated V1/V2 steps', default: '100/0,90/10,50/50,0/100'}),
    interval: Flags.string({description: 'pause after each passed gate, e.g. 5s (0s for none)', default: '5s'}),
    analysis: Flags.string({description: 'gate after each step: split (split check + error rate) or none', default: 'split'}),
    'max-requests': Flags.integer({description: 'request budget of one gate', default: 5000, min: 1}),
    tolerance: Flags.integer({description: 'accepted deviation of the v2 share, percentage points', default: 5, min: 1, max: 50}),
    'max-error-rate': Flags.string({description: 'fail a gate above this error share, e.g. 5% or 0.05', default: '5%'}),
    'max-p99': Flags.string({description: 'fail a gate whose p99 latency is above this, e.g. 250ms [default: no limit]'}),
    namespace: Flags.string({char: 'n', description: 'namespace of the hello VirtualServices', default: LAB.namespace}),
    ...runChangeFlags,
    ...targetFlags,
  }

  async run(): Promise<CanaryRunResult> {
    const {flags} = await this.parse(CanaryRun)
    const plan = CanaryPlan.parse(flags.steps)
    const intervalMs = durationFlag(flags.interval, 'interval', {allowZero: true})
    const analysis = flags.analysis.trim().toLowerCase()
    if (analysis !== 'split' && analysis !== 'none') {
      throw invalid('MESH_CANARY_ANALYSIS', `analysis "${flags.analysis}" is not split or none`, 'Use --analysis split (default) or --analysis none.', 'analysis')
    }
    const maxErrorRate = parseRate(flags['max-error-rate'])
    const maxP99Ms = flags['max-p99'] === undefined ? undefined : durationFlag(flags['max-p99'], 'max-p99')
    const change = changeOptions({...flags, 'dry-run': false})
    const lab = await openLabFromFlags(flags)
    const ac = new AbortController()
    const onSigint = () => {
      process.stderr.write('\nStopping after the current operation; the last applied step stays in place (Ctrl-C again to quit at once).\n')
      ac.abort()
    }
    process.once('SIGINT', onSigint)
    try {
      const r = await runCanary(lab, {
        ...change,
        namespace: flags.namespace,
        plan,
        intervalMs,
        analysis,
        maxRequests: flags['max-requests'],
        tolerance: flags.tolerance,
        maxErrorRate,
        ...(maxP99Ms !== undefined ? {maxP99Ms} : {}),
        signal: ac.signal,
        onEvent: (e) => this.event(e),
      })
      this.summary(r, plan)
      if (r.exitCode !== 0) this.setExit(r.exitCode)
      return r
    } finally {
      process.removeListener('SIGINT', onSigint)
      await lab.close()
    }
  }

  private event(e: CanaryRunEvent): void {
    switch (e.type) {
      case 'start':
        this.ui.info(`${e.resumed ? 'Resuming' : 'Starting'} the canary run at ${formatWeights(e.from)}: ${e.plan.map(formatWeights).join(' → ')}`)
        break
      case 'step':
        this.out(`step ${e.index + 1}/${e.total}: ${transition(e.shift.from, e.shift.to)}  (${describeSync(e.shift.sync!)})`)
        for (const line of splitBars(e.shift.to)) this.out(`  ${line}`)
        break
      case 'in-place':
        this.out(`step ${e.index + 1}/${e.total}: ${formatWeights(e.weights)} already in place`)
        break
      case 'analysis':
        this.ui.stage(`Analysing ${formatWeights(e.weights)} through the ingress`)
        break
      case 'gate': {
        const g = e.gate
        const obs = g.observedV2Share === null ? 'no v1/v2 responses' : `v2 ${g.observedV2Share.toFixed(1)}%${g.interval ? ` [${g.interval[0].toFixed(1)}, ${g.interval[1].toFixed(1)}]` : ''}`
        const line = `gate ${g.verdict}: ${obs}, ${g.requests} requests, ${g.errors} errors — ${g.reason}`
        if (g.verdict === 'pass' || g.verdict === 'skipped') this.ui.succeed(line)
        else this.ui.fail(line)
        break
      }
      case 'wait':
        this.ui.info(`waiting ${formatMs(e.ms)} before ${formatWeights(e.next)}`)
        break
      case 'rollback':
        this.out(`rolled back: ${transition(e.shift.from, e.shift.to)}  (${describeSync(e.shift.sync!)})`)
        break
    }
  }

  private summary(r: CanaryRunResult, plan: CanaryPlan): void {
    switch (r.status) {
      case 'completed':
        this.out(`Canary complete: ${formatWeights(r.final)} in ${formatMs(r.elapsedMs)}.`)
        break
      case 'already-complete':
        this.out(`Already at the last step (${formatWeights(r.final)}) of ${plan.toString()}; nothing changed.`)
        break
      case 'rolled-back':
        this.out(`Rolled back to ${formatWeights(r.final)}: ${r.rollback?.reason}`)
        break
      case 'interrupted':
        this.out(
          `Interrupted: ${formatWeights(r.final)} stays in place` +
            (r.lastApplied ? ` (step ${r.lastApplied.index + 1} of ${r.plan.length})` : '') +
            '. Run mesh canary run again to resume, or mesh canary rollback.',
        )
        break
    }
  }
}

function parseRate(text: string): number {
  const t = text.trim()
  const m = /^(\d+(?:\.\d+)?)(%)?$/.exec(t)
  const v = m ? Number(m[1]) / (m[2] ? 100 : 1) : NaN
  if (!(v >= 0 && v <= 1)) throw invalid('MESH_CANARY_ERROR_RATE', `max error rate "${text}" is not a share between 0 and 1 (or 0%–100%)`, 'Give the limit as 5% or 0.05.', 'max-error-rate')
  return v
}
