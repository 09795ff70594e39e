import {Flags} from '@oclif/core'
import {labDownEmbedded, type LabDownResult} from '../../cluster/lab.js'
import {MeshCommand} from '../../lib/command.js'

export default class LabDown extends MeshCommand<LabDownResult> {
  static override summary = 'Stop the embedded lab cluster (meshd); --purge also deletes its state'
  static override description =
    'Stops meshd and every pod process. The cluster state (objects, certificates, kubeconfig) is kept for the next ' +
    '`mesh lab up` unless --purge is given.'
  static override examples = ['<%= config.bin %> lab down', '<%= config.bin %> lab down --purge']
  static override flags = {
    home: Flags.string({description: 'mesh home directory (default: $MESH_HOME or ~/.mesh)'}),
    purge: Flags.boolean({description: 'also remove the cluster state and its kubeconfig', default: false}),
    timeout: Flags.integer({description: 'seconds to wait for a graceful stop before killing meshd', default: 15, min: 1}),
  }

  async run(): Promise<LabDownResult> {
    const {flags} = await this.parse(LabDown)
    this.ui.stage('Stopping the embedded cluster')
    const r = await labDownEmbedded({home: flags.home, purge: flags.purge, timeoutMs: flags.timeout * 1000})
    if (r.wasRunning) this.ui.succeed(r.killed ? `meshd (pid ${r.pid}) did not stop in time and was killed` : `meshd (pid ${r.pid}) stopped`)
    else this.ui.succeed('The lab was not running')
    if (r.killed) this.meshWarn('MESH_MESHD_KILLED', 'meshd was killed; its state is journaled and will be recovered by the next mesh lab up')
    if (r.purged) this.out(r.removed.length ? `Removed: ${r.removed.join(', ')}` : 'Nothing to remove')
    else if (r.wasRunning) this.out('State kept; mesh lab up starts the same cluster again (mesh lab down --purge removes it).')
    return r
  }
}
