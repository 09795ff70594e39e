import {Flags} from '@oclif/core'
import {ejectionOptions, ingressFlag, outputFlags} from '../../verify/flags.js'
import {targetFlags} from '../../lab/flags.js'
import {VerifyCommand, type VerifyResult} from './index.js'

export default class VerifyEjection extends VerifyCommand {
  static override summary = 'Prove outlier ejection: scale in the faulty v1 replica, drive load, read the proxy counters, restore the lab'
  static override description =
    'Reads the DestinationRule: when maxEjectionPercent (default 10) cannot eject one of the v1 endpoints, or outlier detection is off, ' +
    'it warns with MESH_EJECTION_IMPOSSIBLE and fails without driving load. Otherwise it scales hello-v1-faulty (always 503) to 1, waits ' +
    'until it is Ready, in the endpoints and known to the proxies, drives load through the ingress to subset v1, and compares with the ' +
    'prediction: at most consecutive5xxErrors errors from it (plus one in flight per connection) before ejection, then no requests for ' +
    'baseEjectionTime (returning on the next interval tick). Evidence: the gateway\'s /clusters per-host state and ' +
    'ejections_enforced_total (embedded lab), and which instances answered. The faulty replica is scaled back and the proxies synced ' +
    'even when the check fails. Holds the lab lock. Exit 0 pass, 1 fail (also when ejection is impossible), 2 inconclusive (e.g. the ' +
    'ingress sends v1 no traffic), 69 lab down.'
  static override examples = ['<%= config.bin %> verify ejection', '<%= config.bin %> verify ejection --connections 2 --rate 50 --json']
  static override flags = {
    connections: Flags.string({description: 'concurrent connections (also the in-flight slack of the prediction)', default: '4'}),
    rate: Flags.string({description: 'total requests per second', default: '100'}),
    timeout: Flags.string({description: 'longest the load may run, seconds (default: enough to see one ejection end)'}),
    ...ingressFlag,
    ...outputFlags,
    ...targetFlags,
  }

  async run(): Promise<VerifyResult> {
    const {flags} = await this.parse(VerifyEjection)
    const ejection = ejectionOptions({
      'ejection-connections': flags.connections,
      'ejection-rate': flags.rate,
      ...(flags.timeout !== undefined ? {'ejection-timeout': flags.timeout} : {}),
      ...(flags.ingress !== undefined ? {ingress: flags.ingress} : {}),
    })
    return this.execute(flags, () => ({only: ['ejection'], ejection}))
  }
}
