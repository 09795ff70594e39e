// The images the embedded cluster can run. Each entry says which repositories it answers to
// and turns a pod's command/args/env into an AppPlan: plain data saying which listeners to
// open with which behaviour and what the main process does. pod-main.ts executes plans;
// this file has no side effects so meshd can check an image before spawning anything.
// Adding an image that reuses a behaviour is one entry in EMULATED_IMAGES.

import type {PodLaunch} from '../controllers/pod-runtime.js'

// ---------------------------------------------------------------------------------------------
// Plans

export type Behaviour =
  /** Istio's samples/helloworld Flask app */
  | {kind: 'helloworld'; version: string; instance: string}
  /** fortio's echo handler; defaultParams apply when the request has no query string */
  | {kind: 'fortio-echo'; defaultParams: string; maxDelayMs: number; debugPath: string; uiPath: string}
  /** raw TCP echo (fortio's -tcp-port) */
  | {kind: 'tcp-echo'}

export interface AppListener {
  /** short name for logs, e.g. `http` or `tcp-echo` */
  name: string
  /** the port the real image listens on; under a sidecar the emulation binds port + APP_PORT_OFFSET */
  port: number
  behaviour: Behaviour
}

export interface CurlRequest {
  url: string
  method: string
  headers: Array<[string, string]>
  body?: string
  silent: boolean
  showError: boolean
  fail: boolean
  includeHeaders: boolean
  headOnly: boolean
  /** false when `-o /dev/null` */
  printBody: boolean
  writeOut?: string
  maxTimeMs?: number
  connectTimeoutMs?: number
}

export type AppMain =
  /** serve the listeners until terminated */
  | {kind: 'serve'}
  /** a sleeping client (e.g. `sleep infinity`); ms null = forever */
  | {kind: 'sleep'; ms: number | null}
  /** run one curl request, then exit with curl's exit code */
  | {kind: 'curl'; request: CurlRequest}
  /** print to stderr and exit with code, as the real image would */
  | {kind: 'exit'; code: number; stderr: string}

export interface AppPlan {
  listeners: AppListener[]
  main: AppMain
  /** things the real image would do that the emulation does not (logged as warnings at start) */
  notEmulated: string[]
}

export type PlanResult = {ok: true; plan: AppPlan} | {ok: false; reason: string; message: string}

export interface PlanContext {
  podName: string
  /** the image as written in the manifest, for messages */
  image: string
  /** effective argv after applying Kubernetes command/args over the image's ENTRYPOINT/CMD */
  argv: string[]
  env: Record<string, string>
}

export interface EmulatedImage {
  /** canonical repositories (Docker Hub names without `docker.io/`), any tag matches */
  repositories: string[]
  /** one line shown in `emulated images: …` */
  summary: string
  entrypoint: string[]
  cmd: string[]
  plan(ctx: PlanContext): PlanResult
}

// ---------------------------------------------------------------------------------------------
// Image references

export interface ImageRef {
  /** registry host, undefined for Docker Hub */
  registry?: string
  repository: string
  tag?: string
  digest?: string
}

const DOCKER_HUB = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io'])

/** Split `host[:port]/repo[:tag][@digest]` the way container runtimes do. */
export function parseImageRef(image: string): ImageRef {
  let rest = image.trim()
  let digest: string | undefined
  const at = rest.indexOf('@')
  if (at >= 0) {
    digest = rest.slice(at + 1)
    rest = rest.slice(0, at)
  }
  let tag: string | undefined
  const colon = rest.lastIndexOf(':')
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1)
    rest = rest.slice(0, colon)
  }
  let registry: string | undefined
  const slash = rest.indexOf('/')
  if (slash > 0) {
    const first = rest.slice(0, slash)
    // the first component is a host only if it looks like one (as in the Docker reference grammar)
    if (first.includes('.') || first.includes(':') || first === 'localhost') {
      registry = first
      rest = rest.slice(slash + 1)
    }
  }
  if (registry !== undefined && DOCKER_HUB.has(registry)) registry = undefined
  if (registry === undefined && rest.startsWith('library/')) rest = rest.slice('library/'.length)
  return {registry, repository: rest, tag, digest}
}

/** `istio/examples-helloworld-v1` for any Docker Hub spelling; `host/repo` for other registries. */
export function canonicalRepository(image: string): string {
  const ref = parseImageRef(image)
  return ref.registry === undefined ? ref.repository : `${ref.registry}/${ref.repository}`
}

