// The Istio objects of a freshly set-up lab: all traffic to v1, mTLS PERMISSIVE in mesh-lab.
import {LAB} from './lab.js'
import {buildPeerAuthentication, type PeerAuthentication} from './security.js'
import {buildGateway, buildHelloDestinationRule, buildHelloVirtualServices, type DestinationRule, type Gateway, type VirtualService} from './traffic.js'
import {ROLLBACK_WEIGHTS} from './canary.js'

export type LabObject = Gateway | DestinationRule | VirtualService | PeerAuthentication

/** Gateway, DestinationRule, both VirtualServices at 100/0, namespace PeerAuthentication PERMISSIVE — in apply order. */
export function labBaseline(): LabObject[] {
  return [
    buildGateway(),
    buildHelloDestinationRule(),
    ...buildHelloVirtualServices(ROLLBACK_WEIGHTS),
    buildPeerAuthentication({mode: 'PERMISSIVE', namespace: LAB.namespace}),
  ]
}
