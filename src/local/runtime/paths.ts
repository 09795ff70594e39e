// Where a pod's files live and which port its emulated app really binds.

import {join} from 'node:path'
import {APP_PORT_OFFSET} from '../dataplane/snapshot.js'

/** The port the emulated app binds for a port the image listens on: shifted when a sidecar owns the original. */
export const appPort = (port: number, sidecar: boolean): number => (sidecar ? port + APP_PORT_OFFSET : port)

/** Highest container port that can still be shifted by APP_PORT_OFFSET. */
export const MAX_SIDECAR_PORT = 65_535 - APP_PORT_OFFSET

export const podsDir = (stateDir: string): string => join(stateDir, 'pods')

/** stdout+stderr of the pod's current process (JSON lines). */
export const podLogPath = (stateDir: string, namespace: string, name: string): string => join(podsDir(stateDir), `${namespace}_${name}.log`)

/** The log of the process before the last (re)launch, like `kubectl logs --previous`. */
export const previousPodLogPath = (stateDir: string, namespace: string, name: string): string =>
  join(podsDir(stateDir), `${namespace}_${name}.previous.log`)
