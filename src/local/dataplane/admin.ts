// Per-proxy admin endpoint, shaped after Envoy's admin API (the parts the CLI and tests read):
//   GET /stats/prometheus        Prometheus text (istio_* metrics + envoy_cluster_* stats)
//   GET /stats                   Envoy-style "cluster.<name>.<stat>: <value>" lines
//   GET /clusters?format=json    per-cluster circuit breakers, counters and per-host outlier state
//   GET /clusters                the same as Envoy's text format (name::host::stat::value)
//   GET /config_dump             applied generation, listeners, route configs, cluster names
//   GET /ready                   200 LIVE once a config has been applied, else 503 PRE_INITIALIZING
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import type {Proxy} from './proxy.js'

export interface AdminServer {
  host: string
  port: number
  close(): Promise<void>
}

export interface AdminOptions {
  host: string
  /** 0 = pick a free port */
  port: number
}

export async function createAdminServer(proxy: Proxy, opts: AdminOptions): Promise<AdminServer> {
  const server = http.createServer((req, res) => {
    handle(proxy, req, res).catch((error: Error) => {
      if (!res.headersSent) res.writeHead(500, {'content-type': 'text/plain'})
      res.end(`${error.message}\n`)
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const a = server.address() as AddressInfo
  return {
    host: a.address,
    port: a.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

const json = (res: http.ServerResponse, body: unknown, code = 200): void => {
  const text = JSON.stringify(body, null, 2)
  res.writeHead(code, {'content-type': 'application/json', 'content-length': Buffer.byteLength(text)})
  res.end(text)
}

const text = (res: http.ServerResponse, body: string, code = 200, type = 'text/plain; charset=utf-8'): void => {
  res.writeHead(code, {'content-type': type, 'content-length': Buffer.byteLength(body)})
  res.end(body)
}

async function handle(proxy: Proxy, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://admin')
  if (req.method !== 'GET' && req.method !== 'HEAD') return text(res, 'method not allowed\n', 405)
  switch (url.pathname) {
    case '/stats/prometheus':
      return text(res, await proxy.metrics(), 200, proxy.telemetry.registry.contentType)
    case '/stats': {
      const lines: string[] = []
      for (const c of proxy.clusterStatus()) for (const [k, v] of Object.entries(c.counters)) lines.push(`cluster.${c.name}.${k.startsWith('ejections') ? `outlier_detection.${k}` : k}: ${v}`)
      return text(res, lines.join('\n') + '\n')
    }
    case '/clusters': {
      const clusters = proxy.clusterStatus()
      if (url.searchParams.get('format') === 'json') {
        return json(res, {
          cluster_statuses: clusters.map((c) => ({
            name: c.name,
            added_via_api: !c.name.startsWith('inbound|'),
            outlier_detection: c.outlierDetection,
            circuit_breakers: c.circuitBreakers,
            panic: c.panic,
            stats: c.counters,
            host_statuses: c.hosts.map((h) => ({
              ...h,
              health_status: {eds_health_status: 'HEALTHY', ...(h.ejected ? {failed_outlier_check: true} : {})},
            })),
          })),
        })
      }
      const lines: string[] = []
      for (const c of clusters) {
        const cb = c.circuitBreakers
        lines.push(`${c.name}::default_priority::max_connections::${cb.maxConnections}`)
        lines.push(`${c.name}::default_priority::max_pending_requests::${cb.maxPendingRequests}`)
        lines.push(`${c.name}::default_priority::max_requests::${cb.maxRequests}`)
        lines.push(`${c.name}::default_priority::max_retries::${cb.maxRetries}`)
        for (const h of c.hosts) {
          lines.push(`${c.name}::${h.address}::cx_active::${h.cxActive}`)
          lines.push(`${c.name}::${h.address}::rq_active::${h.rqActive}`)
          lines.push(`${c.name}::${h.address}::rq_total::${h.rqTotal}`)
          lines.push(`${c.name}::${h.address}::health_flags::${h.ejected ? '/failed_outlier_check' : 'healthy'}`)
          lines.push(`${c.name}::${h.address}::outlier::consecutive_5xx::${h.consecutive5xx}`)
          lines.push(`${c.name}::${h.address}::outlier::ejections::${h.ejections}`)
        }
      }
      return text(res, lines.join('\n') + '\n')
    }
    case '/config_dump':
      return json(res, proxy.configDump())
    case '/ready':
    case '/healthz/ready':
      return proxy.ready ? text(res, 'LIVE\n') : text(res, 'PRE_INITIALIZING\n', 503)
    default:
      return text(res, 'not found; try /stats/prometheus /stats /clusters?format=json /config_dump /ready\n', 404)
  }
}
