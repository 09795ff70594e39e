import {Flags} from '@oclif/core'
import {labUp, type LabUpResult} from '../../cluster/lab.js'
import {MeshCommand} from '../../lib/command.js'

export default class LabUp extends MeshCommand<LabUpResult> {
  static override summary = 'Start the embedded lab cluster (meshd) and write its kubeconfig'
  static override description =
    'Starts meshd, the embedded Kubernetes-compatible cluster, in the background and returns once it serves. ' +
    'Running it again while the lab is up changes nothing. State lives in the mesh home ($MESH_HOME, default ~/.mesh).'
  static override examples = ['<%= config.bin %> lab up', 'MESH_HOME=/tmp/lab <%= config.bin %> lab up --json']
  static override flags = {
    home: Flags.string({description: 'mesh home directory (default: $MESH_HOME or ~/.mesh)'}),
    runtime: Flags.string({description: 'how pods run: process (one OS process per pod) or virtual (no process)', options: ['process', 'virtual']}),
    timeout: Flags.integer({description: 'seconds to wait for meshd to become ready', default: 30, min: 1}),
  }

  async run(): Promise<LabUpResult> {
    const {flags} = await this.parse(LabUp)
    this.ui.stage('Starting the embedded cluster (meshd)')
    let r: LabUpResult
    try {
      r = await labUp({home: flags.home, runtime: flags.runtime as 'process' | 'virtual' | undefined, timeoutMs: flags.timeout * 1000})
    } catch (e) {
      this.ui.fail('meshd did not start')
      throw e
    }
    if (r.alreadyRunning) this.ui.succeed(`The lab is already running (meshd pid ${r.pid}); nothing changed`)
    else this.ui.succeed(`meshd is ready in ${(r.startMs / 1000).toFixed(1)} s (pid ${r.pid})`)
    if (r.recoveredStalePid !== undefined) this.meshWarn('MESH_STALE_PID', `a meshd (pid ${r.recoveredStalePid}) had stopped without cleaning up; its state was kept and reused`)
    this.out(`API server:  ${r.apiServer}  (context ${r.context})`)
    this.out(`kubeconfig:  ${r.kubeconfig}`)
    this.out(`ingress:     ${r.ingress}`)
    this.out('')
    this.out('Next steps:')
    this.out(`  export KUBECONFIG=${r.kubeconfig}`)
    this.out('  kubectl apply --server-side -f -f manifests/')
    this.out('  mesh lab status')
    return r
  }
}
