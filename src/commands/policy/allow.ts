import {Flags} from '@oclif/core'
import {ChangeCommand} from '../../lib/change-command.js'
import {LAB} from '../../mesh/lab.js'
import {changeFlags, changeOptions, openLabFromFlags, targetFlags} from '../../lab/flags.js'
import {allowPolicy, buildAllow, type PolicyResult} from '../../lab/policy.js'

export default class PolicyAllow extends ChangeCommand<PolicyResult> {
  static override summary = 'Allow matching requests to a workload (one ALLOW rule), then wait for the proxies'
  static override description =
    'Applies one ALLOW AuthorizationPolicy: requests to --to (app label) that match every given condition — methods, paths, ' +
    'source principals, source namespaces — are allowed. With deny-all in place, everything else stays 403. The name is derived ' +
    'from the methods and workload (e.g. allow-get-hello) unless --name is given; applying again with the same name replaces it.'
  static override examples = [
    '<%= config.bin %> policy allow --to hello --methods GET',
    '<%= config.bin %> policy allow --to hello --methods GET,POST --paths /hello --from-principal cluster.local/ns/mesh-lab/sa/curl',
    '<%= config.bin %> policy allow --to hello --methods GET --from-namespace mesh-lab --dry-run',
  ]
  static override flags = {
    to: Flags.string({description: 'workload (app label) the rule protects, e.g. hello; omit for the whole namespace'}),
    methods: Flags.string({description: 'HTTP methods to allow, e.g. GET,POST', multiple: true, multipleNonGreedy: true, delimiter: ','}),
    paths: Flags.string({description: 'request paths to allow, e.g. /hello', multiple: true, multipleNonGreedy: true, delimiter: ','}),
    'from-principal': Flags.string({description: 'source identity without spiffe://, e.g. cluster.local/ns/mesh-lab/sa/curl', multiple: true, multipleNonGreedy: true}),
    'from-namespace': Flags.string({description: 'source namespace, e.g. mesh-lab', multiple: true, multipleNonGreedy: true}),
    namespace: Flags.string({char: 'n', description: 'namespace of the policy', default: LAB.namespace}),
    name: Flags.string({description: 'policy name [default: allow-<methods>-<workload>]'}),
    ...changeFlags,
    ...targetFlags,
  }

  async run(): Promise<PolicyResult> {
    const {flags} = await this.parse(PolicyAllow)
    const opts = {
      ...changeOptions(flags),
      namespace: flags.namespace,
      ...(flags.to ? {to: flags.to} : {}),
      ...(flags.name ? {name: flags.name} : {}),
      methods: flags.methods,
      paths: flags.paths,
      fromPrincipals: flags['from-principal'],
      fromNamespaces: flags['from-namespace'],
    }
    buildAllow(opts) // bad methods, paths or principals: exit 65 before the cluster is contacted
    const lab = await openLabFromFlags(flags, {dryRun: opts.dryRun})
    try {
      const r = await this.whileApplying('Applying the allow policy', opts.dryRun, () => allowPolicy(lab, opts))
      this.printChange(r, () => [`${r.policy.namespace}/${r.policy.name}: ${r.summary}`])
      return r
    } finally {
      await lab.close()
    }
  }
}
