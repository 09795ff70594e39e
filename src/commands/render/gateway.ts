import {Flags} from '@oclif/core'
import {MeshCommand} from '../../lib/command.js'
import {LAB} from '../../mesh/lab.js'
import {renderGateway, renderedYaml, type Rendered} from '../../mesh/render.js'

export default class RenderGateway extends MeshCommand<Rendered> {
  static override summary = 'Print the ingress Gateway (port 80, HTTP, any host)'
  static override examples = ['<%= config.bin %> render gateway']
  static override flags = {
    namespace: Flags.string({char: 'n', description: 'namespace of the lab', default: LAB.namespace}),
  }

  async run(): Promise<Rendered> {
    const {flags} = await this.parse(RenderGateway)
    const r = renderGateway({namespace: flags.namespace})
    this.out(renderedYaml(r).trimEnd())
    return r
  }
}
