import {Args, Flags} from '@oclif/core'
import {MeshCommand} from '../../lib/command.js'
import {LAB} from '../../mesh/lab.js'
import {renderCanary, renderedYaml, type Rendered} from '../../mesh/render.js'

export default class RenderCanary extends MeshCommand<Rendered> {
  static override summary = 'Print the hello VirtualServices for a v1/v2 weight split'
  static override description =
    'Two VirtualServices with the same weights: `hello` for sidecars (gateway mesh) and `hello-ingress` for the ingress gateway (path /hello). Weights are two whole numbers 0–100 that add up to 100, v1 first.'
  static override examples = ['<%= config.bin %> render canary 90/10', '<%= config.bin %> render canary 50/50 | kubectl apply -f -', '<%= config.bin %> render canary 0/100 --json']
  static override args = {
    weights: Args.string({required: true, description: 'V1/V2 weights, e.g. 90/10', ignoreStdin: true}),
  }
  static override flags = {
    namespace: Flags.string({char: 'n', description: 'namespace of the lab', default: LAB.namespace}),
  }

  async run(): Promise<Rendered> {
    const {args, flags} = await this.parse(RenderCanary)
    const r = renderCanary(args.weights, {namespace: flags.namespace})
    this.out(renderedYaml(r).trimEnd())
    return r
  }
}
