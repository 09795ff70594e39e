// Messages between ProcessPodRuntime (in meshd) and a pod process, over the Node IPC channel.

import type {SidecarImpl} from './sidecar-seam.js'

/** Env var holding the PodLaunch JSON (argv[2] works too, for running a pod by hand). */
export const POD_ENV = 'MESH_POD'

/** runtime → pod, first message: what the sidecar needs; not in the env so the token stays out of /proc/<pid>/environ */
export interface PodInit {
  type: 'init'
  meshd: {url: string; token: string; caPem: string}
  stateDir: string
  sidecarImpl: SidecarImpl
}

export interface StartedListener {
  name: string
  address: string
  port: number
}

/** pod → runtime */
export type PodMessage =
  /** app listeners bound and sidecar up: the container is running */
  | {type: 'started'; listeners: StartedListener[]; sidecar?: 'mesh' | 'passthrough'}
  /** the pod began a graceful stop (signal or parent gone): take it out of service now */
  | {type: 'stopping'; reason: string}
