import {outputFlags} from '../../verify/flags.js'
import {numberInput, positiveInt} from '../../verify/common.js'
import {Flags} from '@oclif/core'
import {targetFlags} from '../../lab/flags.js'
import {VerifyCommand, type VerifyResult} from './index.js'

export default class VerifyMtls extends VerifyCommand {
  static override summary = 'Reachability matrix: ingress, meshed and legacy callers → hello, against the PeerAuthentications in force'
  static override description =
    'Computes what each caller should meet from the PeerAuthentications (workload > namespace > mesh > PERMISSIVE): under STRICT a ' +
    'legacy caller without a sidecar is reset (curl prints 000), the ingress and meshed callers get through over mTLS; under PERMISSIVE ' +
    'everyone gets through. Then calls hello as each caller and compares. Evidence: the peer identity the hello sidecars counted ' +
    '(source_principal of istio_requests_total, e.g. spiffe://cluster.local/ns/mesh-lab/sa/curl) — read from the proxies on the ' +
    'embedded lab; on a real cluster the evidence says it was not observed. Exit 0 as expected, 1 a caller behaved otherwise, 69 lab down.'
  static override examples = ['<%= config.bin %> verify mtls', '<%= config.bin %> verify mtls --json', '<%= config.bin %> verify mtls --report mtls.html']
  static override flags = {
    calls: Flags.string({description: 'calls per caller (the legacy caller lands on a random pod)', default: '2'}),
    ...outputFlags,
    ...targetFlags,
  }

  async run(): Promise<VerifyResult> {
    const {flags} = await this.parse(VerifyMtls)
    const calls = positiveInt(numberInput(flags.calls, 'calls', {integer: true}), 'calls')!
    return this.execute(flags, () => ({only: ['mtls'], mtls: {calls}}))
  }
}
