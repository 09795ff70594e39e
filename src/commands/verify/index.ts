import {writeFileSync} from 'node:fs'
import {resolve} from 'node:path'
import {Flags} from '@oclif/core'
import type {CheckResult, CheckSummary} from '../../checks/report.js'
import {MeshCommand} from '../../lib/command.js'
import {EXIT, MeshError} from '../../lib/errors.js'
import {openLabFromFlags, targetFlags, type TargetFlagValues} from '../../lab/flags.js'
import {VERIFY_GROUPS, type VerifyGroup} from '../../verify/catalog.js'
import {ejectionFlags, ejectionOptions, ingressFlag, outputFlags, securityFlags, securityOptions, splitFlags, splitOptions, type VerifyFormat} from '../../verify/flags.js'
import {planOutput} from '../../verify/output.js'
import {parseGroups, runVerify, type VerifyOptions, type VerifyReport} from '../../verify/run.js'

export interface VerifyResult {
  target: VerifyReport['target']
  summary: CheckSummary
  checks: CheckResult[]
  skipped: VerifyReport['skipped']
  /** files written (--output, --report) */
  files: string[]
}

interface OutputFlagValues extends TargetFlagValues {
  format: string
  output?: string
  report?: string
  verbose: boolean
  'sync-timeout': number
}

/** Shared by `mesh verify` and `mesh verify <check>`: run, render, write files, set the exit code. */
export abstract class VerifyCommand extends MeshCommand<VerifyResult> {
  protected async execute(flags: OutputFlagValues, options: (progress: (t: string) => void) => VerifyOptions): Promise<VerifyResult> {
    const interactive = this.mode.interactive
    const ui = this.ui // one instance: it remembers the current stage
    const progress = (t: string) => ui.stage(t)
    // Ctrl-C stops the load; the checks finish (inconclusive) and the ejection check still
    // scales the faulty replica back before we exit 130
    const abort = new AbortController()
    const onSigint = () => abort.abort()
    process.once('SIGINT', onSigint)
    const base = options(progress)
    const opts: VerifyOptions = {
      ...base,
      split: {...base.split, signal: abort.signal},
      ejection: {...base.ejection, signal: abort.signal},
      syncTimeoutMs: flags['sync-timeout'] * 1000,
      onProgress: progress,
    }
    let report: VerifyReport
    try {
      const lab = await openLabFromFlags(flags)
      try {
        report = await runVerify(lab, opts).catch((e: unknown) => {
          ui.fail()
          throw e
        })
      } finally {
        await lab.close()
      }
    } finally {
      process.removeListener('SIGINT', onSigint)
    }
    ui.succeed(`${report.checks.length} checks run on ${report.target.kind} (${report.target.context})`)
    for (const w of report.warnings) this.meshWarn(w.code, w.message)
    const plan = planOutput(report, {
      format: flags.format as VerifyFormat,
      ...(flags.output ? {output: flags.output} : {}),
      ...(flags.report ? {report: flags.report} : {}),
      jsonEnvelope: this.jsonEnabled(),
      color: interactive && !process.env.NO_COLOR,
      verbose: flags.verbose,
      title: `mesh ${this.commandName} — ${report.target.kind} ${report.target.context}`,
    })
    const files: string[] = []
    for (const f of plan.files) {
      try {
        writeFileSync(f.path, f.content)
      } catch (e) {
        throw new MeshError('MESH_OUTPUT_FILE', `cannot write ${f.path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, {
          suggestion: 'Give a path in a directory that exists and is writable.',
          exit: EXIT.invalidInput,
          field: 'output',
        })
      }
      files.push(resolve(f.path))
      ui.info(`wrote ${f.path}`)
    }
    if (plan.stdout) process.stdout.write(plan.stdout)
    this.setExit(abort.signal.aborted ? 130 : report.summary.exitCode)
    if (abort.signal.aborted) process.stderr.write('Interrupted: the results above are partial.\n')
    return {target: report.target, summary: report.summary, checks: report.checks, skipped: report.skipped, files}
  }
}

export default class Verify extends VerifyCommand {
  static override summary = 'Run every check that applies to the lab now: sync, split, mTLS, authorization, ejection'
  static override description =
    'Checks as data, rendered as ✔/‼/× lines (or JSON, or JUnit for CI): proxies synced; the split through the ingress matches the ' +
    "current weights (sequential test, stated false-alarm rate); the mTLS matrix matches the PeerAuthentications; the authorization " +
    'matrix matches the AuthorizationPolicies (only when some exist); outlier ejection is possible with the DestinationRule. The ejection ' +
    'itself scales hello-v1-faulty and so runs only with --include ejection. Exit 0 all passed (warnings allowed), 1 a check failed, ' +
    '2 inconclusive, 64 usage (e.g. --format xml), 65 bad input, 69 lab or ingress unreachable. See docs/verify.md.'
  static override examples = [
    '<%= config.bin %> verify',
    '<%= config.bin %> verify --format junit --output verify.xml',
    '<%= config.bin %> verify --report report.html',
    '<%= config.bin %> verify --include ejection --json',
  ]
  static override flags = {
    include: Flags.string({description: `also run checks that change the lab: ejection (repeatable or comma-separated; any of ${VERIFY_GROUPS.join(', ')})`, multiple: true}),
    ...outputFlags,
    ...ingressFlag,
    ...splitFlags,
    ...securityFlags,
    ...ejectionFlags,
    ...targetFlags,
  }

  async run(): Promise<VerifyResult> {
    const {flags} = await this.parse(Verify)
    const include = parseGroups(flags.include, 'include') as VerifyGroup[] | undefined
    // every value is checked before the lab is opened: bad input is 65 even with the lab down
    const split = splitOptions(flags)
    const sec = securityOptions(flags)
    const ejection = ejectionOptions(flags)
    return this.execute(flags, () => ({
      ...(include ? {include} : {}),
      split,
      mtls: {calls: sec.calls},
      authz: sec,
      ejection,
    }))
  }
}
