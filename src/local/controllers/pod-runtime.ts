// The kubelet slot of the embedded cluster: the pod controller decides which pods should
// exist; a PodRuntime makes them run. meshd uses ProcessPodRuntime (one OS process per pod);
// tests of the API alone may use a runtime that only marks pods Running.

export interface ProbeSpec {
  httpGet?: {path: string; port: number}
  tcpSocket?: {port: number}
  initialDelaySeconds?: number
  periodSeconds?: number
  failureThreshold?: number
  /** per-probe timeout; Kubernetes default 1 */
  timeoutSeconds?: number
}

export interface PodLaunch {
  uid: string
  name: string
  namespace: string
  labels: Record<string, string>
  serviceAccount: string
  /** loopback address allocated to the pod (status.podIP) */
  podIP: string
  /** first container's image, e.g. docker.io/istio/examples-helloworld-v1:1.0 */
  image: string
  /** container `command` (overrides the image's entrypoint); absent when the manifest has none */
  command?: string[]
  args: string[]
  env: Record<string, string>
  containerPorts: number[]
  /** run our sidecar beside the app (namespace has istio-injection=enabled and the pod does not opt out) */
  sidecar: boolean
  readinessProbe?: ProbeSpec
  restartPolicy: 'Always' | 'OnFailure' | 'Never'
  /** SIGTERM → SIGKILL delay on terminate; the runtime uses 5 s when absent */
  terminationGracePeriodSeconds?: number
}

export type LaunchResult =
  | {ok: true; pid: number}
  /** the pod stays Pending with this reason/message, e.g. ImageNotEmulated */
  | {ok: false; reason: string; message: string}

export interface PodRuntimeEvents {
  /** the pod's process exited (crash, kill -9, or normal end) */
  exited(uid: string, exitCode: number | null, signal: string | null): void
  /** readiness changed according to the pod's probe */
  readiness(uid: string, ready: boolean): void
}

export interface PodRuntime {
  launch(pod: PodLaunch): Promise<LaunchResult>
  terminate(uid: string): Promise<void>
  /** subscribe once; meshd's pod controller updates pod status from these events */
  setListener(events: PodRuntimeEvents): void
  shutdown(): Promise<void>
}
