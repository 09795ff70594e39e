// Issue 4 end to end on a real lab: telemetry of an auto-mTLS request through the ingress, a
// weight change propagating to every proxy (acknowledged), outlier ejection of the faulty
// replica, SC-6 circuit breaking through the ingress, and `kill -9` of a hello pod under load.
import {readFileSync, statSync} from 'node:fs'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {
  countBy,
  get,
  load,
  promSamples,
  ROOT,
  startLab,
  stopLab,
  until,
  type Lab,
  type LabPod,
} from './helpers.js'

const V1 = 'outbound|5000|v1|hello.mesh-lab.svc.cluster.local'
const GATEWAY_PRINCIPAL = 'spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account'
const config = (name: string) => readFileSync(join(ROOT, 'configs/traffic', name), 'utf8')

let lab: Lab

interface HostStatus {
  address: string
  pod: string
  ejected: boolean
  rqTotal: number
  consecutive5xx: number
  ejections: number
}
interface ClusterJson {
  name: string
  stats: Record<string, number>
  host_statuses: HostStatus[]
}

const gatewayCluster = async (name: string): Promise<ClusterJson> => {
  const j = JSON.parse((await get(`${lab.gatewayAdmin}/clusters?format=json`)).body) as {cluster_statuses: ClusterJson[]}
  const c = j.cluster_statuses.find((x) => x.name === name)
  if (!c) throw new Error(`the gateway has no cluster ${name}`)
  return c
}

/** Gateway access log lines written after `from` (byte offset), parsed. */
function accessLogSince(from: number): Array<{code: number; flags: string; details: string; upstreamHost: string; cluster: string}> {
  const file = join(lab.home, 'local/gateway-access.log')
  const text = readFileSync(file).subarray(from).toString('utf8')
  const out: Array<{code: number; flags: string; details: string; upstreamHost: string; cluster: string}> = []
  for (const line of text.split('\n')) {
    const m = /^\[[^\]]+\] "[A-Z]+ \S+ HTTP\/1\.[01]" (\d{3}) (\S+) (\S+) .*"[0-9a-f-]{36}" "[^"]*" "([^"]*)" (\S+)/.exec(line)
    if (m) out.push({code: Number(m[1]), flags: m[2], details: m[3], upstreamHost: m[4], cluster: m[5]})
  }
  return out
}
const accessLogSize = () => statSync(join(lab.home, 'local/gateway-access.log')).size

/** istio_requests_total at a hello pod's sidecar (reporter=destination), summed. */
async function inboundRequests(pod: LabPod, filter: (l: Record<string, string>) => boolean = () => true): Promise<number> {
  const text = (await get(`http://${pod.ip}:15090/stats/prometheus`)).body
  return promSamples(text, 'istio_requests_total')
    .filter((s) => s.labels.reporter === 'destination' && filter(s.labels))
    .reduce((a, s) => a + s.value, 0)
}

const applyAndSync = async (yaml: string) => lab.waitSynced(await lab.apply(yaml))

/** Runs a step, then puts the lab back (also when the step fails) so later steps start clean. */
async function restoring(restore: () => Promise<unknown>, step: () => Promise<void>): Promise<void> {
  try {
    await step()
  } finally {
    await restore()
  }
}

beforeAll(async () => {
  lab = await startLab({prefix: 'mesh-e2e-res-'})
})

afterAll(async () => {
  await stopLab(lab)
})

