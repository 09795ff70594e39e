#!/usr/bin/env node
// npm test: build (integration tests run the compiled CLI and meshd), then vitest.
// System tools some tests drive (kubectl is on these machines; tmux, chromium, openssl
// come from Debian) are installed here when missing and we are root, as CI is.
import {execSync, spawnSync} from 'node:child_process'

const need = {tmux: 'tmux', openssl: 'openssl', chromium: 'chromium', curl: 'curl'}
const missing = Object.entries(need).filter(([bin]) => spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0).map(([, pkg]) => pkg)
if (missing.length > 0) {
  if (process.getuid?.() === 0) {
    console.error(`installing system packages for tests: ${missing.join(' ')}`)
    execSync('apt-get update -qq', {stdio: 'inherit'})
    execSync(`DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${missing.join(' ')}`, {stdio: 'inherit'})
  } else {
    console.error(`missing system packages (install them first): ${missing.join(' ')}`)
  }
}
execSync('npm run build', {stdio: 'inherit'})
const r = spawnSync('npx', ['vitest', 'run', ...process.argv.slice(2)], {stdio: 'inherit'})
process.exit(r.status ?? 1)
