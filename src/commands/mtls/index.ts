import {Args, Flags} from '@oclif/core'
import {ChangeCommand} from '../../lib/change-command.js'
import {LAB} from '../../mesh/lab.js'
import {parseMtlsMode} from '../../mesh/security.js'
import {changeFlags, changeOptions, openLabFromFlags, targetFlags} from '../../lab/flags.js'
import {setMtls, type SetMtlsResult} from '../../lab/mtls.js'

export default class Mtls extends ChangeCommand<SetMtlsResult> {
  static override summary = 'Set mTLS to STRICT or PERMISSIVE for a namespace (default mesh-lab) or mesh-wide (--mesh)'
  static override description =
    'Applies the `default` PeerAuthentication of the namespace (or of the root namespace istio-system with --mesh) and waits until ' +
    'the proxies have it. STRICT: sidecars accept only mTLS, so a caller without a sidecar gets its connection reset. PERMISSIVE: ' +
    'both mTLS and plaintext are accepted. `mesh mtls status` shows the modes in force.'
  static override examples = [
    '<%= config.bin %> mtls strict',
    '<%= config.bin %> mtls permissive --namespace mesh-lab',
    '<%= config.bin %> mtls strict --mesh',
    '<%= config.bin %> mtls strict --dry-run',
  ]
  static override args = {
    mode: Args.string({required: true, description: 'strict or permissive (or status: see mesh mtls status)', ignoreStdin: true}),
  }
  static override flags = {
    namespace: Flags.string({char: 'n', description: `namespace whose default PeerAuthentication to set [default: ${LAB.namespace}]`}),
    mesh: Flags.boolean({description: `mesh-wide: the policy in the root namespace ${LAB.rootNamespace}`, default: false}),
    ...changeFlags,
    ...targetFlags,
  }

  async run(): Promise<SetMtlsResult> {
    const {args, flags} = await this.parse(Mtls)
    const mode = parseMtlsMode(args.mode)
    const opts = {...changeOptions(flags), mesh: flags.mesh, ...(flags.namespace !== undefined ? {namespace: flags.namespace} : {})}
    const lab = await openLabFromFlags(flags, {dryRun: opts.dryRun})
    try {
      const r = await this.whileApplying(`Setting mTLS ${mode}`, opts.dryRun, () => setMtls(lab, mode, opts))
      const where = r.scope === 'mesh' ? `mesh-wide (${r.namespace})` : `namespace ${r.namespace}`
      this.printChange(r, () => [`mTLS ${where}: ${r.from && r.from !== r.to ? `${r.from} → ${r.to}` : `${r.to}${r.from === r.to ? ' (unchanged)' : ''}`}`])
      return r
    } finally {
      await lab.close()
    }
  }
}
