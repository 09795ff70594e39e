// Loads the mesh security implementation (./security/, which exports
// `createSecurityProvider({identity, getSnapshot, getSecret})`) for a proxy process, with the
// state it reads kept here. Dynamic so a build without it still runs plaintext/allow-all.
import {PlaintextAllowAll, type SecurityProvider} from './security-provider.js'
import type {MeshSnapshot, ProxyIdentity, WorkloadSecret} from './snapshot.js'

/** What a proxy process keeps for its security provider to read on every call. */
export interface SecurityState {
  snapshot: MeshSnapshot | undefined
  secret: WorkloadSecret | undefined
}

type SecurityFactory = (deps: {identity: ProxyIdentity; getSnapshot: () => MeshSnapshot | undefined; getSecret: () => WorkloadSecret | undefined}) => SecurityProvider

export async function loadSecurityProvider(identity: ProxyIdentity, state: SecurityState): Promise<SecurityProvider> {
  try {
    const mod = (await import(new URL('./security/index.js', import.meta.url).href)) as {createSecurityProvider?: SecurityFactory}
    if (typeof mod.createSecurityProvider === 'function') {
      return mod.createSecurityProvider({identity, getSnapshot: () => state.snapshot, getSecret: () => state.secret})
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw error
  }
  return new PlaintextAllowAll()
}
