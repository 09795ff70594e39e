// `mesh verify ejection`: scale in the always-503 replica of v1 (hello-v1-faulty), drive load
// through the ingress, and prove from the gateway proxy's own counters and from which instances
// answered that the faulty endpoint was ejected within the predicted window. The lab is put
// back (faulty replica scaled back, proxies synced) whatever happens. Changes the lab, so it
// holds the lab lock and `mesh verify` runs it only on request.
import type {KubeObject} from '../cluster/client.js'
import {withLabLock} from '../cluster/lock.js'
import type {Target} from '../cluster/target.js'
import {runLoad, type LoadResult} from '../checks/load.js'
import type {CheckResult} from '../checks/report.js'
import {EXIT, MeshError} from '../lib/errors.js'
import type {MeshWarning} from '../mesh/codes.js'
import {LAB} from '../mesh/lab.js'
import {NETWORKING_API, checkEjectionPossible, effectiveOutlierDetection} from '../mesh/traffic.js'
import {formatWeights} from '../mesh/weights.js'
import type {Lab} from '../lab/open-target.js'
import {isPodReady, readWeights} from '../lab/state.js'
import {ProxyAdmin, proxyAdmin, subsetClusterName, sumMetric, type ClusterView, type HostView} from './admin.js'
import {resultOf} from './catalog.js'
import {probeIngress, resolveIngress, type ProgressFn} from './common.js'
import {
  analyzeCounters,
  analyzeResponses,
  outlierSettings,
  predictEjection,
  type CounterAnalysis,
  type EjectionVerdict,
  type HostSample,
  type OutlierSettings,
  type ResponseAnalysis,
  type ResponseRecord,
} from './ejection-math.js'

export const EJECTION_DEFAULTS = {connections: 4, rate: 100, pollMs: 100} as const

export interface VerifyEjectionOptions {
  /** concurrent connections of the load (also the in-flight slack of the prediction) */
  connections?: number
  /** total requests per second */
  rate?: number
  /** longest the load may run, seconds; default: long enough to see one ejection end (base + 2 intervals + 8 s), at most 180 */
  timeoutSec?: number
  /** how often the gateway's counters are read, ms */
  pollMs?: number
  ingressUrl?: string
  /** waits for pods, endpoints and proxies, default 60 s */
  waitTimeoutMs?: number
  onProgress?: ProgressFn
  signal?: AbortSignal
}

export interface EjectionVerification {
  /** ejection.possible (warning) and ejection (fatal) */
  results: CheckResult[]
  warnings: Array<{code: string; message: string}>
  /** the faulty replica is back where it was */
  restored: boolean
}

const deploymentRef = (name: string) => ({apiVersion: 'apps/v1', kind: 'Deployment', name, namespace: LAB.namespace})

/** Scale through the scale subresource (no apply: mesh's apply of the manifest keeps owning the rest). */
async function scaleDeployment(target: Target, name: string, replicas: number): Promise<void> {
  await target.client.request(`/apis/apps/v1/namespaces/${LAB.namespace}/deployments/${name}/scale`, {
    method: 'PUT',
    query: {fieldManager: 'mesh'},
    body: {apiVersion: 'autoscaling/v1', kind: 'Scale', metadata: {name, namespace: LAB.namespace}, spec: {replicas}},
  })
}

const LOCAL_REPLY = /no healthy upstream|upstream connect error|upstream request timeout|fault filter abort|RBAC: access denied|reset reason: overflow/

/** An answer from the faulty endpoint is its own 5xx, not a reply the proxy made up. */
export function classifyEjectionResponse(status: number, body: string, t = Date.now()): ResponseRecord {
  const instance = /instance: ([\w.-]+)/.exec(body)?.[1]
  return {t, status, faulty: status >= 500 && !LOCAL_REPLY.test(body), ...(instance ? {instance} : {})}
}

function faultyHost(clusters: ClusterView[], clusterName: string, pod: string, ip: string): HostView | undefined {
  const c = clusters.find((x) => x.name === clusterName)
  return c?.hosts.find((h) => h.pod?.startsWith(`${pod}.`) || h.address.startsWith(`${ip}:`))
}