/**
 * Kubernetes semantics: `command` replaces ENTRYPOINT (and drops CMD); `args` replace CMD.
 */
export function effectiveArgv(image: Pick<EmulatedImage, 'entrypoint' | 'cmd'>, command: string[] | undefined, args: string[]): string[] {
  if (command !== undefined && command.length > 0) return [...command, ...args]
  return [...image.entrypoint, ...(args.length > 0 ? args : image.cmd)]
}

// ---------------------------------------------------------------------------------------------
// Small parsers shared by the entries

const basename = (p: string): string => p.slice(p.lastIndexOf('/') + 1)

/** Port from `5000`, `:5000`, `0.0.0.0:5000`, `[::]:5000`; undefined when not a valid port. */
export function parseListenPort(value: string): number | undefined {
  const m = /^(?:.*:)?(\d{1,5})$/.exec(value.trim())
  if (!m) return undefined
  const port = Number(m[1])
  return port >= 1 && port <= 65_535 ? port : undefined
}

const GO_UNITS: Record<string, number> = {ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000}

/** Go's time.ParseDuration, in milliseconds; undefined when invalid. */
export function parseGoDuration(value: string): number | undefined {
  const s = value.trim()
  if (s === '0') return 0
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy
  let total = 0
  let matched = 0
  let m: RegExpExecArray | null
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * GO_UNITS[m[2]]
    matched = re.lastIndex
  }
  return matched === s.length && matched > 0 ? total : undefined
}

/** busybox/coreutils `sleep` operand: `10`, `1.5s`, `5m`, `2h`, `3650d`, `infinity`; ms, null = forever. */
export function parseSleepOperand(value: string): number | null | undefined {
  if (value === 'infinity' || value === 'inf') return null
  const m = /^(\d+(?:\.\d+)?)([smhd]?)$/.exec(value)
  if (!m) return undefined
  const unit = {'': 1000, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000}[m[2]] as number
  const ms = Number(m[1]) * unit
  // timers cannot wait longer than ~24.8 days; anything that long is "forever" for a lab
  return ms > 2_000_000_000 ? null : ms
}

const notEmulated = (ctx: PlanContext, detail: string): PlanResult => ({
  ok: false,
  reason: 'CommandNotEmulated',
  message: `mesh emulates image "${ctx.image}" but not the command ${JSON.stringify(ctx.argv)}: ${detail}`,
})

