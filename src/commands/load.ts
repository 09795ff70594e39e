import {Flags} from '@oclif/core'
import {MeshCommand} from '../lib/command.js'
import {openLabFromFlags, targetFlags} from '../lab/flags.js'
import {numberInput} from '../verify/common.js'
import {ingressFlag} from '../verify/flags.js'
import {renderLoadFrame, renderLoadLine, renderLoadSummary, runTrafficLoad, validateLoadInput, type TrafficSnapshot, type TrafficSummary} from '../verify/traffic.js'

export default class Load extends MeshCommand<TrafficSummary> {
  static override summary = 'Drive traffic through the ingress and watch the split, req/s, errors and p99 live'
  static override description =
    'Sends requests to <ingress>/hello (or --path) for --duration seconds or --requests requests. On a terminal it redraws, twice a ' +
    'second, a bar per version with its share, requests per second, the error rate and p99 latency; in CI or a pipe it prints one ' +
    'line per second on stderr. At the end it prints the summary on stdout: share per version, counts per status with the Envoy ' +
    'response flag when there is one (503 UO = the circuit breaker refused it: x-envoy-overloaded), the error rate and latency ' +
    'percentiles. --json gives the summary in the standard envelope. Exit 0 when the load ran (errors are results, not failures), ' +
    '65 bad input, 69 lab or ingress unreachable.'
  static override examples = [
    '<%= config.bin %> load',
    '<%= config.bin %> load --duration 30 --rate 200',
    '<%= config.bin %> load --connections 3 --requests 60',
    '<%= config.bin %> load --requests 1000 --json',
  ]
  static override flags = {
    duration: Flags.string({char: 'd', description: 'seconds to run (default 10 when --requests is not given)'}),
    requests: Flags.string({char: 'n', description: 'stop after this many requests instead of a duration'}),
    connections: Flags.string({char: 'c', description: 'concurrent connections', default: '10'}),
    rate: Flags.string({char: 'r', description: 'total requests per second (default: as fast as possible)'}),
    path: Flags.string({description: 'request path', default: '/hello'}),
    ...ingressFlag,
    ...targetFlags,
  }

  async run(): Promise<TrafficSummary> {
    const {flags} = await this.parse(Load)
    const opts = {
      ...(flags.duration !== undefined ? {durationSec: numberInput(flags.duration, 'duration')} : {}),
      ...(flags.requests !== undefined ? {requests: numberInput(flags.requests, 'requests', {integer: true})} : {}),
      connections: numberInput(flags.connections, 'connections', {integer: true}),
      ...(flags.rate !== undefined ? {rate: numberInput(flags.rate, 'rate', {integer: true})} : {}),
      path: flags.path,
      ...(flags.ingress !== undefined ? {ingressUrl: flags.ingress} : {}),
    }
    validateLoadInput(opts)
    const limit = opts.requests !== undefined ? `${opts.requests} requests` : `${opts.durationSec ?? 10} s`
    const lab = await openLabFromFlags(flags)
    const live = !this.jsonEnabled() && this.mode.interactive
    const logLines = !this.jsonEnabled() && !live
    let drawn = 0
    let lastLine = 0
    const draw = (s: TrafficSnapshot, url: string) => {
      if (live) {
        const lines = renderLoadFrame(s, {url, limit})
        // redraw in place: up over the previous frame, clear each line
        let out = drawn ? `\u001B[${drawn}A` : ''
        for (const l of lines) out += `\u001B[2K${l}\n`
        process.stderr.write(out)
        drawn = lines.length
      } else if (logLines && s.elapsedSec - lastLine >= 1) {
        lastLine = Math.floor(s.elapsedSec)
        process.stderr.write(renderLoadLine(s) + '\n')
      }
    }
    const abort = new AbortController()
    const onSigint = () => abort.abort()
    process.once('SIGINT', onSigint)
    try {
      let url = ''
      const summary = await runTrafficLoad(lab.target, {
        ...opts,
        signal: abort.signal,
        progressIntervalMs: live ? 500 : 250,
        onStart: (u) => (url = u),
        onProgress: (s) => draw(s, url),
      })
      for (const line of renderLoadSummary(summary)) this.out(line)
      return summary
    } finally {
      process.removeListener('SIGINT', onSigint)
      await lab.close()
    }
  }
}
