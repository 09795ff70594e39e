// Mesh security for the embedded data plane: mTLS, PeerAuthentication, AuthorizationPolicy.
export * from './tls.js'
export * from './peer-authentication.js'
export * from './authz.js'
export * from './validate.js'
export * from './provider.js'
