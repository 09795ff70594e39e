import type {Hook} from '@oclif/core'
import {EXIT} from './errors.js'

/** An unknown command is a usage error (64), not oclif's default 2, which means "inconclusive" here. */
const hook: Hook.CommandNotFound = async function (opts) {
  process.stderr.write(`Error [MESH_UNKNOWN_COMMAND]: mesh has no command "${opts.id.replaceAll(':', ' ')}"\n  Suggestion: Run mesh --help to list the commands.\n`)
  this.exit(EXIT.usage)
}
export default hook
