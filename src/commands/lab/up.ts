import {Flags} from '@oclif/core'
import {labUp, type LabUpResult} from '../../cluster/lab.js'
import {MeshCommand} from '../../lib/command.js'

export default class LabUp extends MeshCommand<LabUpResult> {
  static override summary = 'Bring the lab up: the cluster side, the hello app v1/v2 and the Istio baseline, ready and SYNCED'
  static override description =
    'Embedded cluster (default): starts meshd in the background, applies manifests/ and the Istio baseline (Gateway, ' +
    'DestinationRule, VirtualServices 100/0, PeerAuthentication PERMISSIVE, no policies) as field manager mesh, and waits until ' +
    'every Deployment is Available, every pod Ready and every proxy SYNCED.\n\n' +
    'Real cluster (--context): preflight checks, Istio through istioctl (found on PATH or downloaded and checksum-verified), ' +
    'the same manifests and configs, rollouts, proxy sync (istioctl proxy-status), and the ingress through its LoadBalancer ' +
    'address or kubectl port-forward. Contexts that do not look like local lab clusters need --yes. The target is remembered, ' +
    'so later commands need no flags.\n\n' +
    'Running it again changes nothing and says so. State lives in the mesh home ($MESH_HOME, default ~/.mesh).'
  static override examples = [
    '<%= config.bin %> lab up',
    'MESH_HOME=/tmp/lab <%= config.bin %> lab up --json',
    '<%= config.bin %> lab up --context kind-mesh',
    '<%= config.bin %> lab up --context gke_sandbox --yes --profile default --istio-version 1.28.1',
  ]
  static override flags = {
    home: Flags.string({description: 'mesh home directory (default: $MESH_HOME or ~/.mesh)', helpGroup: 'TARGET'}),
    context: Flags.string({description: 'kubeconfig context of a real cluster (or MESH_CONTEXT; default: the remembered target, else embedded)', helpGroup: 'TARGET'}),
    kubeconfig: Flags.string({description: 'kubeconfig file (default: $KUBECONFIG or ~/.kube/config)', helpGroup: 'TARGET'}),
    yes: Flags.boolean({char: 'y', description: 'allow a context that does not look like a local lab cluster', default: false}),
    'istio-version': Flags.string({description: 'real clusters: Istio release to install (default: the pinned one)'}),
    profile: Flags.string({description: 'real clusters: istioctl profile: demo, default or minimal (default demo)'}),
    runtime: Flags.string({description: 'embedded: how pods run: process (one OS process per pod) or virtual (no process, no traffic)', options: ['process', 'virtual']}),
    timeout: Flags.integer({description: 'seconds to wait for the whole lab to be ready (default 60 embedded, 300 real)', min: 1}),
    'force-conflicts': Flags.boolean({description: 'take over objects or fields mesh does not manage', default: false}),
  }

  async run(): Promise<LabUpResult> {
    const {flags} = await this.parse(LabUp)
    const r = await this.withStages((onProgress) =>
      labUp({
        home: flags.home,
        context: flags.context,
        kubeconfig: flags.kubeconfig,
        yes: flags.yes,
        istioVersion: flags['istio-version'],
        profile: flags.profile,
        runtime: flags.runtime as 'process' | 'virtual' | undefined,
        timeoutMs: flags.timeout === undefined ? undefined : flags.timeout * 1000,
        forceConflicts: flags['force-conflicts'],
        onProgress,
      }),
    )
    for (const w of r.warnings) this.meshWarn(w.code, w.message)
    const c = this.c
    this.out(r.changed ? c.bold(`The lab is up (${(r.elapsedMs / 1000).toFixed(1)} s).`) : c.bold('The lab was already up; nothing changed.'))
    this.out(`target:      ${r.target === 'embedded' ? `embedded (context ${r.context}, meshd pid ${r.pid}, runtime ${r.runtime})` : `real cluster, context ${r.context}${r.istio ? `, Istio ${r.istio.version ?? '(version unknown)'} (${r.istio.action === 'existing' ? 'already there, not installed by mesh' : r.istio.action})` : ''}`}`)
    if (r.ingress && r.ingressVia !== 'port-forward') this.out(`ingress:     ${r.ingress}${r.ingressVia === 'loadbalancer' ? '  (LoadBalancer)' : ''}`)
    else if (r.ingressVia === 'port-forward') {
      this.out('ingress:     no LoadBalancer address; mesh reaches it through kubectl port-forward for each command')
      if (r.portForwardCommand) this.out(`             for your own requests: ${r.portForwardCommand}  (then http://127.0.0.1:8080)`)
    } else this.out('ingress:     not reachable (see the warning above)')
    if (r.apply.kept > 0) {
      this.out(`kept:        ${r.apply.items.filter((i) => i.action === 'kept').map((i) => `${i.kind} ${i.namespace ? `${i.namespace}/` : ''}${i.name}`).join(', ')}`)
      this.out('             (they differ from the baseline, e.g. a canary step; mesh lab reset restores them)')
    }
    this.out(`kubeconfig:  ${r.kubeconfig || '(kubectl defaults)'}`)
    this.out(`pods:        ${r.rollout.ready}/${r.rollout.pods} ready; proxies: ${r.proxies.count} SYNCED`)
    this.out('')
    this.out('Next steps:')
    this.out('  mesh canary shift 90/10')
    this.out('  mesh verify split --expect 90/10')
    this.out(`  ${r.kubectl} get pods -n mesh-lab`)
    return r
  }
}
