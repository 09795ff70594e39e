import {MeshCommand} from '../../lib/command.js'
import {openLabFromFlags, targetFlags} from '../../lab/flags.js'
import {mtlsStatus} from '../../lab/mtls.js'
import type {MtlsState} from '../../lab/state.js'

export default class MtlsStatus extends MeshCommand<MtlsState> {
  static override summary = 'Show the mTLS mode in force per namespace and mesh-wide, and every PeerAuthentication'
  static override examples = ['<%= config.bin %> mtls status', '<%= config.bin %> mtls status --json']
  static override flags = {...targetFlags}

  async run(): Promise<MtlsState> {
    const {flags} = await this.parse(MtlsStatus)
    const lab = await openLabFromFlags(flags)
    try {
      const s = await mtlsStatus(lab)
      this.out(`mesh-wide (${s.rootNamespace}): ${s.mesh.mode}${s.mesh.source === 'default' ? ' (no mesh-wide policy: Istio default)' : ` (${s.mesh.policy})`}`)
      for (const n of s.namespaces) {
        const why = n.source === 'namespace' ? n.policy : n.source === 'mesh' ? `inherited from ${n.policy}` : 'no policy: Istio default'
        this.out(`${n.namespace.padEnd(16)} ${n.mode.padEnd(10)} ${why}`)
      }
      const workload = s.policies.filter((p) => p.scope === 'workload')
      for (const p of workload) {
        const sel = Object.entries(p.selector ?? {}).map(([k, v]) => `${k}=${v}`).join(',')
        const ports = p.portLevel ? ` ports ${Object.entries(p.portLevel).map(([k, v]) => `${k}:${v}`).join(',')}` : ''
        this.out(`  workload policy ${p.namespace}/${p.name} (${sel}): ${p.mode}${ports}`)
      }
      return s
    } finally {
      await lab.close()
    }
  }
}
