import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {Args, Flags} from '@oclif/core'
import {Chalk} from 'chalk'
import {MeshCommand} from '../../lib/command.js'
import {EXIT, MeshError, usage} from '../../lib/errors.js'
import {meshHome} from '../../local/home.js'
import {
  KeyQueue,
  StepEnvironment,
  TerminalRenderer,
  attachKeys,
  checkPrerequisites,
  clearProgress,
  emptyProgress,
  labsDir,
  loadLab,
  loadProgress,
  requirePrerequisites,
  resumePoint,
  runAll,
  runInteractive,
  runSetup,
  saveProgress,
  stepIndex,
  stepExecutor,
  stepLine,
  walkthroughDir,
  walkthroughJson,
  walkthroughJunit,
  type Lab,
  type LabProgress,
  type WalkthroughReport,
} from '../../walkthrough/index.js'

export type WalkthroughResult =
  | ({mode: 'non-interactive'} & WalkthroughReport)
  | {mode: 'interactive'; lab: {id: string; title: string}; outcome: 'completed' | 'quit'; progress: LabProgress}

const truthy = (v: string | undefined) => Boolean(v && v !== 'false' && v !== '0')

export default class LabWalkthrough extends MeshCommand<WalkthroughResult> {
  static override summary = 'Walk through a lab step by step: explanation, command, checked result'
  static override description = `In a terminal: each step shows its explanation and command; Enter runs it and shows the output and the check's verdict (✔/×); b goes back, s skips, q quits. Progress is saved in $MESH_HOME/walkthroughs/<lab>.json and the next start resumes there.

Unattended (--non-interactive, or automatically when stdin is not a terminal or CI is set): runs every step in order, prints one line per step, stops at the first failed check with exit code 1. --format json|junit prints a report; --output FILE writes it.`
  static override examples = [
    '<%= config.bin %> lab walkthrough canary',
    '<%= config.bin %> lab walkthrough canary --reset',
    '<%= config.bin %> lab walkthrough mtls --non-interactive --format junit --output mtls.xml',
    '<%= config.bin %> lab walkthrough 2 --from shift-50-50',
  ]
  static override args = {
    lab: Args.string({required: true, description: 'lab id, file name or number (see mesh lab list)', ignoreStdin: true}),
  }
  static override flags = {
    'non-interactive': Flags.boolean({description: 'run every step without waiting for keys (CI)', default: false}),
    reset: Flags.boolean({description: "run the lab's setup commands first, then start at step 1", default: false}),
    from: Flags.string({description: 'start at this step (number or id)'}),
    format: Flags.string({description: 'report format for unattended runs', options: ['text', 'json', 'junit']}),
    output: Flags.string({char: 'o', description: 'write the report (json or junit; .xml means junit) to this file'}),
  }

  async run(): Promise<WalkthroughResult> {
    const {args, flags} = await this.parse(LabWalkthrough)
    const root = this.config.root
    const lab = loadLab(labsDir(root), args.lab)
    const from = flags.from === undefined ? undefined : stepIndex(lab, flags.from)
    const format = flags.format ?? (flags.output ? (flags.output.toLowerCase().endsWith('.xml') ? 'junit' : 'json') : 'text')
    if (flags.output && format === 'text') throw usage('MESH_USAGE', '--output writes a json or junit report, not text', 'Add --format json or --format junit, or name the file *.xml for JUnit.')
    const home = meshHome()
    const env = new StepEnvironment({baseEnv: process.env, cwd: root, meshRunJs: join(root, 'bin', 'run.js'), shimDir: join(walkthroughDir(home), 'bin')})

    const tty = Boolean(process.stdin.isTTY && process.stdout.isTTY)
    const unattended = flags['non-interactive'] || this.jsonEnabled() || truthy(process.env.CI) || !tty || format !== 'text' || Boolean(flags.output)
    if (!flags['non-interactive'] && !this.jsonEnabled() && format === 'text' && !tty) process.stderr.write('stdin or stdout is not a terminal: running every step unattended (--non-interactive).\n')

    const ac = new AbortController()
    const restoreTerminal: Array<() => void> = []
    const onSignal = (sig: NodeJS.Signals) => {
      ac.abort()
      for (const r of restoreTerminal) r()
      removeHandlers()
      // let the default action end the process, as if we had no handler
      process.kill(process.pid, sig)
    }
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']
    const handlers = signals.map((s) => [s, () => onSignal(s)] as const)
    const removeHandlers = () => handlers.forEach(([s, h]) => process.off(s, h))
    handlers.forEach(([s, h]) => process.on(s, h))
    try {
      return unattended
        ? await this.unattended(lab, env, {from, format, output: flags.output, reset: flags.reset, signal: ac.signal})
        : await this.interactive(lab, env, home, {from, reset: flags.reset, restoreTerminal, signal: ac.signal})
    } finally {
      removeHandlers()
    }
  }

