import {Flags} from '@oclif/core'
import {labStatus, type LabStatus} from '../../cluster/lab.js'
import {MeshCommand} from '../../lib/command.js'

export default class LabStatusCommand extends MeshCommand<LabStatus> {
  static override summary = 'Show the embedded lab: API server, kubeconfig, ingress, pods and proxy sync'
  static override description = 'Exits 69 (MESH_LAB_DOWN) when the lab is not running.'
  static override examples = ['<%= config.bin %> lab status', '<%= config.bin %> lab status --json']
  static override flags = {
    home: Flags.string({description: 'mesh home directory (default: $MESH_HOME or ~/.mesh)'}),
  }

  async run(): Promise<LabStatus> {
    const {flags} = await this.parse(LabStatusCommand)
    const s = await labStatus({home: flags.home})
    const c = this.c
    this.out(`${c.bold('target')}      embedded (context ${s.context}), meshd pid ${s.pid}, runtime ${s.runtime}`)
    this.out(`${c.bold('API server')}  ${s.apiServer}`)
    this.out(`${c.bold('kubeconfig')}  ${s.kubeconfig}`)
    this.out(`${c.bold('ingress')}     ${s.ingress ?? '-'}${s.ingressListening ? '' : c.dim('  (no gateway listening yet)')}`)
    this.out(`${c.bold('pods')}        ${s.pods.ready}/${s.pods.total} ready`)
    for (const p of s.pods.items) {
      const mark = p.ready ? c.green('✔') : c.yellow('…')
      this.out(`  ${mark} ${p.namespace}/${p.name}  ${p.phase}${p.reason ? ` (${p.reason})` : ''}  ${p.podIP ?? ''}${p.restarts ? `  restarts ${p.restarts}` : ''}`)
    }
    const px = s.proxies
    this.out(`${c.bold('proxies')}     ${px.items.length} connected, config generation ${px.generation}, ${px.synced ? 'all SYNCED' : 'not all in sync'}`)
    for (const p of px.items) this.out(`  ${p.state === 'SYNCED' ? c.green('✔') : c.yellow('…')} ${p.proxy} (${p.kind}) ${p.state} sent ${p.sent} acked ${p.acked}`)
    return s
  }
}
