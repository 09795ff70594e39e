// Shared by the integration tests that start real labs: find a home's meshd, tell whether a
// process is alive (zombies count as dead), kill a leftover meshd, and poll until a condition.
import {readFileSync} from 'node:fs'
import {join} from 'node:path'

export function meshdPid(home: string): number | undefined {
  try {
    return Number(readFileSync(join(home, 'local', 'meshd.pid'), 'utf8').trim()) || undefined
  } catch {
    return undefined
  }
}

export function alive(pid: number): boolean {
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

/** SIGKILL the meshd of `home` if `lab down` left it running (only a meshd serving that home). */
export function killLeftoverMeshd(home: string, pid = meshdPid(home)): void {
  if (!pid || !alive(pid)) return
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    if (cmd.includes('meshd') && cmd.includes(home)) process.kill(pid, 'SIGKILL')
  } catch {
    // gone
  }
}

export async function until<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v) return v
    } catch (e) {
      last = e
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`)
    await new Promise((r) => setTimeout(r, everyMs))
  }
}
