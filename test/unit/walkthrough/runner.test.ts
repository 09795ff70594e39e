// The runner with real shell processes (sh, echo, sleep); fake `mesh` and `kubectl`
// executables stand in for the lab's commands.
import {chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {StepEnvironment, findOnPath, runShell, runStep, stepExecutor, type CommandRunner, type Step} from '../../../src/walkthrough/index.js'

const tmp = mkdtempSync(join(tmpdir(), 'mesh-wt-runner-'))
afterAll(() => rmSync(tmp, {recursive: true, force: true}))

const env = {PATH: process.env.PATH, HOME: process.env.HOME, T: tmp}
const run: CommandRunner = (command, o) => runShell(command, {cwd: tmp, env, ...o})
const mkStep = (over: Partial<Step>): Step => ({id: 's', title: 'S', explanation: 'x', command: 'true', checks: [{exitCode: 0}], timeoutMs: 20_000, line: 1, ...over})

// a killed process may linger as a zombie until something reaps it: that counts as dead
const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return true
  }
}
async function eventually(probe: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (probe()) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`never happened: ${what}`)
}

describe('runShell', () => {
  it('captures stdout, stderr and the exit code of a shell command line', async () => {
    const r = await run(`echo out; echo err >&2; printf '%s' "$T" | wc -c >/dev/null; exit 7`, {timeoutMs: 20_000})
    expect(r).toMatchObject({exitCode: 7, stdout: 'out\n', stderr: 'err\n', timedOut: false, interrupted: false})
  })

  it('streams output as it arrives', async () => {
    const chunks: string[] = []
    await run('echo one; echo two >&2', {timeoutMs: 20_000, onOutput: (c, s) => chunks.push(`${s}:${c}`)})
    expect(chunks.join('')).toContain('stdout:one')
    expect(chunks.join('')).toContain('stderr:two')
  })

  it('a timeout stops the whole process group, not only the shell', async () => {
    const pidFile = join(tmp, 'bg.pid')
    const r = await run(`sleep 30 & echo $! > ${pidFile}; wait`, {timeoutMs: 500})
    expect(r.timedOut).toBe(true)
    expect(r.exitCode).toBeNull()
    const pid = Number(readFileSync(pidFile, 'utf8'))
    await eventually(() => !alive(pid), `sleep ${pid} killed`)
  })

  it('an abort interrupts the command', async () => {
    const ac = new AbortController()
    const r = await run('echo started; sleep 30', {timeoutMs: 20_000, signal: ac.signal, onOutput: (c) => c.includes('started') && ac.abort()})
    expect(r).toMatchObject({interrupted: true, timedOut: false, exitCode: null})
  })

  it('keeps the tail of very long output', async () => {
    const r = await runShell(`i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done`, {cwd: tmp, env, timeoutMs: 20_000, maxOutputBytes: 1000})
    expect(r.truncated).toBe(true)
    expect(r.stdout).toContain('line-1999')
    expect(r.stdout).not.toContain('line-10\n')
  })
})

describe('runStep', () => {
  it('passes when every check passes, running each distinct verifying command once', async () => {
    const log = join(tmp, 'verify.log')
    const step = mkStep({
      command: `echo shifted > ${join(tmp, 'state')}`,
      checks: [{exitCode: 0}, {run: `echo x >> ${log}; cat ${join(tmp, 'state')}`, stdoutContains: ['shifted']}, {run: `echo x >> ${log}; cat ${join(tmp, 'state')}`, exitCode: 0}],
    })
    const seen: string[] = []
    const v = await runStep(step, run, {onCheckRun: (c) => seen.push(c)})
    expect(v.status).toBe('pass')
    expect(readFileSync(log, 'utf8')).toBe('x\n')
    expect(seen).toHaveLength(1)
    expect(v.checks.map((c) => c.ok)).toEqual([true, true, true])
  })

  it('fails with the first unmet expectation, naming the verifying command', async () => {
    const v = await runStep(mkStep({command: 'echo 50/50', checks: [{exitCode: 0}, {run: 'sh -c "exit 1"', exitCode: 0}]}), run)
    expect(v.status).toBe('fail')
    expect(v.message).toBe('`sh -c "exit 1"`: expected exit code 0; got exit code 1')
  })

  it('does not run verifying commands after the step command ran out of time', async () => {
    const marker = join(tmp, 'verified')
    const v = await runStep(mkStep({command: 'sleep 20', timeoutMs: 300, checks: [{exitCode: 0}, {run: `touch ${marker}`}]}), run)
    expect(v.status).toBe('fail')
    expect(v.message).toMatch(/expected command finishes in time; got timed out/)
    expect(existsSync(marker)).toBe(false)
  })
})

