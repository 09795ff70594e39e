// The lab commands end to end: the real CLI (compiled) against a real embedded lab in a temp
// MESH_HOME. Build once, run `mesh …` as a user would, and clean up every process afterwards.
import {existsSync, mkdtempSync, readdirSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {execa} from 'execa'
import {KubeClient, type KubeObject} from '../../../src/cluster/client.js'
import {buildIfStale, ROOT} from '../../helpers/build.js'

export {ROOT}

/** Compile into dist/ when it is older than src/. */
export const ensureBuilt = (): void => buildIfStale('dist/commands/canary/shift.js')

/** The embedded data plane pieces these tests need to see an effect on traffic. */
export const dataPlane = {
  gateway: existsSync(join(ROOT, 'dist/local/dataplane/gateway-main.js')) || existsSync(join(ROOT, 'src/local/dataplane/gateway-main.ts')),
  sidecar: existsSync(join(ROOT, 'dist/local/dataplane/sidecar.js')) || existsSync(join(ROOT, 'src/local/dataplane/sidecar.ts')),
}

export interface Run {
  status: number
  stdout: string
  stderr: string
  json?: any // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** `mesh <args>` with MESH_HOME=home, CI=true, NO_COLOR. */
export async function mesh(home: string, args: string[], opts: {env?: NodeJS.ProcessEnv; timeoutMs?: number} = {}): Promise<Run> {
  const r = await execa(process.execPath, [join(ROOT, 'bin/run.js'), ...args], {
    cwd: ROOT,
    env: {...process.env, MESH_HOME: home, CI: 'true', NO_COLOR: '1', MESH_CONTEXT: '', ...opts.env},
    reject: false,
    timeout: opts.timeoutMs ?? 120_000,
    stdin: 'ignore',
  })
  let json
  if (args.includes('--json')) {
    try {
      json = JSON.parse(String(r.stdout))
    } catch {
      json = undefined
    }
  }
  return {status: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr), json}
}

export const tempHome = (prefix = 'mesh-cmd-it-') => mkdtempSync(join(tmpdir(), prefix))

/** A KubeClient on the lab's kubeconfig, to look at what the commands did. */
export const labClient = (home: string) => KubeClient.fromKubeconfig(join(home, 'kubeconfig'), 'mesh-local')

/** resourceVersion of every Istio object of the lab: equal before/after means nothing changed. */
export async function istioVersions(client: KubeClient): Promise<Record<string, string>> {
  const kinds: Array<[string, string]> = [
    ['networking.istio.io/v1', 'VirtualService'],
    ['networking.istio.io/v1', 'DestinationRule'],
    ['networking.istio.io/v1', 'Gateway'],
    ['security.istio.io/v1', 'PeerAuthentication'],
    ['security.istio.io/v1', 'AuthorizationPolicy'],
  ]
  const out: Record<string, string> = {}
  for (const [apiVersion, kind] of kinds) {
    for (const o of await client.list<KubeObject>(apiVersion, kind)) out[`${kind}/${o.metadata.namespace}/${o.metadata.name}`] = o.metadata.resourceVersion ?? ''
  }
  return out
}

export const routeWeights = (vs: KubeObject | undefined): string =>
  ((vs?.spec?.http?.[0]?.route ?? []) as Array<{destination: {subset: string}; weight: number}>).map((r) => `${r.destination.subset}=${r.weight}`).join(',')

/** Processes whose command line mentions the home (meshd and its pods), by pid. */
function processesOf(home: string): number[] {
  const pids: number[] = []
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8')
      if (cmd.includes(home)) pids.push(Number(d))
    } catch {
      // gone
    }
  }
  return pids
}

/** lab down --purge, then SIGKILL anything still running from this home, then remove it. */
export async function cleanupLab(home: string | undefined): Promise<void> {
  if (!home) return
  await mesh(home, ['lab', 'down', '--purge', '--timeout', '10']).catch(() => undefined)
  for (const pid of processesOf(home)) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
  rmSync(home, {recursive: true, force: true})
}

/** `lab up`, then `lab reset` (deploys the lab and waits for it): returns the ingress URL. */
export async function startLab(home: string): Promise<{ingress: string}> {
  const up = await mesh(home, ['lab', 'up', '--json'])
  if (up.status !== 0) throw new Error(`lab up failed (${up.status}): ${up.stdout}\n${up.stderr}`)
  const reset = await mesh(home, ['lab', 'reset', '--json'])
  if (reset.status !== 0) throw new Error(`lab reset failed (${reset.status}): ${reset.stdout}\n${reset.stderr}`)
  return {ingress: up.json.result.ingress as string}
}

/** n sequential GETs to a URL; status and body of each. */
export async function hits(url: string, n: number, init: RequestInit = {}): Promise<Array<{status: number; body: string}>> {
  const out: Array<{status: number; body: string}> = []
  for (let i = 0; i < n; i++) {
    const r = await fetch(url, {...init, signal: AbortSignal.timeout(10_000)})
    out.push({status: r.status, body: await r.text()})
  }
  return out
}
