import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {delimiter, join} from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {childKubeconfig, kubeConfigFor, kubeconfigPaths, listContexts, loadKubeconfig, resolveContext} from '../../../src/cluster/kubeconfig.js'
import type {MeshError} from '../../../src/lib/errors.js'

const dir = mkdtempSync(join(tmpdir(), 'mesh-kubeconfig-'))
afterAll(() => rmSync(dir, {recursive: true, force: true}))

const write = (name: string, text: string) => {
  const p = join(dir, name)
  writeFileSync(p, text)
  return p
}

const cfg = (ctxs: Array<{name: string; server: string; cluster?: string}>, current?: string) =>
  [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    ...ctxs.map((c) => `- name: ${c.cluster ?? c.name}\n  cluster:\n    server: ${c.server}\n    certificate-authority: ca.crt`),
    'users:',
    ...ctxs.map((c) => `- name: ${c.name}\n  user:\n    token: t-${c.name}`),
    'contexts:',
    ...ctxs.map((c) => `- name: ${c.name}\n  context:\n    cluster: ${c.cluster ?? c.name}\n    user: ${c.name}`),
    ...(current ? [`current-context: ${current}`] : []),
  ].join('\n') + '\n'

const a = write('a.yaml', cfg([{name: 'kind-mesh', server: 'https://127.0.0.1:6443'}, {name: 'shared', server: 'https://a.example:6443'}], 'kind-mesh'))
const b = write('b.yaml', cfg([{name: 'gke-sandbox', server: 'https://10.0.0.1'}, {name: 'shared', server: 'https://b.example:6443'}], 'gke-sandbox'))

const error = (f: () => unknown): MeshError => {
  try {
    f()
  } catch (e) {
    return e as MeshError
  }
  throw new Error('expected an error')
}

describe('kubeconfig loading', () => {
  it('merges the files in KUBECONFIG: first definition and first current-context win', () => {
    const loaded = loadKubeconfig({env: {KUBECONFIG: [a, join(dir, 'missing.yaml'), b].join(delimiter)}})
    expect(loaded.files).toEqual([a, b])
    expect(loaded.contexts.map((c) => c.name)).toEqual(['kind-mesh', 'shared', 'gke-sandbox'])
    expect(loaded.currentContext).toBe('kind-mesh')
    expect(loaded.contexts.find((c) => c.name === 'shared')?.server).toBe('https://a.example:6443')
    expect(loaded.contexts.find((c) => c.current)?.name).toBe('kind-mesh')
    expect(loaded.pathSpec).toBe([a, b].join(delimiter))
  })

  it('resolves certificate paths relative to the file that names them', () => {
    const {kc} = kubeConfigFor({env: {KUBECONFIG: b}, context: 'gke-sandbox'})
    expect(kc.getCurrentContext()).toBe('gke-sandbox')
    expect(kc.getCurrentCluster()?.caFile).toBe(join(dir, 'ca.crt'))
  })

  it('--kubeconfig overrides KUBECONFIG', () => {
    expect(kubeconfigPaths({kubeconfig: b, env: {KUBECONFIG: a}})).toEqual([b])
    expect(listContexts({kubeconfig: b, env: {KUBECONFIG: a}}).map((c) => c.name)).toEqual(['gke-sandbox', 'shared'])
  })

  it('falls back to ~/.kube/config', () => {
    expect(kubeconfigPaths({env: {HOME: '/home/u'}})).toEqual(['/home/u/.kube/config'])
  })

  it('an unknown --context is MESH_CONTEXT_NOT_FOUND (65) listing the contexts', () => {
    const e = error(() => kubeConfigFor({env: {KUBECONFIG: [a, b].join(delimiter)}, context: 'does-not-exist'}))
    expect(e.code).toBe('MESH_CONTEXT_NOT_FOUND')
    expect(e.exit).toBe(65)
    expect(e.message).toContain('"does-not-exist"')
    expect(e.message).toContain('kind-mesh, shared, gke-sandbox')
    expect(e.suggestion).toContain('kubectl config get-contexts')
  })

  it('no current-context and no --context is MESH_CONTEXT_NOT_FOUND too', () => {
    const none = write('none.yaml', cfg([{name: 'x', server: 'https://x'}]))
    const e = error(() => resolveContext(loadKubeconfig({kubeconfig: none})))
    expect(e.code).toBe('MESH_CONTEXT_NOT_FOUND')
    expect(e.message).toContain('no current-context')
  })

  it('malformed YAML is MESH_KUBECONFIG_INVALID (65) naming the file', () => {
    const bad = write('bad.yaml', 'clusters:\n  - name: x\n    cluster: {server: "https://x"\n')
    const e = error(() => loadKubeconfig({env: {KUBECONFIG: [a, bad].join(delimiter)}}))
    expect(e.code).toBe('MESH_KUBECONFIG_INVALID')
    expect(e.exit).toBe(65)
    expect(e.message).toContain(bad)
  })

  it('a YAML document that is not a kubeconfig is MESH_KUBECONFIG_INVALID', () => {
    const list = write('list.yaml', '- a\n- b\n')
    expect(error(() => loadKubeconfig({kubeconfig: list})).code).toBe('MESH_KUBECONFIG_INVALID')
    const noServer = write('noserver.yaml', 'clusters:\n- name: x\n  cluster: {}\n')
    const e = error(() => loadKubeconfig({kubeconfig: noServer}))
    expect(e.code).toBe('MESH_KUBECONFIG_INVALID')
    expect(e.message).toContain('server')
  })

  it('a missing --kubeconfig file is MESH_KUBECONFIG_NOT_FOUND', () => {
    const e = error(() => loadKubeconfig({kubeconfig: join(dir, 'nope.yaml')}))
    expect(e.code).toBe('MESH_KUBECONFIG_NOT_FOUND')
    expect(e.exit).toBe(65)
  })

  it('hands one file to child tools as --kubeconfig and a list as KUBECONFIG', () => {
    expect(childKubeconfig(a)).toEqual({args: ['--kubeconfig', a], env: {}})
    expect(childKubeconfig([a, b].join(delimiter))).toEqual({args: [], env: {KUBECONFIG: [a, b].join(delimiter)}})
  })
})
