// The one place a pod process starts its sidecar. The mesh sidecar lives in the data plane
// (src/local/dataplane/sidecar.ts, `startSidecar(opts: SidecarOptions)`); it is imported
// lazily so the runtime builds and runs before that module exists. Until then (or when asked
// to) the pod gets passThroughSidecar: plain TCP from <podIP>:<containerPort> to the app port.
// That bridge is TEMPORARY: no routing, no mTLS, no telemetry, no outbound capture.

import {existsSync} from 'node:fs'
import net from 'node:net'
import {fileURLToPath} from 'node:url'
import type {PodLaunch} from '../controllers/pod-runtime.js'

export interface SidecarOptions {
  pod: PodLaunch
  /** the sidecar listens on <podIP>:containerPort and delivers inbound traffic to <podIP>:appPort */
  appPorts: Array<{containerPort: number; appPort: number}>
  /** meshd's API (config and certificates) */
  meshd: {url: string; token: string; caPem: string}
  stateDir: string
}

/** What a started sidecar gives back to the pod process. */
export interface SidecarHandle {
  /** stop accepting, let in-flight traffic finish, then resolve (the pod is terminating) */
  stop(): Promise<void>
  /** the listener that captures the pod's own outbound traffic (Istio's 15001), if any */
  outbound?: {address: string; port: number}
  /** settles once the sidecar has its first configuration; the pod is not started before */
  ready?: Promise<void>
}

export type SidecarImpl = 'auto' | 'passthrough'

export interface StartedSidecar extends SidecarHandle {
  kind: 'mesh' | 'passthrough'
}

type Log = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void

/** URL of the data plane's sidecar module, resolved from this compiled file (dist/local/runtime → dist/local/dataplane). */
export const MESH_SIDECAR_MODULE = new URL('../dataplane/sidecar.js', import.meta.url).href

interface MeshSidecarModule {
  startSidecar(opts: SidecarOptions): Promise<Partial<SidecarHandle> & {close?: () => Promise<void> | void}>
}

/** Load the mesh sidecar; undefined only when the module does not exist yet (a broken module throws). */
async function loadMeshSidecar(moduleUrl: string): Promise<MeshSidecarModule | undefined> {
  if (moduleUrl.startsWith('file:') && !existsSync(fileURLToPath(moduleUrl))) return undefined
  const mod = (await import(moduleUrl)) as Partial<MeshSidecarModule>
  if (typeof mod.startSidecar !== 'function') throw new Error(`${moduleUrl} does not export startSidecar(opts)`)
  return mod as MeshSidecarModule
}

/**
 * THE seam: start the pod's sidecar. `impl: 'passthrough'` forces the bridge (tests of the
 * runtime alone, or to take the data plane out of the picture while debugging).
 */
export async function startSidecar(opts: SidecarOptions, impl: SidecarImpl, log: Log, moduleUrl = MESH_SIDECAR_MODULE): Promise<StartedSidecar> {
  if (impl === 'auto') {
    const mod = await loadMeshSidecar(moduleUrl)
    if (mod) {
      const h = await mod.startSidecar(opts)
      const stop = h.stop ?? h.close
      log('info', 'mesh sidecar started', {outbound: h.outbound})
      return {kind: 'mesh', outbound: h.outbound, ready: h.ready, stop: async () => { await stop?.call(h) }}
    }
    log('warn', 'mesh sidecar not available (src/local/dataplane/sidecar.ts missing): using the plain TCP pass-through; no routing, mTLS or telemetry for this pod', {module: moduleUrl})
  } else {
    log('warn', 'plain TCP pass-through sidecar forced (sidecarImpl=passthrough)')
  }
  const h = await passThroughSidecar(opts.pod.podIP, opts.appPorts, log)
  return {kind: 'passthrough', ...h}
}

/**
 * TEMPORARY bridge until the mesh sidecar exists: accept on <podIP>:containerPort, pipe bytes
 * to <podIP>:appPort. A refused app connection resets the client, as a proxy would.
 */
export async function passThroughSidecar(podIP: string, appPorts: SidecarOptions['appPorts'], log: Log): Promise<SidecarHandle> {
  const servers: net.Server[] = []
  const closeAll = async (): Promise<void> => {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))))
  }
  try {
    for (const {containerPort, appPort} of appPorts) {
      const server = net.createServer((client) => {
        const upstream = net.connect({host: podIP, port: appPort})
        const drop = (): void => {
          client.destroy()
          upstream.destroy()
        }
        client.on('error', drop)
        upstream.on('error', (err: NodeJS.ErrnoException) => {
          if (err.code === 'ECONNREFUSED') client.resetAndDestroy()
          drop()
        })
        client.pipe(upstream)
        upstream.pipe(client)
      })
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen({host: podIP, port: containerPort}, () => {
          server.off('error', reject)
          resolve()
        })
      })
      servers.push(server)
      log('info', 'pass-through listening', {address: `${podIP}:${containerPort}`, app: `${podIP}:${appPort}`})
    }
  } catch (error) {
    await closeAll()
    throw error
  }
  return {
    async stop() {
      // stop accepting; open connections end when the app closes its side after in-flight work
      await closeAll()
    },
  }
}
