// Subscribes a proxy to meshd's config distribution (our stand-in for ADS):
//   GET  <api>/mesh/v1/xds?proxy=<id>&kind=<sidecar|gateway>   NDJSON stream of PushMessage
//   POST <api>/mesh/v1/ack  {proxy, generation}                after a config was applied
// with the kubeconfig's bearer token and CA. The stream is re-opened with capped exponential
// backoff whenever it ends (meshd restarted, network error). A config that fails to apply is
// reported as {proxy, generation: <last applied>, rejected, error}, like an xDS NACK.
import http from 'node:http'
import https from 'node:https'
import type {ApplyResult, Proxy} from './proxy.js'
import type {MeshSnapshot, ProxyIdentity, PushMessage, WorkloadSecret} from './snapshot.js'

export type XdsState = 'connecting' | 'connected' | 'disconnected' | 'stopped'

export interface XdsClientOptions {
  /** meshd API base URL, e.g. https://127.0.0.1:6443 */
  apiUrl: string
  token: string
  /** PEM of the CA that signed meshd's serving certificate (from the kubeconfig) */
  ca?: string | Buffer
  identity: ProxyIdentity
  /** applies one config push; throw to reject it (NACK) */
  onConfig(snapshot: MeshSnapshot): void | Promise<void>
  onSecret?(secret: WorkloadSecret): void | Promise<void>
  onState?(state: XdsState, error?: Error): void
  backoff?: {initialMs?: number; maxMs?: number}
}

export interface XdsClient {
  readonly state: XdsState
  /** generation of the last config applied and acknowledged (0 = none) */
  readonly applied: number
  /** resolves once a config with generation ≥ g has been applied */
  waitForGeneration(g: number, timeoutMs?: number): Promise<void>
  stop(): Promise<void>
}

export function startXdsClient(opts: XdsClientOptions): XdsClient {
  return new Subscription(opts)
}

export interface SubscribeProxyOptions {
  apiUrl: string
  token: string
  ca?: string | Buffer
  /** sees every snapshot before the proxy applies it (e.g. to keep it for the security provider) */
  onSnapshot?(snapshot: MeshSnapshot): void
  /** after each apply: generation, warnings, cluster changes */
  onApplied?(result: ApplyResult): void
  onSecret?(secret: WorkloadSecret): void
  onState?(state: XdsState, error?: Error): void
  backoff?: {initialMs?: number; maxMs?: number}
}

/** Connects a proxy to meshd: pushes are applied to it and acknowledged. */
export function subscribeProxy(proxy: Proxy, opts: SubscribeProxyOptions): XdsClient {
  return startXdsClient({
    apiUrl: opts.apiUrl,
    token: opts.token,
    ca: opts.ca,
    identity: proxy.identity,
    backoff: opts.backoff,
    onConfig(snapshot) {
      opts.onSnapshot?.(snapshot)
      const r = proxy.applySnapshot(snapshot)
      opts.onApplied?.(r)
    },
    onSecret: opts.onSecret,
    onState: opts.onState,
  })
}

class Subscription implements XdsClient {
  state: XdsState = 'connecting'
  applied = 0
  // node:http rather than undici: loading undici cost every proxy process ~65 ms at start-up
  private agent: http.Agent
  private abort = new AbortController()
  private loop: Promise<void>
  private waiters: {g: number; resolve: () => void}[] = []
  private sleeper: {timer: NodeJS.Timeout; resolve: () => void} | undefined

  constructor(private opts: XdsClientOptions) {
    this.agent = opts.apiUrl.startsWith('https:') ? new https.Agent({keepAlive: true, ...(opts.ca ? {ca: opts.ca} : {})}) : new http.Agent({keepAlive: true})
    this.loop = this.run()
  }

  private setState(s: XdsState, err?: Error): void {
    if (this.state === 'stopped') return
    this.state = s
    this.opts.onState?.(s, err)
  }

  private get base(): string {
    return this.opts.apiUrl.replace(/\/+$/, '')
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return {authorization: `Bearer ${this.opts.token}`, ...extra}
  }

