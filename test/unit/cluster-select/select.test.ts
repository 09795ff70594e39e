import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {EMBEDDED_CONTEXT, forgetTarget, loadTarget, rememberTarget, selectTarget} from '../../../src/cluster/select.js'
import type {MeshError} from '../../../src/lib/errors.js'

const dir = mkdtempSync(join(tmpdir(), 'mesh-select-'))
afterAll(() => rmSync(dir, {recursive: true, force: true}))
let n = 0
const freshHome = () => join(dir, `home-${++n}`)

const kubeconfig = join(dir, 'kc.yaml')
writeFileSync(
  kubeconfig,
  `clusters:
- name: kind-mesh
  cluster: {server: "https://127.0.0.1:6443"}
- name: gke
  cluster: {server: "https://10.0.0.1"}
users:
- name: u
  user: {token: t}
contexts:
- name: kind-mesh
  context: {cluster: kind-mesh, user: u}
- name: gke
  context: {cluster: gke, user: u}
current-context: gke
`,
)
const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({KUBECONFIG: kubeconfig, ...extra})

const error = (f: () => unknown): MeshError => {
  try {
    f()
  } catch (e) {
    return e as MeshError
  }
  throw new Error('expected an error')
}

describe('target selection', () => {
  it('defaults to the embedded cluster with its kubeconfig in the mesh home', () => {
    const home = freshHome()
    expect(selectTarget({home, env: env()})).toEqual({kind: 'embedded', context: EMBEDDED_CONTEXT, kubeconfigPath: join(home, 'kubeconfig'), source: 'default'})
  })

  it('--context picks a real cluster, even when the kubeconfig current-context differs', () => {
    expect(selectTarget({home: freshHome(), context: 'kind-mesh', env: env()})).toEqual({kind: 'real', context: 'kind-mesh', kubeconfigPath: kubeconfig, source: 'flag'})
  })

  it('MESH_CONTEXT picks a real cluster; --context beats it', () => {
    const home = freshHome()
    expect(selectTarget({home, env: env({MESH_CONTEXT: 'gke'})})).toMatchObject({kind: 'real', context: 'gke', source: 'env'})
    expect(selectTarget({home, context: 'kind-mesh', env: env({MESH_CONTEXT: 'gke'})})).toMatchObject({context: 'kind-mesh', source: 'flag'})
  })

  it('an unknown context fails before anything else (MESH_CONTEXT_NOT_FOUND, 65)', () => {
    const e = error(() => selectTarget({home: freshHome(), context: 'does-not-exist', env: env()}))
    expect(e.code).toBe('MESH_CONTEXT_NOT_FOUND')
    expect(e.exit).toBe(65)
    expect(e.message).toContain('kind-mesh, gke')
  })

  it('remembers the lab target so later commands need no flags', () => {
    const home = freshHome()
    const chosen = selectTarget({home, context: 'kind-mesh', env: env()})
    rememberTarget(home, chosen)
    expect(loadTarget(home)).toEqual({kind: 'real', context: 'kind-mesh', kubeconfigPath: kubeconfig})
    // no flags, and KUBECONFIG no longer set: the remembered kubeconfig is used
    expect(selectTarget({home, env: {}})).toEqual({kind: 'real', context: 'kind-mesh', kubeconfigPath: kubeconfig, source: 'remembered'})
    forgetTarget(home)
    expect(selectTarget({home, env: {}}).kind).toBe('embedded')
  })

  it('a remembered context that vanished from the kubeconfig is reported', () => {
    const home = freshHome()
    rememberTarget(home, {kind: 'real', context: 'deleted-cluster', kubeconfigPath: kubeconfig})
    expect(error(() => selectTarget({home, env: {}})).code).toBe('MESH_CONTEXT_NOT_FOUND')
    expect(selectTarget({home, env: {}, skipContextCheck: true}).context).toBe('deleted-cluster')
  })

  it('a corrupt target.json is MESH_TARGET_INVALID (65) with a way out', () => {
    const home = freshHome()
    rememberTarget(home, {kind: 'embedded', context: EMBEDDED_CONTEXT, kubeconfigPath: join(home, 'kubeconfig')})
    writeFileSync(join(home, 'target.json'), '{"kind": "cloud"}')
    const e = error(() => selectTarget({home, env: {}}))
    expect(e.code).toBe('MESH_TARGET_INVALID')
    expect(e.exit).toBe(65)
    expect(e.suggestion).toContain('mesh lab up')
  })
})
