import {Flags} from '@oclif/core'
import {labStatus, type LabStatus} from '../../cluster/lab.js'
import {MeshCommand} from '../../lib/command.js'

export default class LabStatusCommand extends MeshCommand<LabStatus> {
  static override summary = 'Show the lab: target, Istio, pods per version, weights, mTLS, policies, proxy sync, kubeconfig and ingress'
  static override description =
    'Reads the lab on the selected target (the remembered one unless --context is given). ' +
    'Exits 69 (MESH_LAB_DOWN) when the lab is not running.'
  static override examples = ['<%= config.bin %> lab status', '<%= config.bin %> lab status --json']
  static override flags = {
    home: Flags.string({description: 'mesh home directory (default: $MESH_HOME or ~/.mesh)', helpGroup: 'TARGET'}),
    context: Flags.string({description: 'kubeconfig context of a real cluster (or MESH_CONTEXT; default: the remembered target, else embedded)', helpGroup: 'TARGET'}),
    kubeconfig: Flags.string({description: 'kubeconfig file (default: $KUBECONFIG or ~/.kube/config)', helpGroup: 'TARGET'}),
  }

  async run(): Promise<LabStatus> {
    const {flags} = await this.parse(LabStatusCommand)
    const s = await labStatus({home: flags.home, context: flags.context, kubeconfig: flags.kubeconfig})
    const c = this.c
    const b = (t: string) => c.bold(t.padEnd(11))
    this.out(`${b('target')} ${s.target === 'embedded' ? `embedded (context ${s.context}), meshd pid ${s.pid}, runtime ${s.runtime}` : `real cluster, context ${s.context}`}`)
    this.out(`${b('istio')} ${s.istio.version}${s.target === 'real' ? (s.istio.installedByMesh ? ' (installed by mesh)' : ' (not installed by mesh)') : ''}`)
    this.out(`${b('API server')} ${s.apiServer}`)
    this.out(`${b('kubeconfig')} ${s.kubeconfig || '(kubectl defaults)'}`)
    const ingress =
      s.ingressVia === 'port-forward' ? 'no LoadBalancer address: each mesh command reaches it through kubectl port-forward' : s.ingressVia === 'unavailable' ? 'not found' : `${s.ingress}${s.ingressListening ? '' : c.dim('  (no gateway listening yet)')}`
    this.out(`${b('ingress')} ${ingress}`)
    this.out(`${b('weights')} v1 ${s.weights.v1} / v2 ${s.weights.v2}${s.weightsDetail.source === 'default' ? c.dim('  (no VirtualService: default routing)') : ''}`)
    for (const n of s.weightsDetail.notes) this.out(`  ${c.yellow('‼')} ${n}`)
    this.out(`${b('mTLS')} ${s.mtls.namespace} ${s.mtls.mode}, mesh-wide ${s.mtls.mesh}`)
    this.out(`${b('policies')} ${s.policies.length === 0 ? 'none' : ''}`)
    for (const p of s.policies) this.out(`  ${p.namespace}/${p.name}: ${p.summary}${p.managed ? '' : c.dim('  (not managed by mesh)')}`)
    this.out(`${b('pods')} ${s.pods.ready}/${s.pods.total} ready`)
    for (const v of s.versions) this.out(`  hello ${v.version}: ${v.ready}/${v.total} ready${v.pods.some((p) => p.faulty) ? ' (incl. the faulty replica)' : ''}`)
    for (const p of s.pods.items) {
      const mark = p.ready ? c.green('✔') : c.yellow('…')
      this.out(`  ${mark} ${p.namespace}/${p.name}  ${p.phase}${p.reason ? ` (${p.reason})` : ''}  ${p.podIP ?? ''}${p.restarts ? `  restarts ${p.restarts}` : ''}`)
    }
    const px = s.proxies
    this.out(`${b('proxies')} ${px.items.length} connected${px.generation !== undefined ? `, config generation ${px.generation}` : ''}, ${px.error ? `unknown (${px.error})` : px.synced ? 'all SYNCED' : 'not all in sync'}`)
    for (const p of px.items) this.out(`  ${p.state === 'SYNCED' ? c.green('✔') : c.yellow('…')} ${p.proxy} (${p.kind}) ${p.state}${s.target === 'embedded' ? ` sent ${p.sent} acked ${p.acked}` : ''}`)
    return s
  }
}
