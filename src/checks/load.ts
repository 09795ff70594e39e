// Load engine on autocannon's programmatic API. Every response is classified (by default the
// helloworld body "Hello version: vN") and timed with sub-millisecond resolution: autocannon's
// own histogram is whole milliseconds and 2xx-only, so latencies come from each client's
// 'response' event and go into an HdrHistogram in microseconds (ADR 0071).
import autocannon from 'autocannon'
import {build, type Histogram} from 'hdr-histogram-js'
import {invalid} from '../lib/errors.js'

/** headers arrive with lower-case names */
export type Classifier = (status: number, body: string, headers: Record<string, string | string[]>) => string

export interface LoadCounts {
  elapsedSec: number
  /** responses received (every status) */
  completed: number
  /** connection errors and timeouts */
  errors: number
  timeouts: number
  /** per class: 'v1', 'v2', '5xx', '4xx', 'other', …, plus 'error' for connection errors/timeouts */
  classes: Record<string, number>
  statuses: Record<string, number>
}

export interface LatencySummary {
  count: number
  min: number
  mean: number
  p50: number
  p90: number
  p99: number
  p999: number
  max: number
}

export interface LoadSnapshot extends LoadCounts {
  requestsPerSec: number
  /** milliseconds, sub-ms resolution; zeros before the first response */
  latencyMs: LatencySummary
}

export interface LatencyBucket {
  /** bucket bounds in milliseconds, [loMs, hiMs) */
  loMs: number
  hiMs: number
  count: number
}

export interface LoadResult extends LoadSnapshot {
  url: string
  startedAt: string
  durationSec: number
  /** counts of x-envoy-response-flags values, only when the header was present */
  responseFlags: Record<string, number>
  /** log-spaced latency histogram (4 buckets per doubling), empty ends trimmed */
  latencyHistogram: LatencyBucket[]
  /** why the run ended */
  stopReason: 'complete' | 'stopWhen' | 'aborted' | 'time-limit'
  /** first connection error seen, e.g. "connect ECONNREFUSED 127.0.0.1:9" */
  firstError?: string
}

export interface LoadOptions {
  url: string
  method?: string
  headers?: Record<string, string>
  body?: string
  /** concurrent connections; default 10 (capped at amount) */
  connections?: number
  /** run for this long … */
  durationSec?: number
  /** … or until this many requests; with amount only, maxDurationSec still caps the time */
  amount?: number
  /** hard time cap when only amount is given; default 120 s */
  maxDurationSec?: number
  /** fixed total requests per second (autocannon overallRate); default: as fast as possible */
  rate?: number
  /** per-request timeout in seconds; default 10 */
  timeoutSec?: number
  classify?: Classifier
  /** called every progressIntervalMs (default 500) and once at the end */
  onProgress?: (snapshot: LoadSnapshot) => void
  progressIntervalMs?: number
  /** checked every checkEvery responses (default 50); true stops the load */
  stopWhen?: (counts: LoadCounts) => boolean
  checkEvery?: number
  signal?: AbortSignal
}

const VERSION_BODY = /Hello version: (v\d+)/

/** helloworld classifier: 5xx first, then the version in the body, then 4xx / other. */
export const helloworldClassifier: Classifier = (status, body) => {
  if (status >= 500) return '5xx'
  const m = VERSION_BODY.exec(body)
  if (m) return m[1]
  if (status >= 400) return '4xx'
  return 'other'
}

// Latency histogram buckets: 10 µs × 2^(k/4), up to ~100 s.
const BUCKET_BASE_US = 10
const BUCKETS_PER_DOUBLING = 4
const BUCKET_COUNT = 4 * 24

const bucketIndex = (us: number) =>
  us <= BUCKET_BASE_US ? 0 : Math.min(BUCKET_COUNT - 1, Math.floor(Math.log2(us / BUCKET_BASE_US) * BUCKETS_PER_DOUBLING))