describe('StepEnvironment', () => {
  const bin = join(tmp, 'fakebin')
  mkdirSync(bin, {recursive: true})
  const calls = join(tmp, 'mesh-calls.log')
  // a fake mesh that answers `lab status --json` with a kubeconfig path, and logs its calls
  writeFileSync(
    join(bin, 'mesh'),
    `#!/bin/sh\necho "$*" >> ${calls}\nif [ "$*" = "lab status --json" ]; then echo '{"ok": true, "command": "lab status", "result": {"kubeconfig": "/tmp/lab-kubeconfig"}}'; exit 0; fi\necho "mesh $*"\n`,
  )
  writeFileSync(join(bin, 'kubectl'), '#!/bin/sh\necho "KUBECONFIG=$KUBECONFIG args=$*"\n')
  chmodSync(join(bin, 'mesh'), 0o755)
  chmodSync(join(bin, 'kubectl'), 0o755)

  it('gives kubectl steps the lab kubeconfig from `mesh lab status --json`, asking once', async () => {
    const e = new StepEnvironment({baseEnv: {PATH: `${bin}:${process.env.PATH}`}, cwd: tmp, meshRunJs: '/nonexistent/run.js', shimDir: join(tmp, 'shim1')})
    const exec = stepExecutor(e)
    const a = await exec(mkStep({command: 'kubectl get pods -n mesh-lab', checks: [{stdoutContains: ['KUBECONFIG=/tmp/lab-kubeconfig args=get pods -n mesh-lab']}]}))
    const b = await exec(mkStep({command: 'kubectl apply -f x.yaml', checks: [{stdoutContains: ['KUBECONFIG=/tmp/lab-kubeconfig']}]}))
    expect([a.status, b.status]).toEqual(['pass', 'pass'])
    expect(readFileSync(calls, 'utf8')).toBe('lab status --json\n')
    // the fake on PATH wins: no shim written
    expect(existsSync(join(tmp, 'shim1', 'mesh'))).toBe(false)
  })

  it('says why when a kubectl step fails without a kubeconfig', async () => {
    const down = join(tmp, 'downbin')
    mkdirSync(down)
    writeFileSync(join(down, 'mesh'), '#!/bin/sh\necho "Error [MESH_LAB_DOWN]" >&2\nexit 69\n')
    writeFileSync(join(down, 'kubectl'), '#!/bin/sh\necho "connection refused" >&2\nexit 1\n')
    chmodSync(join(down, 'mesh'), 0o755)
    chmodSync(join(down, 'kubectl'), 0o755)
    const e = new StepEnvironment({baseEnv: {PATH: `${down}:${process.env.PATH}`}, cwd: tmp, meshRunJs: '/nonexistent/run.js', shimDir: join(tmp, 'shim2')})
    const v = await stepExecutor(e)(mkStep({command: 'kubectl get pods -n mesh-lab'}))
    expect(v.status).toBe('fail')
    expect(v.message).toContain('`mesh lab status --json` gave no kubeconfig (exit 69); is the lab up?')
  })

  it('puts a shim for this package’s CLI on PATH when mesh is not there', async () => {
    const runJs = join(tmp, 'fake-run.js')
    writeFileSync(runJs, 'console.log("fake mesh got: " + process.argv.slice(2).join(" "))\n')
    const path = (process.env.PATH ?? '').split(':').filter((d) => !findOnPath('mesh', d)).join(':')
    const shimDir = join(tmp, 'shim3')
    const e = new StepEnvironment({baseEnv: {PATH: path}, cwd: tmp, meshRunJs: runJs, shimDir})
    const v = await stepExecutor(e)(mkStep({command: 'mesh canary shift 90/10', checks: [{stdoutContains: ['fake mesh got: canary shift 90/10']}]}))
    expect(v.status, v.message).toBe('pass')
    expect(readFileSync(join(shimDir, 'mesh'), 'utf8')).toContain(runJs)
  })
})