  /** One request to meshd; resolves with the response once its headers arrive (within 30 s). */
  private send(path: string, method: string, headers: Record<string, string>, body?: string): Promise<http.IncomingMessage> {
    const url = new URL(this.base + path)
    const lib = url.protocol === 'https:' ? https : http
    return new Promise((resolve, reject) => {
      const req = lib.request(url, {method, headers, agent: this.agent, signal: this.abort.signal}, (res) => {
        clearTimeout(timer)
        resolve(res)
      })
      const timer = setTimeout(() => req.destroy(new Error(`meshd sent no response headers to ${method} ${url.pathname} within 30 s`)), 30_000)
      req.on('error', (error) => {
        clearTimeout(timer)
        reject(error)
      })
      req.end(body)
    })
  }

  private async run(): Promise<void> {
    const initial = this.opts.backoff?.initialMs ?? 100
    const max = this.opts.backoff?.maxMs ?? 5000
    let delay = initial
    while (!this.abort.signal.aborted) {
      let gotMessage = false
      try {
        this.setState('connecting')
        const id = this.opts.identity
        const path = `/mesh/v1/xds?proxy=${encodeURIComponent(id.id)}&kind=${encodeURIComponent(id.kind)}`
        const res = await this.send(path, 'GET', this.headers({accept: 'application/x-ndjson', 'x-mesh-proxy-identity': Buffer.from(JSON.stringify(id)).toString('base64url')}))
        if (res.statusCode !== 200) {
          let body = ''
          for await (const chunk of res) body += (chunk as Buffer).toString('utf8')
          throw new Error(`meshd answered ${res.statusCode} to the xds subscription: ${body.slice(0, 200)}`)
        }
        this.setState('connected')
        let buf = ''
        for await (const chunk of res) {
          buf += (chunk as Buffer).toString('utf8')
          let nl: number
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).trim()
            buf = buf.slice(nl + 1)
            if (line === '') continue
            gotMessage = true
            delay = initial
            await this.handle(JSON.parse(line) as PushMessage)
          }
        }
        throw new Error('meshd closed the xds stream')
      } catch (error) {
        if (this.abort.signal.aborted) break
        this.setState('disconnected', error as Error)
      }
      if (!gotMessage) delay = Math.min(max, delay * 2)
      // jitter so many proxies do not reconnect in lockstep after a meshd restart
      await this.sleep(delay / 2 + Math.random() * (delay / 2))
    }
  }

  private async handle(msg: PushMessage): Promise<void> {
    if (msg.type === 'secret') {
      await this.opts.onSecret?.(msg.secret)
      return
    }
    if (msg.type !== 'config') return
    const generation = msg.generation ?? msg.snapshot.generation
    try {
      await this.opts.onConfig(msg.snapshot)
    } catch (error) {
      await this.ack({proxy: this.opts.identity.id, generation: this.applied, rejected: generation, error: (error as Error).message})
      return
    }
    this.applied = generation
    for (const w of this.waiters.filter((x) => x.g <= generation)) w.resolve()
    this.waiters = this.waiters.filter((x) => x.g > generation)
    await this.ack({proxy: this.opts.identity.id, generation})
  }

  private async ack(body: Record<string, unknown>): Promise<void> {
    try {
      const res = await this.send('/mesh/v1/ack', 'POST', this.headers({'content-type': 'application/json'}), JSON.stringify(body))
      res.resume()
    } catch {
      // the next push acknowledges again; a lost ack only delays SYNCED
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.sleeper = undefined
        resolve()
      }, ms)
      this.sleeper = {timer, resolve}
    })
  }

  waitForGeneration(g: number, timeoutMs = 10_000): Promise<void> {
    if (this.applied >= g) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`generation ${g} not applied within ${timeoutMs}ms (applied ${this.applied})`)), timeoutMs)
      this.waiters.push({
        g,
        resolve: () => {
          clearTimeout(t)
          resolve()
        },
      })
    })
  }

  async stop(): Promise<void> {
    this.abort.abort()
    if (this.sleeper) {
      clearTimeout(this.sleeper.timer)
      this.sleeper.resolve()
    }
    await this.loop.catch(() => {})
    this.state = 'stopped'
    this.agent.destroy()
  }
}