/** `sleep X`, `/bin/sleep X`, `tail -f /dev/null`, `sh -c "sleep X"`: a client that idles. */
function sleepPlan(argv: string[]): AppMain | undefined {
  const [prog, ...rest] = argv
  const name = basename(prog ?? '')
  if (name === 'sleep' && rest.length === 1) {
    const ms = parseSleepOperand(rest[0])
    return ms === undefined ? undefined : {kind: 'sleep', ms}
  }
  if (name === 'tail' && rest.length === 2 && rest[0] === '-f' && rest[1] === '/dev/null') return {kind: 'sleep', ms: null}
  if (['sh', 'ash', 'bash'].includes(name) && rest.length === 2 && rest[0] === '-c') {
    const words = rest[1].trim().replace(/^exec\s+/, '').split(/\s+/)
    return sleepPlan(words)
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------
// helloworld (Istio samples/helloworld): gunicorn on [::]:5000 serving /hello and /health

const HELLOWORLD_PORT = 5000

function helloworldEntry(version: 'v1' | 'v2'): EmulatedImage {
  return {
    repositories: [`istio/examples-helloworld-${version}`, `registry.istio.io/release/examples-helloworld-${version}`],
    summary: `istio/examples-helloworld-${version} (GET /hello, /health on port 5000)`,
    entrypoint: [],
    cmd: ['gunicorn', '-b', `[::]:${HELLOWORLD_PORT}`, 'app:app', '-k', 'gevent'],
    plan(ctx) {
      const main = sleepPlan(ctx.argv)
      if (main) return {ok: true, plan: {listeners: [], main, notEmulated: []}}
      const behaviour: Behaviour = {
        kind: 'helloworld',
        // the image bakes SERVICE_VERSION in; the manifest's env overrides it
        version: ctx.env.SERVICE_VERSION ?? version,
        instance: ctx.env.HOSTNAME ?? ctx.podName,
      }
      const [prog, ...rest] = ctx.argv
      const name = basename(prog ?? '')
      let ports: number[] = []
      if (name === 'gunicorn') {
        for (let i = 0; i < rest.length; i++) {
          const a = rest[i]
          let bind: string | undefined
          if (a === '-b' || a === '--bind') bind = rest[++i]
          else if (a.startsWith('--bind=')) bind = a.slice('--bind='.length)
          else if (a.startsWith('-b') && a.length > 2) bind = a.slice(2)
          if (bind === undefined) continue
          const port = parseListenPort(bind)
          if (port === undefined) return notEmulated(ctx, `cannot read a port from gunicorn bind "${bind}"`)
          ports.push(port)
        }
        // gunicorn binds 127.0.0.1:8000 when no -b is given: unreachable from outside the pod
        if (ports.length === 0) return {ok: true, plan: {listeners: [], main: {kind: 'serve'}, notEmulated: ['gunicorn without -b listens on 127.0.0.1:8000 only; nothing is reachable from other pods']}}
      } else if ((name === 'python' || name === 'python3') && rest[0] === 'app.py') {
        ports = [HELLOWORLD_PORT] // Flask's app.run default
      } else {
        return notEmulated(ctx, 'helloworld runs as `gunicorn -b <addr>:<port> app:app`, `python app.py`, or a sleep command')
      }
      const listeners = [...new Set(ports)].map((port) => ({name: 'http', port, behaviour}))
      return {ok: true, plan: {listeners, main: {kind: 'serve'}, notEmulated: []}}
    },
  }
}

// ---------------------------------------------------------------------------------------------
// fortio: `fortio server` → echo server on -http-port (default 8080), TCP echo on -tcp-port (8078)

const FORTIO_VALUE_FLAGS = new Set([
  'http-port', 'echo-server-default-params', 'max-echo-delay', 'echo-debug-path', 'tcp-port', 'udp-port',
  'grpc-port', 'redirect-port', 'config-dir', 'loglevel', 'ui-path', 'static-dir', 'data-dir', 'base-url',
])
const FORTIO_BOOL_FLAGS = new Set(['logcaller', 'logprefix', 'json'])

export interface FortioServerArgs {
  httpPort: number
  tcpPort?: number
  defaultParams: string
  maxDelayMs: number
  debugPath: string
  uiPath: string
  notEmulated: string[]
}

/** Parse `server [-flag value | -flag=value]…` as Go's flag package does; error names the bad input. */
export function parseFortioServerArgs(args: string[]): FortioServerArgs | {error: string} {
  if (args[0] !== 'server') {
    return {error: `only the \`server\` subcommand is emulated (got ${args[0] === undefined ? 'no subcommand' : `"${args[0]}"`})`}
  }
  const flags = new Map<string, string>()
  for (let i = 1; i < args.length; i++) {
    const a = args[i]
    if (!a.startsWith('-') || a === '-' || a === '--') return {error: `unexpected argument "${a}"`}
    const body = a.replace(/^--?/, '')
    const eq = body.indexOf('=')
    const name = eq >= 0 ? body.slice(0, eq) : body
    if (FORTIO_BOOL_FLAGS.has(name)) continue
    if (!FORTIO_VALUE_FLAGS.has(name)) return {error: `flag -${name} is not emulated (emulated: ${[...FORTIO_VALUE_FLAGS].map((f) => `-${f}`).join(' ')})`}
    let value: string
    if (eq >= 0) value = body.slice(eq + 1)
    else if (i + 1 < args.length) value = args[++i]
    else return {error: `flag -${name} needs a value`}
    flags.set(name, value)
  }
  const httpPortRaw = flags.get('http-port') ?? '8080'
  const httpPort = parseListenPort(httpPortRaw)
  if (httpPort === undefined) return {error: `-http-port "${httpPortRaw}" is not a port`}
  let tcpPort: number | undefined
  const tcpRaw = flags.get('tcp-port') ?? '8078'
  if (tcpRaw !== 'disabled') {
    tcpPort = parseListenPort(tcpRaw)
    if (tcpPort === undefined) return {error: `-tcp-port "${tcpRaw}" is not a port`}
    if (tcpPort === httpPort) tcpPort = undefined
  }
  const maxRaw = flags.get('max-echo-delay') ?? '1.5s'
  const maxDelayMs = parseGoDuration(maxRaw)
  if (maxDelayMs === undefined) return {error: `-max-echo-delay "${maxRaw}" is not a Go duration`}
  const notEmulatedList: string[] = []
  for (const [flag, dflt] of [['grpc-port', '8079'], ['redirect-port', '8081'], ['udp-port', '8078']] as const) {
    const v = flags.get(flag) ?? dflt
    if (v !== 'disabled') notEmulatedList.push(`fortio -${flag} ${v} (not served by the emulation)`)
  }
  notEmulatedList.push(`fortio web UI under ${flags.get('ui-path') ?? '/fortio/'} (answers 501)`)
  return {
    httpPort,
    tcpPort,
    defaultParams: flags.get('echo-server-default-params') ?? '',
    maxDelayMs,
    debugPath: flags.get('echo-debug-path') ?? '/debug',
    uiPath: flags.get('ui-path') ?? '/fortio/',
    notEmulated: notEmulatedList,
  }
}

const fortioEntry: EmulatedImage = {
  repositories: ['fortio/fortio'],
  summary: 'fortio/fortio (server: echo on -http-port with -echo-server-default-params, TCP echo)',
  entrypoint: ['/usr/bin/fortio'],
  cmd: ['server'],
  plan(ctx) {
    const [prog, ...rest] = ctx.argv
    if (basename(prog ?? '') !== 'fortio') return notEmulated(ctx, 'the fortio image only has the fortio binary')
    const parsed = parseFortioServerArgs(rest)
    if ('error' in parsed) return notEmulated(ctx, parsed.error)
    const listeners: AppListener[] = [{
      name: 'http',
      port: parsed.httpPort,
      behaviour: {kind: 'fortio-echo', defaultParams: parsed.defaultParams, maxDelayMs: parsed.maxDelayMs, debugPath: parsed.debugPath, uiPath: parsed.uiPath},
    }]
    if (parsed.tcpPort !== undefined) listeners.push({name: 'tcp-echo', port: parsed.tcpPort, behaviour: {kind: 'tcp-echo'}})
    return {ok: true, plan: {listeners, main: {kind: 'serve'}, notEmulated: parsed.notEmulated}}
  },
}

// ---------------------------------------------------------------------------------------------
// curlimages/curl: /entrypoint.sh runs curl unless the first word is another program

const CURL_BOOL: Record<string, keyof CurlRequest | 'ignore'> = {
  s: 'silent', '-silent': 'silent', S: 'showError', '-show-error': 'showError', f: 'fail', '-fail': 'fail',
  i: 'includeHeaders', '-include': 'includeHeaders', I: 'headOnly', '-head': 'headOnly',
  '-http1.1': 'ignore', '-no-progress-meter': 'ignore', k: 'ignore', '-insecure': 'ignore',
}
const CURL_VALUE = new Set(['o', '-output', 'w', '-write-out', 'H', '-header', 'X', '-request', 'd', '-data', '-data-raw', 'm', '-max-time', '-connect-timeout'])

/** The subset of curl's options a lab uses; anything else is reported, never ignored. */
export function parseCurlArgs(args: string[]): CurlRequest | {error: string} {
  const req: CurlRequest = {url: '', method: '', headers: [], silent: false, showError: false, fail: false, includeHeaders: false, headOnly: false, printBody: true}
  const apply = (opt: string, value: string | undefined): string | undefined => {
    switch (opt) {
      case 'o': case '-output':
        if (value !== '/dev/null') return `-o ${value} (only -o /dev/null is emulated)`
        req.printBody = false
        return undefined
      case 'w': case '-write-out': req.writeOut = value; return undefined
      case 'H': case '-header': {
        const c = (value ?? '').indexOf(':')
        if (c <= 0) return `header "${value}" has no name`
        req.headers.push([(value as string).slice(0, c).trim(), (value as string).slice(c + 1).trim()])
        return undefined
      }
      case 'X': case '-request': req.method = value as string; return undefined
      case 'd': case '-data': case '-data-raw': req.body = req.body === undefined ? value : `${req.body}&${value}`; return undefined
      case 'm': case '-max-time': req.maxTimeMs = Number(value) * 1000; return Number.isFinite(req.maxTimeMs) ? undefined : `--max-time ${value}`
      case '-connect-timeout': req.connectTimeoutMs = Number(value) * 1000; return Number.isFinite(req.connectTimeoutMs) ? undefined : `--connect-timeout ${value}`
      default: return `option -${opt}`
    }
  }
  for (let i = 0; i < args.length; i++) {
    const a = args[i]
    if (a.startsWith('--')) {
      const eq = a.indexOf('=')
      const opt = (eq >= 0 ? a.slice(0, eq) : a).slice(1)
      if (CURL_BOOL[opt]) {
        if (CURL_BOOL[opt] !== 'ignore') (req as unknown as Record<string, unknown>)[CURL_BOOL[opt]] = true
        continue
      }
      if (!CURL_VALUE.has(opt)) return {error: `curl option -${opt} is not emulated`}
      const value = eq >= 0 ? a.slice(eq + 1) : args[++i]
      if (value === undefined) return {error: `curl option -${opt} needs a value`}
      const err = apply(opt, value)
      if (err) return {error: `curl ${err} is not emulated`}
    } else if (a.startsWith('-') && a.length > 1) {
      // bundled short options: -sS, -sSo /dev/null, -XPOST
      for (let j = 1; j < a.length; j++) {
        const c = a[j]
        if (CURL_BOOL[c]) {
          if (CURL_BOOL[c] !== 'ignore') (req as unknown as Record<string, unknown>)[CURL_BOOL[c]] = true
          continue
        }
        if (!CURL_VALUE.has(c)) return {error: `curl option -${c} is not emulated`}
        const value = j + 1 < a.length ? a.slice(j + 1) : args[++i]
        if (value === undefined) return {error: `curl option -${c} needs a value`}
        const err = apply(c, value)
        if (err) return {error: `curl ${err} is not emulated`}
        break
      }
    } else {
      if (req.url !== '') return {error: `more than one URL ("${req.url}", "${a}")`}
      req.url = /^[a-z][a-z0-9+.-]*:\/\//i.test(a) ? a : `http://${a}`
    }
  }
  if (req.url === '') return {error: 'no URL'}
  if (!req.url.toLowerCase().startsWith('http://')) return {error: `only http:// URLs are emulated (got ${req.url})`}
  if (req.method === '') req.method = req.headOnly ? 'HEAD' : req.body === undefined ? 'GET' : 'POST'
  return req
}

const CURL_PROGRAMS = new Set(['curl', 'sleep', 'tail', 'sh', 'ash', 'bash'])

const curlEntry: EmulatedImage = {
  repositories: ['curlimages/curl'],
  summary: 'curlimages/curl (a sleeping client such as `sleep infinity`, or one curl request)',
  entrypoint: ['/entrypoint.sh'],
  cmd: ['curl'],
  plan(ctx) {
    let argv = ctx.argv
    if (basename(argv[0] ?? '') === 'entrypoint.sh') {
      // the image's entrypoint: run curl when the first word is an option or not a program
      const rest = argv.slice(1)
      argv = rest.length === 0 || rest[0].startsWith('-') || !CURL_PROGRAMS.has(basename(rest[0])) ? ['curl', ...rest] : rest
    }
    const sleep = sleepPlan(argv)
    if (sleep) return {ok: true, plan: {listeners: [], main: sleep, notEmulated: []}}
    if (basename(argv[0] ?? '') !== 'curl') return notEmulated(ctx, 'the curl image is emulated for `sleep …`, `tail -f /dev/null` and `curl …`')
    if (argv.length === 1) {
      // what the real image prints when started with no arguments (CrashLoopBackOff on a cluster)
      return {ok: true, plan: {listeners: [], main: {kind: 'exit', code: 2, stderr: "curl: try 'curl --help' or 'curl --manual' for more information"}, notEmulated: []}}
    }
    const req = parseCurlArgs(argv.slice(1))
    if ('error' in req) return notEmulated(ctx, req.error)
    return {ok: true, plan: {listeners: [], main: {kind: 'curl', request: req}, notEmulated: []}}
  },
}

// ---------------------------------------------------------------------------------------------
// The registry

export const EMULATED_IMAGES: readonly EmulatedImage[] = [
  helloworldEntry('v1'),
  helloworldEntry('v2'),
  fortioEntry,
  curlEntry,
]

export function findImage(image: string): EmulatedImage | undefined {
  const repo = canonicalRepository(image)
  return EMULATED_IMAGES.find((e) => e.repositories.includes(repo))
}

export const emulatedImageList = (): string => EMULATED_IMAGES.map((e) => e.repositories[0]).join(', ')

/** Everything meshd and the pod process need to know about a pod's image, or why it cannot run. */
export function planPod(pod: Pick<PodLaunch, 'name' | 'image' | 'command' | 'args' | 'env'>): PlanResult {
  const entry = findImage(pod.image)
  if (!entry) {
    return {
      ok: false,
      reason: 'ImageNotEmulated',
      message: `mesh cannot emulate image "${pod.image}"; emulated images: ${emulatedImageList()} (any tag). Use one of these, or run the lab on a real cluster (--context).`,
    }
  }
  const argv = effectiveArgv(entry, pod.command, pod.args)
  return entry.plan({podName: pod.name, image: pod.image, argv, env: pod.env})
}
