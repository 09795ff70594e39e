// istio-system/istio-ingressgateway as its own process (dist/local/dataplane/gateway-main.js),
// started and kept alive by meshd on the lab's ingress port. A gateway left behind by a meshd
// that was killed is stopped first, so the port is free again.
import {spawn, type ChildProcess} from 'node:child_process'
import {closeSync, existsSync, openSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {dirname, join, sep} from 'node:path'
import {createInterface} from 'node:readline'
import {fileURLToPath} from 'node:url'
import {isProcessAlive, type HomePaths} from '../home.js'
import type {Logger} from './util.js'

export interface GatewayInfo {
  pid: number
  /** ingress port on 127.0.0.1 */
  port: number
  /** the gateway's admin port (stats, config dump) */
  adminPort?: number
}

export interface GatewaySupervisorOptions {
  paths: HomePaths
  ingressPort: number
  log: Logger
  /** default: dist/local/dataplane/gateway-main.js */
  entry?: string
  /** called whenever a (re)started gateway listens */
  onListening?: (info: GatewayInfo) => void
}

export function gatewayEntry(): string {
  const here = fileURLToPath(import.meta.url)
  const sibling = join(dirname(here), '..', 'dataplane', 'gateway-main.js')
  if (existsSync(sibling)) return sibling
  const i = here.lastIndexOf(`${sep}src${sep}`)
  return i >= 0 ? join(here.slice(0, i), 'dist', 'local', 'dataplane', 'gateway-main.js') : sibling
}

export class GatewaySupervisor {
  private child?: ChildProcess
  private stopped = false
  private backoffMs = 500
  private restartTimer?: NodeJS.Timeout
  private readonly pidFile: string
  private readonly entry: string

  constructor(private readonly o: GatewaySupervisorOptions) {
    this.pidFile = join(o.paths.localDir, 'gateway.pid')
    this.entry = o.entry ?? gatewayEntry()
  }

  available(): boolean {
    return existsSync(this.entry)
  }

  /** Starts the gateway; resolves when it listens (or undefined if it could not start in time). */
  async start(timeoutMs = 10_000): Promise<GatewayInfo | undefined> {
    await this.reapLeftover()
    return this.spawnOnce(timeoutMs)
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.restartTimer) clearTimeout(this.restartTimer)
    const c = this.child
    if (c && c.exitCode === null && c.signalCode === null) {
      const gone = new Promise<void>((r) => c.once('exit', () => r()))
      c.kill('SIGTERM')
      const t = setTimeout(() => c.kill('SIGKILL'), 5000)
      await gone
      clearTimeout(t)
    }
    rmSync(this.pidFile, {force: true})
  }

  private spawnOnce(timeoutMs: number): Promise<GatewayInfo | undefined> {
    const logFd = openSync(join(this.o.paths.localDir, 'gateway.log'), 'a')
    const args = [
      this.entry,
      '--kubeconfig',
      this.o.paths.kubeconfig,
      '--host',
      '127.0.0.1',
      '--port',
      String(this.o.ingressPort),
      '--access-log',
      join(this.o.paths.localDir, 'gateway-access.log'),
    ]
    const child = spawn(process.execPath, args, {stdio: ['ignore', 'pipe', logFd]})
    closeSync(logFd)
    this.child = child
    if (child.pid) writeFileSync(this.pidFile, `${child.pid}\n`)
    const started = Date.now()
    return new Promise((resolve) => {
      let settled = false
      const settle = (v: GatewayInfo | undefined) => {
        if (!settled) {
          settled = true
          clearTimeout(timer)
          resolve(v)
        }
      }
      const timer = setTimeout(() => {
        this.o.log(`gateway: not listening after ${timeoutMs} ms (see gateway.log)`)
        settle(undefined)
      }, timeoutMs)
      createInterface({input: child.stdout!}).on('line', (line) => {
        try {
          const m = JSON.parse(line) as {event?: string; gateway?: {port: number}; admin?: {port: number}; pid?: number}
          if (m.event === 'listening' && m.gateway) {
            const info: GatewayInfo = {pid: child.pid ?? m.pid ?? 0, port: m.gateway.port, ...(m.admin ? {adminPort: m.admin.port} : {})}
            this.o.log(`gateway: listening on 127.0.0.1:${info.port} (pid ${info.pid}, admin ${info.adminPort ?? '-'})`)
            this.o.onListening?.(info)
            settle(info)
            return
          }
        } catch {
          // not the announcement
        }
      })
      child.once('exit', (code, signal) => {
        settle(undefined)
        if (this.stopped) return
        const ranMs = Date.now() - started
        if (ranMs > 10_000) this.backoffMs = 500
        this.o.log(`gateway: exited (${signal ?? `code ${code}`}); restarting in ${this.backoffMs} ms`)
        this.restartTimer = setTimeout(() => void this.spawnOnce(timeoutMs), this.backoffMs)
        this.restartTimer.unref()
        this.backoffMs = Math.min(this.backoffMs * 2, 10_000)
      })
    })
  }

  /** A gateway whose meshd was killed keeps running and holds the port: stop it. */
  private async reapLeftover(): Promise<void> {
    let pid: number | undefined
    try {
      pid = Number(readFileSync(this.pidFile, 'utf8').trim()) || undefined
    } catch {
      return
    }
    if (!pid || !isProcessAlive(pid)) return
    try {
      if (existsSync('/proc/self/cmdline') && !readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('gateway-main')) return
    } catch {
      return
    }
    this.o.log(`gateway: stopping the gateway left by a previous meshd (pid ${pid})`)
    process.kill(pid, 'SIGTERM')
    for (let i = 0; i < 100 && isProcessAlive(pid); i++) await new Promise((r) => setTimeout(r, 50))
    if (isProcessAlive(pid)) process.kill(pid, 'SIGKILL')
  }
}
