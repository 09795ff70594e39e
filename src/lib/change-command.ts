// The commands that change the lab (canary shift/step/rollback, mtls, policy allow/deny-all)
// show their work the same way: a spinner while applying, then either the dry run's YAML or
// what changed, their own lines, and how long the proxies took to acknowledge.
import type {ChangeReport} from '../lab/change.js'
import {describeChanges, describeSync, dryRunNote, formatMs} from '../lab/render.js'
import {MeshCommand} from './command.js'

type PrintableChange = ChangeReport & {elapsedMs: number; notes?: string[]}

export abstract class ChangeCommand<T> extends MeshCommand<T> {
  /** Shows `stage` while `work` runs (no spinner for a dry run) and marks it failed if work throws. */
  protected async whileApplying<R>(stage: string, dryRun: boolean | undefined, work: () => Promise<R>): Promise<R> {
    if (!dryRun) this.ui.stage(stage)
    try {
      return await work()
    } catch (error) {
      this.ui.fail()
      throw error
    }
  }

  /** Dry run: the YAML on stdout and what validated it on stderr. Otherwise the change, `details`, then the propagation line; `notes` become warnings with noteCode. */
  protected printChange(r: PrintableChange, details: () => string[], noteCode?: string): void {
    const notes = noteCode ? (r.notes ?? []) : []
    if (r.dryRun) {
      for (const n of notes) this.meshWarn(noteCode!, n)
      this.out(r.yaml.trimEnd())
      process.stderr.write(`${dryRunNote(r)}\n`)
      return
    }
    this.ui.succeed(describeChanges(r.changes))
    for (const n of notes) this.meshWarn(noteCode!, n)
    for (const line of details()) this.out(line)
    this.out(`${describeSync(r.sync!)}; took ${formatMs(r.elapsedMs)} in all`)
  }
}
