// Flags the lab commands share (target selection, dry run, waits), and the mapping from parsed
// flags to library options. Definitions only: no terminal I/O.
import {Flags} from '@oclif/core'
import {invalid} from '../lib/errors.js'
import {parseDurationMs} from '../mesh/rules.js'
import type {ChangeOptions} from './change.js'
import {openLab, type Lab} from './open-target.js'

export const targetFlags = {
  home: Flags.string({description: 'mesh home directory (default: $MESH_HOME or ~/.mesh)', helpGroup: 'TARGET'}),
  context: Flags.string({description: 'kubeconfig context of a real cluster (or MESH_CONTEXT; default: the target mesh lab up chose)', helpGroup: 'TARGET'}),
  kubeconfig: Flags.string({description: 'kubeconfig file (default: $KUBECONFIG or ~/.kube/config)', helpGroup: 'TARGET'}),
}

export const changeFlags = {
  'dry-run': Flags.boolean({description: 'print the YAML that would be applied (server-side dry run when the lab is up); change nothing', default: false}),
  'force-conflicts': Flags.boolean({description: 'take over fields another field manager owns (server-side apply)', default: false}),
  timeout: Flags.string({description: 'how long to wait for the proxies to acknowledge, e.g. 30s', default: '30s'}),
}

export interface TargetFlagValues {
  home?: string
  context?: string
  kubeconfig?: string
}

export interface ChangeFlagValues {
  'dry-run': boolean
  'force-conflicts': boolean
  timeout: string
}

/** "5s" / "500ms" / "0s" → ms; MESH_DURATION (65) otherwise. */
export function durationFlag(text: string, field: string, opts: {allowZero?: boolean} = {}): number {
  const t = text.trim()
  if (opts.allowZero && /^0+(ms|s|m|h)?$/.test(t)) return 0
  const ms = parseDurationMs(t)
  if (ms === undefined || ms <= 0) throw invalid('MESH_DURATION', `${field} "${text}" is not a duration`, 'Write durations like 500ms, 5s or 2m.', field)
  return ms
}

export function changeOptions(f: ChangeFlagValues): ChangeOptions {
  return {dryRun: f['dry-run'], forceConflicts: f['force-conflicts'], syncTimeoutMs: durationFlag(f.timeout, 'timeout')}
}

/** Open the lab for a command; a dry run works with the lab down (client-side only). */
export function openLabFromFlags(f: TargetFlagValues, opts: {dryRun?: boolean} = {}): Promise<Lab> {
  return openLab({home: f.home, context: f.context, kubeconfig: f.kubeconfig, requireUp: !opts.dryRun})
}
