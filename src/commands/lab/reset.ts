import {MeshCommand} from '../../lib/command.js'
import {changeFlags, changeOptions, openLabFromFlags, targetFlags} from '../../lab/flags.js'
import {describeChanges, describeSync, dryRunNote, formatMs} from '../../lab/render.js'
import {resetLab, type ResetResult} from '../../lab/reset.js'

export default class LabReset extends MeshCommand<ResetResult> {
  static override summary = 'Put the lab back to its baseline: 100/0, PERMISSIVE, no mesh policies, faulty replica at 0'
  static override description =
    'Applies the lab manifests and the Istio baseline (Gateway, DestinationRule, both VirtualServices at 100/0, PeerAuthentication ' +
    'PERMISSIVE in mesh-lab), deletes the AuthorizationPolicies and extra PeerAuthentications mesh manages, waits for the faulty ' +
    'replica to be gone and for the proxies to acknowledge. Objects mesh does not manage are left alone and listed.'
  static override examples = ['<%= config.bin %> lab reset', '<%= config.bin %> lab reset --dry-run']
  static override flags = {...changeFlags, ...targetFlags}

  async run(): Promise<ResetResult> {
    const {flags} = await this.parse(LabReset)
    const opts = changeOptions(flags)
    const lab = await openLabFromFlags(flags, {dryRun: opts.dryRun})
    try {
      if (!opts.dryRun) this.ui.stage('Resetting the lab to its baseline')
      const r = await resetLab(lab, opts).catch((e: unknown) => {
        this.ui.fail()
        throw e
      })
      for (const k of r.kept.policies) this.meshWarn('MESH_POLICY_NOT_MANAGED', `left AuthorizationPolicy ${k.namespace}/${k.name} in place: it is not managed by mesh`)
      for (const k of r.kept.peerAuthentications) this.meshWarn('MESH_POLICY_NOT_MANAGED', `left PeerAuthentication ${k.namespace}/${k.name} in place: it is not managed by mesh`)
      if (r.dryRun) {
        this.out(r.yaml.trimEnd())
        for (const d of [...r.deletedPolicies.map((p) => `AuthorizationPolicy ${p.namespace}/${p.name}`), ...r.deletedPeerAuthentications.map((p) => `PeerAuthentication ${p.namespace}/${p.name}`)]) {
          process.stderr.write(`would delete ${d}\n`)
        }
        process.stderr.write(`${dryRunNote(r)}\n`)
        return r
      }
      const changed = r.changes.filter((c) => c.action !== 'unchanged' && c.action !== 'absent')
      this.ui.succeed(r.changed ? `Lab back to baseline: ${describeChanges(changed)}` : 'The lab was already at its baseline; nothing changed')
      this.out('baseline: 100/0, mTLS PERMISSIVE in mesh-lab, no mesh-managed policies, faulty replica at 0')
      this.out(`${describeSync(r.sync!)}; took ${formatMs(r.elapsedMs)} in all`)
      return r
    } finally {
      await lab.close()
    }
  }
}
