import {Flags} from '@oclif/core'
import {MeshCommand} from '../../lib/command.js'
import {LAB} from '../../mesh/lab.js'
import {renderDestinationRule, renderedYaml, type Rendered} from '../../mesh/render.js'

export default class RenderDestinationRule extends MeshCommand<Rendered> {
  static override summary = 'Print the hello DestinationRule (subsets v1/v2, connection pool, outlier detection)'
  static override description =
    'Warns (MESH_EJECTION_IMPOSSIBLE) when outlier detection could never eject an endpoint of subset v1 with --endpoints endpoints: Envoy ejects only while 100 × ejected ÷ endpoints stays within maxEjectionPercent.'
  static override examples = ['<%= config.bin %> render destination-rule', '<%= config.bin %> render destination-rule --circuit-breaker']
  static override flags = {
    namespace: Flags.string({char: 'n', description: 'namespace of the lab', default: LAB.namespace}),
    'circuit-breaker': Flags.boolean({description: "Istio's circuit-breaking values: 1 connection, 1 pending request, eject after one 5xx", default: false}),
    endpoints: Flags.integer({description: 'endpoints in subset v1 to check ejection against', default: LAB.v1EndpointsWithFaulty, min: 0}),
  }

  async run(): Promise<Rendered> {
    const {flags} = await this.parse(RenderDestinationRule)
    const r = renderDestinationRule({namespace: flags.namespace, circuitBreaker: flags['circuit-breaker'], endpoints: flags.endpoints})
    for (const w of r.warnings) this.meshWarn(w.code, `${w.message}. ${w.suggestion}`)
    this.out(renderedYaml(r).trimEnd())
    return r
  }
}