describe('issue 4 on a real lab', () => {
  it('telemetry: the gateway reports source, the hello sidecar reports destination with the gateway principal over mutual TLS', async () => {
    const [v1] = await lab.readyPods('mesh-lab', 'app=hello,version=v1,mesh.lab/faulty=false', 1)
    for (let i = 0; i < 5; i++) expect((await get(`${lab.ingress}/hello`)).status).toBe(200)

    const source = promSamples((await get(`${lab.gatewayAdmin}/stats/prometheus`)).body, 'istio_requests_total').filter(
      (s) => s.labels.reporter === 'source' && s.labels.response_code === '200' && s.labels.destination_workload === 'hello-v1',
    )
    expect(source.length).toBeGreaterThan(0)
    expect(source[0].labels).toMatchObject({
      source_workload: 'istio-ingressgateway',
      source_workload_namespace: 'istio-system',
      destination_service: 'hello.mesh-lab.svc.cluster.local',
      destination_version: 'v1',
      response_flags: '-',
    })
    expect(source.reduce((a, s) => a + s.value, 0)).toBeGreaterThanOrEqual(5)

    const dest = promSamples((await get(`http://${v1.ip}:15090/stats/prometheus`)).body, 'istio_requests_total').filter(
      (s) => s.labels.reporter === 'destination' && s.labels.source_principal === GATEWAY_PRINCIPAL,
    )
    expect(dest.length).toBeGreaterThan(0)
    expect(dest[0].labels).toMatchObject({
      connection_security_policy: 'mutual_tls',
      destination_principal: 'spiffe://cluster.local/ns/mesh-lab/sa/hello-v1',
      destination_workload: 'hello-v1',
      response_code: '200',
    })
    expect(dest.reduce((a, s) => a + s.value, 0)).toBeGreaterThanOrEqual(5)
  })

  it('a weight change propagates to every proxy and is acknowledged; the gateway then routes by it', async () => {
    await restoring(() => applyAndSync(config('virtual-service-100-0.yaml')), async () => {
      const t0 = performance.now()
      const rv = await lab.apply(config('virtual-service-0-100.yaml'))
      const tApplied = performance.now()
      const report = await lab.waitSynced(rv)
      const tSynced = performance.now()
      expect(report.proxies.length).toBeGreaterThanOrEqual(4) // gateway + 3 meshed pods
      expect(report.proxies.every((p) => p.state === 'SYNCED' && p.acked >= report.generation)).toBe(true)
      console.log(`weight change: kubectl apply ${Math.round(tApplied - t0)} ms, apply → all ${report.proxies.length} proxies SYNCED ${Math.round(tSynced - tApplied)} ms`)
      const bodies = await Promise.all(Array.from({length: 20}, () => get(`${lab.ingress}/hello`)))
      expect(countBy(bodies, (b) => `${b.status} ${b.body.slice(0, 17)}`)).toEqual({'200 Hello version: v2': 20})
    })
    expect((await get(`${lab.ingress}/hello`)).body).toMatch(/^Hello version: v1/)
  })

  it('outlier ejection: the faulty v1 replica is ejected after consecutive5xxErrors (3) and gets no new requests', async () => {
    const scaleDown = async () => {
      await lab.kubectl(['scale', 'deploy', 'hello-v1-faulty', '-n', 'mesh-lab', '--replicas=0'])
      await until('the faulty pod gone', async () => (await lab.pods('mesh-lab', 'mesh.lab/faulty=true')).length === 0)
    }
    await restoring(scaleDown, async () => {
      await lab.kubectl(['scale', 'deploy', 'hello-v1-faulty', '-n', 'mesh-lab', '--replicas=1'])
      const [faulty] = await lab.readyPods('mesh-lab', 'mesh.lab/faulty=true', 1)
      await lab.waitSynced(await lab.resourceVersion())
      const host = (c: ClusterJson) => c.host_statuses.find((h) => h.address === `${faulty.ip}:5000`)
      await until('the faulty replica in the gateway v1 cluster', async () => host(await gatewayCluster(V1)))

      // sequential requests: 503 is not retried by default, so each pick of the faulty host shows;
      // the lab's DR has consecutive5xxErrors 3 and maxEjectionPercent 50 (1 of 2 hosts may go)
      const codes: number[] = []
      for (let i = 0; i < 40; i++) codes.push((await get(`${lab.ingress}/hello`)).status)
      const c1 = await gatewayCluster(V1)
      expect(countBy(codes, String)).toEqual({200: 37, 503: 3})
      expect(host(c1)).toMatchObject({ejected: true, ejections: 1, rqTotal: 3})
      expect(c1.stats.ejections_enforced_consecutive_5xx).toBe(1)

      // ejected (baseEjectionTime 10 s): it gets nothing new
      for (let i = 0; i < 30; i++) expect((await get(`${lab.ingress}/hello`)).status).toBe(200)
      expect(host(await gatewayCluster(V1))!.rqTotal).toBe(3)
    })
  })

  it('SC-6 circuit breaking through the ingress: 2 and 3 connections; every 503 is UO with x-envoy-overloaded and reached no pod', async () => {
    await restoring(() => applyAndSync(config('destination-rule.yaml')), async () => {
      await applyAndSync(config('destination-rule-circuit-breaker.yaml'))
      const [v1] = await lab.readyPods('mesh-lab', 'app=hello,version=v1,mesh.lab/faulty=false', 1)
      const run = async (connections: number, amount: number) => {
        const logFrom = accessLogSize()
        const podBefore = await inboundRequests(v1)
        const rs = await load({url: `${lab.ingress}/hello`, connections, amount})
        const podAfter = await inboundRequests(v1)
        await new Promise((r) => setTimeout(r, 200)) // access log lines are written after the response
        const log = accessLogSince(logFrom)
        const by = countBy(rs, (r) => String(r.status))
        expect(Object.keys(by).every((k) => k === '200' || k === '503'), JSON.stringify(by)).toBe(true)
        for (const r of rs.filter((x) => x.status === 503)) {
          expect(r.headers['x-envoy-overloaded']).toBe('true')
          expect(r.body).toBe('upstream connect error or disconnect/reset before headers. reset reason: overflow')
        }
        const logged503 = log.filter((l) => l.code === 503)
        expect(logged503.length).toBe(by['503'] ?? 0)
        expect(logged503.map((l) => `${l.flags} ${l.details}`)).toEqual(logged503.map(() => 'UO upstream_reset_before_response_started{overflow}'))
        // Envoy logs the host the balancer chose even on overflow; but the pod saw exactly the
        // requests that succeeded, so no 503 reached it
        expect(podAfter - podBefore).toBe(by['200'] ?? 0)
        return {ok: by['200'] ?? 0, overflow: by['503'] ?? 0}
      }
      // The split depends on how long a new upstream connection takes against how fast a client
      // comes back: measure a few alternating rounds and judge the totals.
      const rounds: string[] = []
      const two = {ok: 0, overflow: 0}
      const three = {ok: 0, overflow: 0}
      for (let i = 0; i < 4; i++) {
        const a = await run(2, 20)
        const b = await run(3, 30)
        rounds.push(`${a.ok}/${a.overflow} | ${b.ok}/${b.overflow}`)
        two.ok += a.ok
        two.overflow += a.overflow
        three.ok += b.ok
        three.overflow += b.overflow
      }
      console.log(`SC-6 through the ingress, 200/503 per round (2 connections × 20 | 3 connections × 30): ${rounds.join(', ')}`)
      // Every cycle of a closed loop lets one request through (a request that finds nothing active
      // or pending is always queued), so 2 connections always see 200s, and 3 clients against
      // one connection and one pending slot overflow. How much depends on how long a new mTLS
      // connection takes against how fast the clients come back, which on a shared machine
      // varies run to run (Istio's docs: 3 of 20 and 19 of 30 overflow), so the shares are
      // reported, not asserted; bench/ has the side-by-side figures.
      expect(two.ok).toBeGreaterThanOrEqual(4)
      expect(three.overflow).toBeGreaterThanOrEqual(1)
    })
  })

  it('kill -9 of a hello pod under load: replaced by the Deployment, the gateway stops using it, errors stay bounded', async () => {
    await lab.kubectl(['scale', 'deploy', 'hello-v1', '-n', 'mesh-lab', '--replicas=2'])
    const before = await lab.readyPods('mesh-lab', 'app=hello,version=v1,mesh.lab/faulty=false', 2)
    await lab.waitSynced(await lab.resourceVersion())
    await until('both v1 replicas in the gateway cluster', async () => (await gatewayCluster(V1)).host_statuses.length === 2)
    const victim = before[0]
    const pid = lab.podPid('mesh-lab', victim.name)
    expect(pid, `pod process of ${victim.name}`).toBeDefined()

    const CONNECTIONS = 4
    const AMOUNT = 1500
    const statsBefore = (await gatewayCluster(V1)).stats
    let killedAt = 0
    const rs = await load({
      url: `${lab.ingress}/hello`,
      connections: CONNECTIONS,
      amount: AMOUNT,
      onResponse: (n) => {
        if (n === 300) {
          process.kill(pid!, 'SIGKILL')
          killedAt = n
        }
      },
    })
    expect(killedAt).toBe(300)
    const by = countBy(rs, (r) => (r.error ? `error ${r.error}` : String(r.status)))
    const failed = rs.filter((r) => r.status !== 200)
    const statsAfter = (await gatewayCluster(V1)).stats
    const delta = (k: string) => (statsAfter[k] ?? 0) - (statsBefore[k] ?? 0)
    console.log(
      `kill -9 under load (${AMOUNT} requests, ${CONNECTIONS} connections): ${JSON.stringify(by)}; gateway v1 cluster: ` +
        ['upstream_cx_connect_fail', 'upstream_rq_retry', 'upstream_rq_retry_success', 'ejections_enforced_total'].map((k) => `${k} +${delta(k)}`).join(', '),
    )
    // Bound: a request already sent to the victim when it dies is reset (UC); Istio's default
    // retryOn has no `reset`, so it fails. Each of the gateway's upstream connections carries one
    // request at a time and there are at most CONNECTIONS requests in flight, so at most
    // CONNECTIONS such failures; new connection attempts are refused and retried on the other
    // replica (connect-failure is retriable, previous hosts avoided). Allow one more per
    // connection for a request that lands on a dying connection before the close is noticed.
    expect(failed.length).toBeLessThanOrEqual(2 * CONNECTIONS)
    expect(failed.every((r) => r.status === 503)).toBe(true)

    // the Deployment replaced it: a new pod name, Ready
    const after = await lab.readyPods('mesh-lab', 'app=hello,version=v1,mesh.lab/faulty=false', 2)
    const names = after.map((p) => p.name)
    expect(names).not.toContain(victim.name)
    expect(names).toContain(before[1].name)

    // the gateway's v1 cluster no longer has the dead address, and new traffic never tries it
    await lab.waitSynced(await lab.resourceVersion())
    const cluster = await gatewayCluster(V1)
    expect(cluster.host_statuses.map((h) => h.address).sort()).toEqual(after.map((p) => `${p.ip}:5000`).sort())
    const logFrom = accessLogSize()
    for (let i = 0; i < 20; i++) expect((await get(`${lab.ingress}/hello`)).status).toBe(200)
    await new Promise((r) => setTimeout(r, 200))
    const tried = accessLogSince(logFrom).map((l) => l.upstreamHost)
    expect(tried.length).toBeGreaterThanOrEqual(20)
    if (!after.some((p) => p.ip === victim.ip)) expect(tried).not.toContain(`${victim.ip}:5000`)
  })
})
