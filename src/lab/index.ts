// The library behind the lab commands (canary, mtls, policy, call, lab reset) and the state
// and caller readers `mesh verify` and `mesh lab status` reuse. No terminal I/O.
export * from './open-target.js'
export * from './change.js'
export * from './state.js'
export * from './canary.js'
export * from './canary-progress.js'
export * from './canary-run.js'
export * from './mtls.js'
export * from './policy.js'
export * from './callers.js'
export * from './reset.js'
export * from './render.js'
