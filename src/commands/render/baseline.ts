import {MeshCommand} from '../../lib/command.js'
import {renderBaseline, renderedYaml, type Rendered} from '../../mesh/render.js'

export default class RenderBaseline extends MeshCommand<Rendered> {
  static override summary = 'Print every Istio object of a fresh lab'
  static override description = 'Gateway, DestinationRule, both hello VirtualServices at 100/0 and PERMISSIVE mTLS in the lab namespace, in apply order.'
  static override examples = ['<%= config.bin %> render baseline', '<%= config.bin %> render baseline | kubectl apply -f -']

  async run(): Promise<Rendered> {
    await this.parse(RenderBaseline)
    const r = renderBaseline()
    this.out(renderedYaml(r).trimEnd())
    return r
  }
}
