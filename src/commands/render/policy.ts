import {Args, Flags} from '@oclif/core'
import {MeshCommand} from '../../lib/command.js'
import {LAB} from '../../mesh/lab.js'
import {renderPolicy, renderedYaml, type Rendered} from '../../mesh/render.js'

export default class RenderPolicy extends MeshCommand<Rendered> {
  static override summary = 'Print an AuthorizationPolicy: deny-all, or an ALLOW rule'
  static override description =
    'deny-all is an ALLOW policy with no rules (`spec: {}`): nothing is allowed in the namespace. allow builds one ALLOW rule from the given sources (--from-principal, --from-namespace) and operations (--methods, --paths).'
  static override examples = [
    '<%= config.bin %> render policy deny-all',
    '<%= config.bin %> render policy deny-all --namespace demo',
    '<%= config.bin %> render policy allow --methods GET --selector app=hello',
    '<%= config.bin %> render policy allow --methods GET --paths /hello --from-principal cluster.local/ns/mesh-lab/sa/curl',
  ]
  static override args = {
    kind: Args.string({required: true, description: 'deny-all or allow', ignoreStdin: true}),
  }
  static override flags = {
    namespace: Flags.string({char: 'n', description: 'namespace of the policy', default: LAB.namespace}),
    name: Flags.string({description: 'policy name (allow) [default: allow-<methods>-<app>]'}),
    selector: Flags.string({description: 'workload labels, key=value (allow)', multiple: true, multipleNonGreedy: true, delimiter: ','}),
    methods: Flags.string({description: 'HTTP methods to allow, e.g. GET,HEAD', multiple: true, multipleNonGreedy: true, delimiter: ','}),
    paths: Flags.string({description: 'request paths to allow, e.g. /hello', multiple: true, multipleNonGreedy: true, delimiter: ','}),
    'from-principal': Flags.string({description: 'source identity without spiffe://, e.g. cluster.local/ns/mesh-lab/sa/curl', multiple: true, multipleNonGreedy: true}),
    'from-namespace': Flags.string({description: 'source namespace', multiple: true, multipleNonGreedy: true}),
  }

  async run(): Promise<Rendered> {
    const {args, flags} = await this.parse(RenderPolicy)
    const r = renderPolicy(args.kind, {
      namespace: flags.namespace,
      name: flags.name,
      selector: flags.selector,
      methods: flags.methods,
      paths: flags.paths,
      principals: flags['from-principal'],
      namespaces: flags['from-namespace'],
    })
    this.out(renderedYaml(r).trimEnd())
    return r
  }
}
