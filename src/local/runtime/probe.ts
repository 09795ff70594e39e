// Readiness probes as the kubelet runs them, aimed at the app port: under a sidecar that is
// containerPort + APP_PORT_OFFSET, the way Istio rewrites probes so they bypass the proxy
// (and mTLS) and reach the application directly.

import http from 'node:http'
import net from 'node:net'
import type {ProbeSpec} from '../controllers/pod-runtime.js'
import {appPort} from './paths.js'

export interface ProbeResult {
  ok: boolean
  detail: string
}

export interface ProbeTiming {
  initialDelayMs: number
  periodMs: number
  timeoutMs: number
  failureThreshold: number
}

/** Kubernetes defaults, except the period is capped at 2 s so a lab reacts within seconds (ADR 0052). */
export function probeTiming(spec: ProbeSpec): ProbeTiming {
  const period = spec.periodSeconds !== undefined && spec.periodSeconds > 0 ? spec.periodSeconds : 10
  return {
    initialDelayMs: Math.max(0, spec.initialDelaySeconds ?? 0) * 1000,
    periodMs: Math.min(period, 2) * 1000,
    timeoutMs: (spec.timeoutSeconds !== undefined && spec.timeoutSeconds > 0 ? spec.timeoutSeconds : 1) * 1000,
    failureThreshold: spec.failureThreshold !== undefined && spec.failureThreshold > 0 ? spec.failureThreshold : 3,
  }
}

/** The address a probe connects to; undefined when the probe has no handler we support. */
export function probeTarget(spec: ProbeSpec, podIP: string, sidecar: boolean): {host: string; port: number; path?: string} | undefined {
  if (spec.httpGet) return {host: podIP, port: appPort(spec.httpGet.port, sidecar), path: spec.httpGet.path || '/'}
  if (spec.tcpSocket) return {host: podIP, port: appPort(spec.tcpSocket.port, sidecar)}
  return undefined
}

export function runProbe(spec: ProbeSpec, podIP: string, sidecar: boolean, timeoutMs: number): Promise<ProbeResult> {
  const t = probeTarget(spec, podIP, sidecar)
  if (!t) return Promise.resolve({ok: false, detail: 'probe has neither httpGet nor tcpSocket'})
  return t.path === undefined ? tcpProbe(t.host, t.port, timeoutMs) : httpProbe(t.host, t.port, t.path, timeoutMs)
}

function tcpProbe(host: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const s = net.connect({host, port})
    const timer = setTimeout(() => {
      s.destroy()
      resolve({ok: false, detail: `dial tcp ${host}:${port}: i/o timeout`})
    }, timeoutMs)
    s.once('connect', () => {
      clearTimeout(timer)
      s.destroy()
      resolve({ok: true, detail: `tcp ${host}:${port} accepted`})
    })
    s.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      resolve({ok: false, detail: `dial tcp ${host}:${port}: ${err.code ?? err.message}`})
    })
  })
}

function httpProbe(host: string, port: number, path: string, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let settled = false
    const done = (r: ProbeResult): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resolve(r)
    }
    const req = http.request({host, port, path, method: 'GET', agent: false, headers: {'User-Agent': 'kube-probe/1.32', Accept: '*/*', Connection: 'close'}})
    const timer = setTimeout(() => {
      req.destroy()
      done({ok: false, detail: `Get "http://${host}:${port}${path}": context deadline exceeded`})
    }, timeoutMs)
    req.on('error', (err: NodeJS.ErrnoException) => done({ok: false, detail: `Get "http://${host}:${port}${path}": ${err.code ?? err.message}`}))
    req.on('response', (res) => {
      res.resume()
      const code = res.statusCode ?? 0
      // kubelet: 200 ≤ code < 400 is success
      done(code >= 200 && code < 400 ? {ok: true, detail: `HTTP ${code}`} : {ok: false, detail: `HTTP probe failed with statuscode: ${code}`})
    })
    req.end()
  })
}
