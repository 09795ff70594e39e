import {Flags} from '@oclif/core'
import {labDown, type LabDownResult} from '../../cluster/lab.js'
import {MeshCommand} from '../../lib/command.js'

export default class LabDown extends MeshCommand<LabDownResult> {
  static override summary = 'Take the lab down, removing only what mesh manages; --purge also removes its state / the Istio it installed'
  static override description =
    'Embedded cluster: stops meshd and every pod process; the cluster state (objects, certificates, kubeconfig) is kept for ' +
    'the next `mesh lab up` unless --purge is given.\n\n' +
    'Real cluster: deletes the objects labelled app.kubernetes.io/managed-by=mesh, and the namespaces mesh-lab and mesh-legacy ' +
    'when mesh manages them and nothing of anyone else is inside; everything else is left and listed. --purge also uninstalls ' +
    'Istio if mesh installed it (istio-system/mesh-state) and forgets the remembered target. Contexts that do not look like ' +
    'local lab clusters need --yes.'
  static override examples = ['<%= config.bin %> lab down', '<%= config.bin %> lab down --purge', '<%= config.bin %> lab down --context kind-mesh --purge']
  static override flags = {
    home: Flags.string({description: 'mesh home directory (default: $MESH_HOME or ~/.mesh)', helpGroup: 'TARGET'}),
    context: Flags.string({description: 'kubeconfig context of a real cluster (or MESH_CONTEXT; default: the remembered target, else embedded)', helpGroup: 'TARGET'}),
    kubeconfig: Flags.string({description: 'kubeconfig file (default: $KUBECONFIG or ~/.kube/config)', helpGroup: 'TARGET'}),
    purge: Flags.boolean({description: 'embedded: also remove the cluster state and kubeconfig; real: also uninstall the Istio mesh installed', default: false}),
    yes: Flags.boolean({char: 'y', description: 'allow a context that does not look like a local lab cluster', default: false}),
    timeout: Flags.integer({description: 'seconds to wait for a graceful stop before killing meshd', default: 15, min: 1}),
  }

  async run(): Promise<LabDownResult> {
    const {flags} = await this.parse(LabDown)
    const ui = this.ui
    const r = await this.withStages((onProgress) =>
      labDown({home: flags.home, context: flags.context, kubeconfig: flags.kubeconfig, purge: flags.purge, yes: flags.yes, timeoutMs: flags.timeout * 1000, onProgress}),
    )
    for (const w of r.warnings) this.meshWarn(w.code, w.message)
    if (r.target === 'embedded') {
      if (r.wasRunning) ui.succeed(r.killed ? `meshd (pid ${r.pid}) did not stop in time and was killed` : `meshd (pid ${r.pid}) stopped`)
      else ui.succeed('The lab was not running')
      if (r.purged) this.out(r.removed.length ? `Removed: ${r.removed.join(', ')}` : 'Nothing to remove')
      else if (r.wasRunning) this.out('State kept; mesh lab up starts the same cluster again (mesh lab down --purge removes it).')
      return r
    }
    this.out(r.deleted.length ? `Deleted on context ${r.context}: ${r.deleted.join(', ')}` : `Nothing of the lab was left on context ${r.context}`)
    if (r.left.length) {
      this.out('Left in place (not managed by mesh):')
      for (const o of r.left) this.out(`  ${o.kind} ${o.namespace ? `${o.namespace}/` : ''}${o.name}  (${o.reason})`)
    }
    if (r.istio) this.out(r.istio.uninstalled ? 'Istio uninstalled (mesh had installed it).' : 'Istio left in place (mesh did not install it).')
    if (r.forgotten) this.out('The remembered target was forgotten; later commands use the embedded cluster unless given --context.')
    return r
  }
}
