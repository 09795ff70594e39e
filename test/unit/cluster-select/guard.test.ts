import {describe, expect, it} from 'vitest'
import {MANAGED_BY_LABEL, assertManaged, assertWritable, isLocalLabContext, requireConfirmation, withManagedLabel} from '../../../src/cluster/guard.js'
import type {MeshError} from '../../../src/lib/errors.js'

const error = (f: () => unknown): MeshError => {
  try {
    f()
  } catch (e) {
    return e as MeshError
  }
  throw new Error('expected an error')
}

describe('local lab contexts', () => {
  it.each([
    ['kind-mesh', true],
    ['kind-kind', true],
    ['minikube', true],
    ['k3d-lab', true],
    ['docker-desktop', true],
    ['rancher-desktop', true],
    ['orbstack', true],
    ['mesh-local', true],
    ['kind-', false],
    ['kind', false],
    ['k3d-', false],
    ['minikube-prod', false],
    ['gke_my-project_europe-west1_prod', false],
    ['arn:aws:eks:eu-west-1:123:cluster/prod', false],
    ['prod-kind-mesh', false],
    ['mesh-local-2', false],
    ['', false],
  ])('%j → %s', (name, local) => {
    expect(isLocalLabContext(name)).toBe(local)
  })
})

describe('requireConfirmation', () => {
  it.each([
    ['kind-mesh', false, 'local-context'],
    ['kind-mesh', true, 'local-context'],
    ['gke_p_z_prod', true, 'yes-flag'],
  ] as const)('%s with yes=%s passes (%s)', (ctx, yes, how) => {
    expect(requireConfirmation(ctx, 'install Istio', yes)).toBe(how)
  })

  it('refuses a non-lab context without --yes (MESH_UNSAFE_CONTEXT, 65)', () => {
    const e = error(() => requireConfirmation('gke_p_z_prod', 'install Istio', false))
    expect(e.code).toBe('MESH_UNSAFE_CONTEXT')
    expect(e.exit).toBe(65)
    expect(e.message).toContain('install Istio')
    expect(e.message).toContain('"gke_p_z_prod"')
    expect(e.message).toContain('does not look like a local lab cluster')
    expect(e.suggestion).toContain('--yes')
  })
})

describe('ownership', () => {
  const vs = (labels?: Record<string, string> | null) => ({apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: {name: 'hello', namespace: 'hello', labels}})

  it.each([
    [{[MANAGED_BY_LABEL]: 'mesh'}, true],
    [{[MANAGED_BY_LABEL]: 'Helm'}, false],
    [{app: 'hello'}, false],
    [null, false],
    [undefined, false],
  ])('labels %j → managed=%s', (labels, managed) => {
    if (managed) expect(() => assertManaged(vs(labels), 'delete')).not.toThrow()
    else {
      const e = error(() => assertManaged(vs(labels), 'delete'))
      expect(e.code).toBe('MESH_NOT_MANAGED')
      expect(e.exit).toBe(65)
      expect(e.message).toContain('refusing to delete VirtualService hello/hello')
    }
  })

  it('writing is allowed over nothing or over our own object', () => {
    expect(() => assertWritable(undefined)).not.toThrow()
    expect(() => assertWritable(withManagedLabel(vs({app: 'hello'})))).not.toThrow()
    expect(error(() => assertWritable(vs({app: 'hello'}))).code).toBe('MESH_NOT_MANAGED')
    expect(withManagedLabel(vs({app: 'hello'})).metadata.labels).toEqual({app: 'hello', [MANAGED_BY_LABEL]: 'mesh'})
  })
})
