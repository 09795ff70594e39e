#!/usr/bin/env node
// npm run demo: the main job on the embedded cluster, as a workshop would run it.
// Builds mesh, brings the lab up, steps the canary with a verified split at each step,
// switches mTLS to STRICT and proves it, applies deny-by-default and an allow rule, then
// leaves the lab running (stop it with `./bin/run.js lab down`).
import {spawnSync} from 'node:child_process'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const bin = join(root, 'bin', 'run.js')

function sh(cmd, args) {
  const r = spawnSync(cmd, args, {cwd: root, stdio: 'inherit'})
  if (r.status !== 0) {
    console.error(`\n✗ ${[cmd, ...args].join(' ')} exited ${r.status}`)
    process.exit(r.status ?? 1)
  }
}

const mesh = (...args) => {
  console.log(`\n$ mesh ${args.join(' ')}`)
  sh(process.execPath, [bin, ...args])
}

if (process.env.MESH_DEMO_SKIP_BUILD !== '1') sh('npm', ['run', '--silent', 'build'])
mesh('lab', 'up')
for (const w of ['90/10', '50/50', '0/100']) {
  mesh('canary', 'shift', w)
  mesh('verify', 'split', '--expect', w)
}
mesh('canary', 'rollback')
mesh('mtls', 'strict')
mesh('verify', 'mtls')
mesh('policy', 'deny-all')
mesh('call', '/hello', '--from', 'ingress')
mesh('policy', 'allow', '--to', 'hello', '--methods', 'GET')
mesh('verify', 'authz')
mesh('lab', 'reset')
mesh('lab', 'status')
console.log('\nThe lab is still running. Next: ./bin/run.js lab walkthrough 02-canary, or ./bin/run.js lab down')
