// Public surface of the proxy engine (see docs/adr/0040). Security lives in ./security/.
export {createProxy, type ApplyResult, type ClusterStatus, type ConfigDump, type ListenerAddress, type ListenerSpec, type Proxy, type ProxyOptions} from './proxy.js'
export {createAdminServer, type AdminOptions, type AdminServer} from './admin.js'
export {startXdsClient, subscribeProxy, type SubscribeProxyOptions, type XdsClient, type XdsClientOptions, type XdsState} from './xds-client.js'
export {PlaintextAllowAll, peerFromCertificate, type AuthzDecision, type AuthzRequest, type MtlsMode, type Peer, type SecurityProvider, type UpstreamClusterInfo} from './security-provider.js'
export {compileRouteTable, type RouteTable} from './routing.js'
export {formatAccessLogJson, formatAccessLogText, type AccessLogOptions} from './telemetry.js'
