import {Args, Flags} from '@oclif/core'
import {MeshCommand} from '../../lib/command.js'
import {LAB} from '../../mesh/lab.js'
import {renderMtls, renderedYaml, type Rendered} from '../../mesh/render.js'

export default class RenderMtls extends MeshCommand<Rendered> {
  static override summary = 'Print the PeerAuthentication for STRICT or PERMISSIVE mTLS'
  static override description = `The \`default\` PeerAuthentication of a namespace (default ${LAB.namespace}), or with --mesh the mesh-wide one in ${LAB.rootNamespace}.`
  static override examples = [
    '<%= config.bin %> render mtls strict',
    '<%= config.bin %> render mtls strict --namespace demo',
    '<%= config.bin %> render mtls strict --mesh',
    '<%= config.bin %> render mtls permissive',
  ]
  static override args = {
    mode: Args.string({required: true, description: 'strict or permissive', ignoreStdin: true}),
  }
  static override flags = {
    namespace: Flags.string({char: 'n', description: `namespace-wide policy in this namespace [default: ${LAB.namespace}]`}),
    mesh: Flags.boolean({description: `mesh-wide policy in the root namespace ${LAB.rootNamespace}`, default: false}),
  }

  async run(): Promise<Rendered> {
    const {args, flags} = await this.parse(RenderMtls)
    const r = renderMtls(args.mode, {namespace: flags.namespace, mesh: flags.mesh})
    this.out(renderedYaml(r).trimEnd())
    return r
  }
}
