import {Help} from '@oclif/core'
import {EXIT_CODES} from './errors.js'

/** Root help ends with the exit-code table, as CI users need it. */
export default class MeshHelp extends Help {
  protected override async showRootHelp(): Promise<void> {
    await super.showRootHelp()
    const lines = EXIT_CODES.map(({code, meaning}) => `  ${String(code).padEnd(4)}${meaning}`)
    this.log(this.section('EXIT CODES', lines.join('\n')) + '\n')
  }
}