  private async unattended(
    lab: Lab,
    env: StepEnvironment,
    o: {from?: number; format: string; output?: string; reset: boolean; signal: AbortSignal},
  ): Promise<WalkthroughResult> {
    const json = this.jsonEnabled()
    // step lines go to stdout unless a report does
    const reportToStdout = !o.output && o.format !== 'text'
    const say = (s: string) => {
      if (json) return
      ;(reportToStdout ? process.stderr : process.stdout).write(s + '\n')
    }
    const c = this.c
    if (o.reset) {
      await runSetup(lab, env.run, {onStart: (cmd) => say(c.dim(`… setup: ${cmd}`)), signal: o.signal})
    } else if (lab.prerequisites.some((p) => p.check)) {
      requirePrerequisites(lab, await checkPrerequisites(lab, env.run))
    }
    say(c.bold(`${lab.title}`) + c.dim(` (${lab.id}, ${lab.steps.length} steps)`))
    const report = await runAll(lab, {
      from: o.from,
      signal: o.signal,
      runStep: stepExecutor(env),
      onStepDone: (_s, i, v) => {
        const s = {number: i + 1, id: lab.steps[i]!.id, title: lab.steps[i]!.title, command: lab.steps[i]!.command, status: v.status, message: v.message, durationMs: v.durationMs}
        say(stepLine(s, lab.steps.length, c))
      },
    })
    const rendered = o.format === 'junit' ? walkthroughJunit(report) : walkthroughJson(report)
    if (o.output) {
      writeFileSync(o.output, rendered)
      if (!json) process.stderr.write(`Wrote ${o.format === 'junit' ? 'JUnit' : 'JSON'} report to ${o.output}\n`)
    } else if (reportToStdout && !json) process.stdout.write(rendered)
    const secs = (report.durationMs / 1000).toFixed(1)
    if (report.failedStep)
      say(`${c.red('×')} ${lab.id}: stopped at step ${report.failedStep.number}/${report.total} (${report.failedStep.id}) after ${secs}s; ${report.passed} passed, ${report.notRun} not run`)
    else say(`${c.green('✔')} ${lab.id}: ${report.passed}/${report.total} steps passed${report.skipped ? `, ${report.skipped} skipped` : ''} in ${secs}s`)
    if (report.status === 'fail') this.setExit(EXIT.checkFailed)
    return {mode: 'non-interactive', ...report}
  }

  private async interactive(
    lab: Lab,
    env: StepEnvironment,
    home: string,
    o: {from?: number; reset: boolean; restoreTerminal: Array<() => void>; signal: AbortSignal},
  ): Promise<WalkthroughResult> {
    const chalk = new Chalk({level: process.env.NO_COLOR ? 0 : 1})
    const write = (s: string) => process.stdout.write(s)
    const renderer = new TerminalRenderer({write, columns: process.stdout.columns ?? 80, chalk, clear: true})
    if (o.reset) {
      write(chalk.bold(`Resetting lab ${lab.id}…`) + '\n')
      let atStart = true
      await runSetup(lab, env.run, {
        signal: o.signal,
        onStart: (cmd) => {
          write(`${atStart ? '' : '\n'}  ${chalk.cyan('$')} ${cmd}\n`)
          atStart = true
        },
        onOutput: (chunk) => {
          write(chunk)
          atStart = chunk.endsWith('\n')
        },
      })
      clearProgress(home, lab.id)
    } else if (lab.prerequisites.some((p) => p.check)) {
      write(chalk.dim('Checking prerequisites…') + '\n')
      for (const r of await checkPrerequisites(lab, env.run)) {
        if (r.ok === false) renderer.warn(`‼ Not ready: ${r.title}. ${r.hint ?? 'Start the walkthrough with --reset to run the lab setup.'}`)
      }
    }
    const saved = o.reset ? undefined : loadProgress(home, lab.id)
    const start = o.from === undefined ? resumePoint(lab, saved) : {index: o.from, reason: 'new' as const}
    const keys = new KeyQueue()
    const detach = attachKeys(process.stdin, keys)
    o.restoreTerminal.push(detach)
    try {
      const final = await runInteractive({
        lab,
        keys,
        renderer,
        runStep: stepExecutor(env),
        start,
        progress: saved && !saved.completed ? saved : {...emptyProgress(lab.id), steps: saved?.steps ?? {}},
        save: (p) => saveProgress(home, p),
      })
      return {mode: 'interactive', lab: {id: lab.id, title: lab.title}, outcome: final.phase === 'done' ? 'completed' : 'quit', progress: final.progress}
    } finally {
      detach()
    }
  }
}