const toSample = (h: HostView, t: number): HostSample => ({
  t,
  rqTotal: h.rqTotal,
  ejected: h.ejected,
  ...(h.ejections !== undefined ? {ejections: h.ejections} : {}),
  ...(h.lastEjectedAt !== undefined ? {lastEjectedAt: h.lastEjectedAt} : {}),
  ...(h.ejectedUntil !== undefined ? {ejectedUntil: h.ejectedUntil} : {}),
  ...(h.consecutive5xx !== undefined ? {consecutive5xx: h.consecutive5xx} : {}),
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Combine the two sources: either one contradicting the prediction fails; counters decide when present. */
export function combineVerdicts(counters: CounterAnalysis | undefined, responses: ResponseAnalysis): EjectionVerdict {
  if (counters?.verdict === 'fail' || responses.verdict === 'fail') return 'fail'
  return counters ? counters.verdict : responses.verdict
}

export interface EjectionAssessment {
  settings: OutlierSettings
  /** v1 endpoints with the faulty replica in */
  endpoints: number
  /** the ejection.possible check (warning severity) */
  possible: CheckResult
  impossible?: MeshWarning
  faultyDeploy?: KubeObject
  originalReplicas: number
  settingsEvidence: Record<string, unknown>
}

/** The static part: can the DestinationRule eject one of subset v1's endpoints at all (DR-8)? */
export async function assessEjection(target: Target): Promise<EjectionAssessment> {
  const client = target.client
  const [dr, v1Pods, faultyDeploy] = await Promise.all([
    client.get({apiVersion: NETWORKING_API, kind: 'DestinationRule', name: LAB.destinationRule, namespace: LAB.namespace}),
    client.list('v1', 'Pod', {namespace: LAB.namespace, labelSelector: `${LAB.appLabel}=${LAB.service},${LAB.versionLabel}=v1`}),
    client.get(deploymentRef(LAB.deployments.faulty)),
  ])
  const settings = outlierSettings(effectiveOutlierDetection(dr, 'v1'))
  const healthyV1 = v1Pods.filter((p) => isPodReady(p) && p.metadata.labels?.[LAB.faultyLabel] !== 'true' && !p.metadata.deletionTimestamp).length
  const originalReplicas = Number(faultyDeploy?.spec?.replicas ?? 0)
  const endpoints = healthyV1 + Math.max(1, originalReplicas)
  const settingsEvidence = {
    consecutive5xxErrors: settings.consecutive5xx,
    interval: `${settings.intervalMs / 1000}s`,
    baseEjectionTime: `${settings.baseEjectionMs / 1000}s`,
    maxEjectionPercent: settings.maxEjectionPercent,
    v1Endpoints: endpoints,
    destinationRule: dr ? `${LAB.namespace}/${LAB.destinationRule}` : 'none',
  }
  const impossible = checkEjectionPossible(dr, endpoints, 'v1')
  const possible = resultOf(
    'ejection.possible',
    impossible ? 'fail' : 'pass',
    impossible
      ? `${impossible.message} [${impossible.code}]`
      : `one ejection is ${Math.round(100 / endpoints)}% of ${endpoints} v1 endpoints (faulty replica included), within maxEjectionPercent ${settings.maxEjectionPercent}`,
    impossible ? {code: impossible.code, suggestion: impossible.suggestion, ...settingsEvidence} : settingsEvidence,
  )
  return {settings, endpoints, possible, ...(impossible ? {impossible} : {}), ...(faultyDeploy ? {faultyDeploy} : {}), originalReplicas, settingsEvidence}
}

export async function verifyEjection(lab: Lab, o: VerifyEjectionOptions = {}): Promise<EjectionVerification> {
  const target = lab.target
  const client = target.client
  const started = performance.now()
  const connections = o.connections ?? EJECTION_DEFAULTS.connections
  const rate = o.rate ?? EJECTION_DEFAULTS.rate
  const pollMs = o.pollMs ?? EJECTION_DEFAULTS.pollMs
  const waitMs = o.waitTimeoutMs ?? 60_000
  const warnings: EjectionVerification['warnings'] = []
  const progress = o.onProgress ?? (() => {})

  const a = await assessEjection(target)
  const {settings, settingsEvidence, possible, impossible, faultyDeploy, originalReplicas} = a
  if (impossible) {
    warnings.push({code: impossible.code, message: impossible.message})
    const ej = resultOf('ejection', 'fail', `not tested: ${impossible.message}, so driving load would prove nothing [${impossible.code}]`, {code: impossible.code, ...settingsEvidence}, {durationMs: performance.now() - started})
    return {results: [possible, ej], warnings, restored: true}
  }
  if (!faultyDeploy) {
    throw new MeshError('MESH_LAB_NOT_READY', `Deployment ${LAB.namespace}/${LAB.deployments.faulty} does not exist`, {suggestion: 'Run mesh lab reset to deploy the lab.', exit: EXIT.unavailable})
  }
  const w = await readWeights(client)
  const ingressWeights = w.ingress
  if (!ingressWeights || ingressWeights.v1 === 0) {
    const why = ingressWeights ? `the ingress routes ${formatWeights(ingressWeights)}, so subset v1 (and its faulty endpoint) gets no traffic` : 'the ingress has no route to hello'
    const ej = resultOf('ejection', 'inconclusive', `not tested: ${why}; shift some traffic to v1 first (mesh canary shift 50/50)`, {...settingsEvidence, ingressWeights: ingressWeights ? formatWeights(ingressWeights) : null})
    return {results: [possible, ej], warnings, restored: true}
  }
  const base = await resolveIngress(target, o.ingressUrl)
  await probeIngress(base)

  // the object the check's result goes into once measured; restore notes are added to it after
  let result: CheckResult | undefined
  let restoreError: string | undefined
  await withLabLock(lab.home, async () => {
    let scaled = false
    try {
      if (originalReplicas < 1) {
        progress(`Scaling ${LAB.deployments.faulty} to 1`)
        await scaleDeployment(target, LAB.deployments.faulty, 1)
        scaled = true
      }
      progress('Waiting for the faulty replica: Ready, in the endpoints, known to the proxies')
      const pods = await client.waitForList('v1', 'Pod', {namespace: LAB.namespace, labelSelector: `${LAB.faultyLabel}=true`}, (items) => items.some((p) => isPodReady(p) && p.status?.podIP && !p.metadata.deletionTimestamp), {
        timeoutMs: waitMs,
        description: `a Ready ${LAB.deployments.faulty} pod`,
      })
      const pod = pods.filter((p) => isPodReady(p) && p.status?.podIP && !p.metadata.deletionTimestamp).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))[0] as KubeObject
      const podName = pod.metadata.name
      const podIP = String(pod.status.podIP)
      await client.waitFor(
        {apiVersion: 'v1', kind: 'Endpoints', name: LAB.service, namespace: LAB.namespace},
        (ep) => ((ep?.subsets ?? []) as Array<{addresses?: Array<{ip: string}>}>).some((s) => s.addresses?.some((a) => a.ip === podIP)),
        {timeoutMs: waitMs, description: `${podName} (${podIP}) in the endpoints of ${LAB.service}`},
      )
      await target.waitForSync({timeoutMs: waitMs})

      const clusterName = subsetClusterName(LAB.service, LAB.namespace, LAB.port, 'v1')
      const access = await proxyAdmin(target, 'gateway')
      let admin: ProxyAdmin | undefined = access.admin
      let countersUnavailable = access.unavailable
      let enforcedBefore: number | undefined
      if (admin) {
        // the gateway must know the new endpoint before the load starts
        const deadline = Date.now() + 10_000
        let host: HostView | undefined
        try {
          for (;;) {
            host = faultyHost(await admin.clusters(), clusterName, podName, podIP)
            if (host && !host.ejected) break
            if (Date.now() > deadline) break
            await sleep(200)
          }
          if (host?.ejected) {
            // a replica that was already there may still be out from an earlier run
            progress('The faulty endpoint is still ejected from an earlier run; waiting for it to return')
            const until = Date.now() + settings.baseEjectionMs * 4 + settings.intervalMs + 2000
            while (host?.ejected && Date.now() < until) {
              await sleep(250)
              host = faultyHost(await admin.clusters(), clusterName, podName, podIP)
            }
          }
          if (!host) {
            countersUnavailable = `the gateway has no host ${podIP} in cluster ${clusterName}`
            admin = undefined
          } else {
            enforcedBefore = sumMetric(await admin.metrics(), 'envoy_cluster_outlier_detection_ejections_enforced_total', {cluster_name: clusterName})
          }
        } catch (e) {
          countersUnavailable = (e as Error).message
          admin = undefined
        }
      }

      const prediction = predictEjection(settings, connections)
      const fullWindowSec = (prediction.threshold / Math.max(1, rate)) * 4 + (prediction.ejectedForMs[1] + settings.intervalMs) / 1000 + 8
      const capSec = Math.min(o.timeoutSec ?? Math.min(180, Math.ceil(fullWindowSec)), 600)
      progress(
        `Driving ${rate} req/s over ${connections} connections through ${base}${LAB.ingressPath} for up to ${capSec} s; ` +
          `predicted: ejected after ${prediction.threshold}–${prediction.maxRequestsBeforeEjection} errors, out for ${prediction.ejectedForMs[0] / 1000}–${prediction.ejectedForMs[1] / 1000} s`,
      )
      const responses: ResponseRecord[] = []
      const samples: HostSample[] = []
      const stop = new AbortController()
      const onOuterAbort = () => stop.abort()
      o.signal?.addEventListener('abort', onOuterAbort, {once: true})
      const loadStarted = Date.now()
      let pollError: string | undefined
      let polling = true
      const poller = (async () => {
        if (!admin) return
        let returnedAt: number | undefined
        while (polling) {
          const t = Date.now()
          try {
            const h = faultyHost(await admin.clusters(), clusterName, podName, podIP)
            if (h) samples.push(toSample(h, t))
          } catch (e) {
            pollError ??= (e as Error).message
          }
          const seenEjected = samples.some((s) => s.ejected)
          const last = samples[samples.length - 1]
          if (seenEjected && last && !last.ejected) returnedAt ??= t
          if (seenEjected && last?.ejected && returnedAt !== undefined) returnedAt = undefined // ejected again
          // enough: back for a moment (traffic resumed), or re-ejected after a return
          const reEjected = samples.filter((s, i) => s.ejected && i > 0 && !samples[i - 1]!.ejected).length >= 2
          if ((returnedAt !== undefined && t - returnedAt > 1500) || reEjected) stop.abort()
          // never ejected although far past the threshold, or nothing after 20 s: give up early
          if (!seenEjected && last && samples.length > 1 && last.rqTotal - samples[0]!.rqTotal > prediction.maxRequestsBeforeEjection + 50) stop.abort()
          if (!seenEjected && t - loadStarted > 20_000) stop.abort()
          await sleep(pollMs)
        }
      })()
      let load: LoadResult
      try {
        load = await runLoad({
          url: base + LAB.ingressPath,
          connections,
          rate,
          durationSec: admin ? capSec : Math.min(capSec, Math.ceil(fullWindowSec)),
          classify: (status, body) => {
            const r = classifyEjectionResponse(status, body)
            responses.push(r)
            return r.faulty ? 'faulty' : r.instance ? 'healthy' : status >= 500 ? '5xx-local' : 'other'
          },
          signal: stop.signal,
        })
      } finally {
        polling = false
        await poller
        o.signal?.removeEventListener('abort', onOuterAbort)
      }
      let enforcedAfter: number | undefined
      if (admin && enforcedBefore !== undefined) {
        try {
          enforcedAfter = sumMetric(await admin.metrics(), 'envoy_cluster_outlier_detection_ejections_enforced_total', {cluster_name: clusterName})
        } catch (e) {
          pollError ??= (e as Error).message
        }
      }

      const counters = admin && samples.length > 1 ? analyzeCounters(samples, settings, connections, pollMs) : undefined
      if (admin && !counters) countersUnavailable = pollError ?? 'no samples of the gateway state were taken'
      const resp = analyzeResponses(responses, settings, connections)
      let verdict = combineVerdicts(counters, resp)
      const reasons = [...(counters?.reasons ?? []), ...resp.reasons.map((r) => `answers: ${r}`)]
      const enforced = enforcedAfter !== undefined && enforcedBefore !== undefined ? enforcedAfter - enforcedBefore : undefined
      if (counters && counters.ejections.length > 0 && enforced !== undefined && enforced < 1) {
        verdict = 'fail'
        reasons.unshift(`the per-host state shows an ejection but ejections_enforced_total of ${clusterName} did not grow`)
      }
      const noV1 = (load.classes.healthy ?? 0) + (load.classes.faulty ?? 0) === 0
      if (noV1) {
        verdict = 'inconclusive'
        reasons.unshift(`no answer came from subset v1 (${load.completed} responses: ${JSON.stringify(load.statuses)})`)
      }
      const first = counters?.ejections[0]
      const predicted = `predicted: at most ${prediction.maxRequestsBeforeEjection} 5xx before ejection (consecutive5xxErrors ${prediction.threshold} + ${prediction.inFlightSlack} in flight), then no requests for ${prediction.ejectedForMs[0] / 1000}–${prediction.ejectedForMs[1] / 1000} s`
      const observed = first
        ? `observed: ejected after ${first.requestsBefore}, ${first.requestsWhileEjected} requests while ejected${first.ejectedForMs ? `, out for ${(first.ejectedForMs[0] / 1000).toFixed(1)}–${(first.ejectedForMs[1] / 1000).toFixed(1)} s` : ''}`
        : `observed from the answers: ${resp.bursts.map((b) => b.count).join(', ') || 0} errors per burst, quiet for ${resp.gapsMs.map((g) => `${(g / 1000).toFixed(1)} s`).join(', ') || 'n/a'}`
      // a failure leads with what contradicted the prediction; inconclusive with what is missing
      const why = verdict === 'fail' || noV1 ? reasons[0] : verdict === 'inconclusive' ? ((counters ?? resp).reasons.at(-1) ?? reasons[0]) : undefined
      const message = `${verdict === 'pass' ? 'ejected as predicted' : verdict === 'fail' ? 'not as predicted' : 'could not decide'}: ${predicted}; ${observed}${why ? ` — ${why}` : ''}`
      const evidence: Record<string, unknown> = {
        faultyPod: podName,
        maxErrorsBeforeEjection: prediction.maxRequestsBeforeEjection,
        errorsBeforeEjection: first?.requestsBefore ?? resp.bursts[0]?.count ?? null,
        requestsWhileEjected: first?.requestsWhileEjected ?? null,
        ejectedForSec: first?.ejectedForMs ? first.ejectedForMs.map((x) => Math.round(x / 100) / 10) : null,
        predictedEjectedForSec: prediction.ejectedForMs.map((x) => x / 1000),
        ...settingsEvidence,
        connections,
        rate,
        counters: counters
          ? {source: `gateway admin ${admin!.baseUrl}`, cluster: clusterName, ejectionsEnforced: enforced ?? null, ejections: counters.ejections, trafficAfterReturn: counters.trafficAfterReturn, samples: samples.length}
          : {unavailable: countersUnavailable ?? 'not read'},
        answers: {faulty: resp.faulty, instances: resp.instances, bursts: resp.bursts.map((b) => b.count), quietSec: resp.gapsMs.map((g) => Math.round(g / 100) / 10)},
        load: {requests: load.completed, durationSec: Math.round(load.durationSec * 10) / 10, statuses: load.statuses, stopReason: load.stopReason},
        reasons,
      }
      result = resultOf('ejection', verdict, message, evidence)
    } finally {
      if (scaled) {
        try {
          progress(`Restoring ${LAB.deployments.faulty} to ${originalReplicas} replica(s)`)
          await scaleDeployment(target, LAB.deployments.faulty, originalReplicas)
          if (originalReplicas === 0) {
            await client.waitForList('v1', 'Pod', {namespace: LAB.namespace, labelSelector: `${LAB.faultyLabel}=true`}, (items) => items.length === 0, {
              timeoutMs: waitMs,
              description: `the ${LAB.deployments.faulty} pods to terminate`,
            })
          }
          await target.waitForSync({timeoutMs: waitMs})
        } catch (e) {
          // reported below; an error of the measurement itself (thrown from try) still wins
          restoreError = (e as Error).message
        }
      }
    }
  })
  if (restoreError !== undefined) {
    warnings.push({code: 'MESH_EJECTION_RESTORE_FAILED', message: `could not scale ${LAB.deployments.faulty} back to ${originalReplicas}: ${restoreError}; run mesh lab reset`})
    result!.evidence.restore = 'failed: run mesh lab reset'
  }
  result!.durationMs = Math.round(performance.now() - started)
  return {results: [possible, result!], warnings, restored: restoreError === undefined}
}

export type {OutlierSettings}
