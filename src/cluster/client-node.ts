// @kubernetes/client-node takes ~0.45 s to import (its generated API and auth plugins), more than
// a whole embedded `canary shift`. It is needed only to read arbitrary kubeconfigs (exec and OIDC
// auth, proxies) for real clusters, so it loads on first use: synchronously, through require()
// of the ES module (Node ≥ 20.19, which package.json's engines asks for). ADR 0150.
import {createRequire} from 'node:module'

type ClientNode = typeof import('@kubernetes/client-node')

let loaded: ClientNode | undefined

export function clientNode(): ClientNode {
  loaded ??= createRequire(import.meta.url)('@kubernetes/client-node') as ClientNode
  return loaded
}
