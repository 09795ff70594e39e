// mesh verify and mesh load as a library: checks that prove the split, outlier ejection, mTLS
// and authorization on the embedded lab or a real cluster. No terminal I/O.
export * from './catalog.js'
export * from './common.js'
export * from './admin.js'
export * from './split.js'
export * from './ejection-math.js'
export * from './ejection.js'
export * from './expect.js'
export * from './security.js'
export * from './run.js'
export * from './traffic.js'
export * from './flags.js'
export * from './output.js'
