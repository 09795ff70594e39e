import {Args, Flags} from '@oclif/core'
import {MeshCommand} from '../lib/command.js'
import {LAB} from '../mesh/lab.js'
import {callAs, describeCall, parseCaller, parseHeader, type CallResult} from '../lab/callers.js'
import {durationFlag, openLabFromFlags, targetFlags} from '../lab/flags.js'

export default class Call extends MeshCommand<CallResult> {
  static override summary = 'Send one request to hello as the ingress, a meshed client or a legacy (no sidecar) client'
  static override description =
    'Prints the status and body. A connection that is reset or refused (what a plaintext caller meets under STRICT mTLS) prints ' +
    '"000 connection reset" and still exits 0: the call observed the refusal. ingress goes through the ingress gateway; meshed ' +
    'through the sidecar of the curl pod in mesh-lab; legacy in plaintext without a sidecar (embedded: mesh connects straight to a ' +
    'hello pod from the mesh-legacy client\'s address; real cluster: kubectl exec into the curl pod of mesh-legacy).'
  static override examples = [
    '<%= config.bin %> call --from ingress',
    '<%= config.bin %> call /hello --from legacy',
    '<%= config.bin %> call --from meshed --method POST --header x-user:alice --json',
  ]
  static override args = {
    path: Args.string({description: 'request path', default: LAB.ingressPath, ignoreStdin: true}),
  }
  static override flags = {
    from: Flags.string({description: 'caller: ingress, meshed or legacy', required: true}),
    method: Flags.string({char: 'X', description: 'HTTP method', default: 'GET'}),
    header: Flags.string({char: 'H', description: 'request header name:value (repeatable)', multiple: true}),
    data: Flags.string({char: 'd', description: 'request body'}),
    timeout: Flags.string({description: 'how long to wait for an answer, e.g. 10s', default: '10s'}),
    ...targetFlags,
  }

  async run(): Promise<CallResult> {
    const {args, flags} = await this.parse(Call)
    const from = parseCaller(flags.from)
    const headers = Object.fromEntries((flags.header ?? []).map(parseHeader))
    const timeoutMs = durationFlag(flags.timeout, 'timeout')
    const lab = await openLabFromFlags(flags)
    try {
      const r = await callAs(lab.target, from, {
        path: args.path,
        method: flags.method,
        headers,
        ...(flags.data !== undefined ? {body: flags.data} : {}),
        timeoutMs,
      })
      this.ui.info(`${r.method} ${r.url} as ${r.from} via ${r.via} (${r.durationMs} ms)`)
      this.out(describeCall(r))
      return r
    } finally {
      await lab.close()
    }
  }
}
