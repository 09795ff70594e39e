// Mesh-wide Telemetry turning on Envoy access logs (TM-4), used by the observability lab.
import type {ITelemetry} from '@kubernetes-models/istio/telemetry.istio.io/v1/Telemetry'
import {LAB, meta, type ObjectMeta} from './lab.js'

export type Telemetry = ITelemetry & {metadata: ObjectMeta; spec: NonNullable<ITelemetry['spec']>}

export const TELEMETRY_API = 'telemetry.istio.io/v1'

export function buildAccessLogTelemetry(): Telemetry {
  return {
    apiVersion: TELEMETRY_API,
    kind: 'Telemetry',
    metadata: meta(LAB.telemetry, LAB.rootNamespace),
    spec: {accessLogging: [{providers: [{name: 'envoy'}]}]},
  }
}