const bucketLowUs = (k: number) => (k === 0 ? 0 : BUCKET_BASE_US * 2 ** (k / BUCKETS_PER_DOUBLING))

function positive(name: string, v: number | undefined, integer: boolean): void {
  if (v === undefined) return
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v)))
    throw invalid(
      `MESH_INVALID_${name.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()}`,
      `${name} must be a positive ${integer ? 'integer' : 'number'}, got ${String(v)}`,
      `Fix ${name} in the load options.`,
      name,
    )
}

function validate(o: LoadOptions): URL {
  let url: URL
  try {
    url = new URL(o.url)
  } catch {
    throw invalid('MESH_INVALID_URL', `url is not a valid URL: ${String(o.url)}`, 'Give a full URL such as http://127.0.0.1:8080/hello.', 'url')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw invalid('MESH_INVALID_URL', `url must be http or https, got ${url.protocol}`, 'Give a full URL such as http://127.0.0.1:8080/hello.', 'url')
  if (o.durationSec === undefined && o.amount === undefined)
    throw invalid('MESH_LOAD_UNBOUNDED', 'a load needs durationSec or amount', 'Set a duration (seconds) or a request count.', 'durationSec')
  positive('connections', o.connections, true)
  positive('durationSec', o.durationSec, false)
  positive('amount', o.amount, true)
  positive('maxDurationSec', o.maxDurationSec, false)
  positive('rate', o.rate, true)
  positive('timeoutSec', o.timeoutSec, false)
  positive('checkEvery', o.checkEvery, true)
  positive('progressIntervalMs', o.progressIntervalMs, true)
  return url
}

function newHistogram(): Histogram {
  // microseconds, 1 µs .. 1 h, 3 significant digits
  return build({lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3})
}

function summarize(h: Histogram): LatencySummary {
  if (h.totalCount === 0) return {count: 0, min: 0, mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0}
  const ms = (us: number) => us / 1000
  return {
    count: h.totalCount,
    min: ms(h.minNonZeroValue),
    mean: ms(h.mean),
    p50: ms(h.getValueAtPercentile(50)),
    p90: ms(h.getValueAtPercentile(90)),
    p99: ms(h.getValueAtPercentile(99)),
    p999: ms(h.getValueAtPercentile(99.9)),
    max: ms(h.maxValue),
  }
}

/** Drive load at one URL and classify every response. Always bounded by time or count. */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const url = validate(o)
  const classify = o.classify ?? helloworldClassifier
  const checkEvery = o.checkEvery ?? 50
  let connections = o.connections ?? 10
  if (o.amount !== undefined) connections = Math.min(connections, o.amount)
  if (o.rate !== undefined) connections = Math.min(connections, o.rate)

  const hist = newHistogram()
  const buckets = new Array<number>(BUCKET_COUNT).fill(0)
  const classes: Record<string, number> = {}
  const statuses: Record<string, number> = {}
  const responseFlags: Record<string, number> = {}
  let completed = 0
  let errors = 0
  let timeouts = 0
  let firstError: string | undefined
  let stopReason: LoadResult['stopReason'] = 'complete'
  const started = Date.now()
  const startedHr = performance.now()
  const bump = (m: Record<string, number>, k: string) => {
    m[k] = (m[k] ?? 0) + 1
  }
  const counts = (): LoadCounts => ({
    elapsedSec: (performance.now() - startedHr) / 1000,
    completed,
    errors,
    timeouts,
    classes: {...classes},
    statuses: {...statuses},
  })
  const snapshot = (): LoadSnapshot => {
    const c = counts()
    return {...c, requestsPerSec: c.elapsedSec > 0 ? c.completed / c.elapsedSec : 0, latencyMs: summarize(hist)}
  }

  if (o.signal?.aborted) {
    return {
      ...snapshot(),
      url: o.url,
      startedAt: new Date(started).toISOString(),
      durationSec: 0,
      responseFlags,
      latencyHistogram: [],
      stopReason: 'aborted',
    }
  }

  let instance: autocannon.Instance | undefined
  const clients: Array<autocannon.Client & {destroy?: () => void}> = []
  let stopping = false
  const stop = (reason: LoadResult['stopReason']) => {
    if (stopping) return
    stopping = true
    stopReason = reason
    instance?.stop()
    // instance.stop() lets clients run until the next sample tick; closing them now stops
    // new requests at once (in-flight responses are dropped)
    for (const c of clients) c.destroy?.()
  }

  const opts: autocannon.Options = {
    url: url.toString(),
    method: (o.method ?? 'GET') as autocannon.Request['method'],
    headers: o.headers,
    body: o.body,
    connections,
    // finish promptly after stop(): autocannon only ends on a sample tick
    sampleInt: 100,
    timeout: o.timeoutSec ?? 10,
    ...(o.amount === undefined ? {duration: o.durationSec} : {amount: o.amount}),
    ...(o.rate === undefined ? {} : {overallRate: o.rate}),
    requests: [
      {
        onResponse(status: number, body: string, _ctx: object, headers: Record<string, string | string[]> | undefined) {
          // autocannon keeps the server's spelling; classifiers get lower-case names
          const h: Record<string, string | string[]> = {}
          for (const [k, v] of Object.entries(headers ?? {})) h[k.toLowerCase()] = v
          bump(classes, classify(status, body, h))
          const flags = h['x-envoy-response-flags']
          if (flags !== undefined) bump(responseFlags, Array.isArray(flags) ? flags.join(',') : flags)
        },
      } as autocannon.Request,
    ],
    setupClient(client: autocannon.Client) {
      clients.push(client)
      client.on('response', (status: number, _bytes: number, ms: number) => {
        const us = Math.max(1, Math.round(ms * 1000))
        hist.recordValue(us)
        buckets[bucketIndex(us)]++
        bump(statuses, String(status))
        completed++
        if (o.stopWhen && !stopping && completed % checkEvery === 0 && o.stopWhen(counts())) stop('stopWhen')
      })
    },
  }

  const onAbort = () => stop('aborted')
  o.signal?.addEventListener('abort', onAbort, {once: true})
  const capSec = o.durationSec ?? o.maxDurationSec ?? 120
  // autocannon's own duration timer ends duration runs; this cap bounds amount-only runs too
  const cap = setTimeout(() => stop('time-limit'), Math.ceil(capSec * 1000) + (o.amount === undefined ? 2000 : 0))
  const progressTimer = o.onProgress ? setInterval(() => o.onProgress?.(snapshot()), o.progressIntervalMs ?? 500) : undefined

  try {
    await new Promise<void>((resolve, reject) => {
      instance = autocannon(opts, (err) => (err ? reject(err) : resolve()))
      instance.on('reqError', (err: Error) => {
        errors++
        if (/timed out/.test(err.message)) timeouts++
        bump(classes, 'error')
        firstError ??= err.message
      })
    })
  } finally {
    clearTimeout(cap)
    if (progressTimer) clearInterval(progressTimer)
    o.signal?.removeEventListener('abort', onAbort)
  }

  const final = snapshot()
  o.onProgress?.(final)
  const lastUsed = buckets.findLastIndex((c) => c > 0)
  const firstUsed = buckets.findIndex((c) => c > 0)
  const latencyHistogram: LatencyBucket[] = []
  for (let k = Math.max(0, firstUsed); firstUsed >= 0 && k <= lastUsed; k++)
    latencyHistogram.push({loMs: bucketLowUs(k) / 1000, hiMs: bucketLowUs(k + 1) / 1000, count: buckets[k]})
  return {
    ...final,
    url: o.url,
    startedAt: new Date(started).toISOString(),
    durationSec: final.elapsedSec,
    responseFlags,
    latencyHistogram,
    stopReason,
    ...(firstError === undefined ? {} : {firstError}),
  }
}
