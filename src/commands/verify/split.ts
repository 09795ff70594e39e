import {outputFlags, ingressFlag, splitFlags, splitOptions} from '../../verify/flags.js'
import {targetFlags} from '../../lab/flags.js'
import {VerifyCommand, type VerifyResult} from './index.js'

export default class VerifySplit extends VerifyCommand {
  static override summary = 'Prove the v1/v2 split through the ingress: pass, fail or inconclusive with a stated false-alarm rate'
  static override description =
    'Waits until every proxy acknowledged the current config, then sends requests to <ingress>/hello, classifies each answer by ' +
    'version and runs a sequential test (anytime-valid confidence sequence, ADR 0070) that stops as soon as it can decide: pass when ' +
    'the interval of the v2 share lies within ±tolerance of the expected share, fail when the expected share falls outside it, ' +
    'inconclusive (exit 2) when the budget runs out. A correct split fails at most 1 − confidence of the time, counting every look. ' +
    '100/0 and 0/100 are exact checks: one answer from the wrong version fails. Reports the observed split, the interval and the ' +
    'requests used. Exit 0 pass, 1 fail, 2 inconclusive, 64 usage, 65 bad input (e.g. --expect 90/20, --tolerance 0, ' +
    '--confidence 2), 69 lab or ingress unreachable.'
  static override examples = [
    '<%= config.bin %> verify split',
    '<%= config.bin %> verify split --expect 90/10',
    '<%= config.bin %> verify split --expect 50/50 --tolerance 3 --budget 20000',
    '<%= config.bin %> verify split --format junit --output split.xml',
  ]
  static override flags = {...splitFlags, ...ingressFlag, ...outputFlags, ...targetFlags}

  async run(): Promise<VerifyResult> {
    const {flags} = await this.parse(VerifySplit)
    const split = splitOptions(flags)
    return this.execute(flags, (progress) => ({
      only: ['split'],
      split: {
        ...split,
        // a live view of the test on a terminal; one line per look would flood a CI log
        ...(this.mode.interactive
          ? {onLook: (d) => progress(`${d.requests} requests: v2 ${d.observedShare === null ? '–' : d.observedShare.toFixed(1)}% [${d.interval[0].toFixed(1)}, ${d.interval[1].toFixed(1)}] expected ${d.expectedV2Share}% ± ${d.tolerance}`)}
          : {}),
      },
    }))
  }
}
