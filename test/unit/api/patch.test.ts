import {describe, expect, it} from 'vitest'
import {mergePatch, strategicMergePatch} from '../../../src/local/api/patch.js'
import {flatten, fromFieldsV1, renderPath, toFieldsV1} from '../../../src/local/api/ssa.js'

const pod = () => ({
  metadata: {name: 'p', labels: {a: '1', b: '2'}, finalizers: ['x']},
  spec: {
    containers: [
      {name: 'app', image: 'app:1', ports: [{containerPort: 80, name: 'http'}], env: [{name: 'A', value: '1'}, {name: 'B', value: '2'}]},
      {name: 'side', image: 'side:1'},
    ],
  },
})

describe('merge patch', () => {
  it('merges maps, deletes on null, replaces lists', () => {
    expect(mergePatch({a: {b: 1, c: 2}, l: [1, 2]}, {a: {b: null, d: 3}, l: [3]})).toEqual({a: {c: 2, d: 3}, l: [3]})
  })
})

describe('strategic merge patch', () => {
  it('merges containers by name and ports by containerPort', () => {
    const out = strategicMergePatch(pod(), {spec: {containers: [{name: 'app', image: 'app:2', ports: [{containerPort: 81}]}]}}) as ReturnType<typeof pod>
    expect(out.spec.containers.map((c) => `${c.name}:${c.image}`)).toEqual(['app:app:2', 'side:side:1'])
    expect(out.spec.containers[0].ports).toEqual([{containerPort: 80, name: 'http'}, {containerPort: 81}])
    expect(out.spec.containers[0].env).toHaveLength(2)
  })

  it('honours $patch delete/replace, $setElementOrder and $deleteFromPrimitiveList', () => {
    const del = strategicMergePatch(pod(), {spec: {containers: [{name: 'side', $patch: 'delete'}]}}) as ReturnType<typeof pod>
    expect(del.spec.containers.map((c) => c.name)).toEqual(['app'])
    const rep = strategicMergePatch(pod(), {metadata: {labels: {$patch: 'replace', z: '9'}}}) as ReturnType<typeof pod>
    expect(rep.metadata.labels).toEqual({z: '9'})
    const order = strategicMergePatch(pod(), {spec: {'$setElementOrder/containers': [{name: 'side'}, {name: 'app'}]}}) as ReturnType<typeof pod>
    expect(order.spec.containers.map((c) => c.name)).toEqual(['side', 'app'])
    const prim = strategicMergePatch(pod(), {metadata: {'$deleteFromPrimitiveList/finalizers': ['x']}}) as ReturnType<typeof pod>
    expect(prim.metadata.finalizers).toEqual([])
    const env = strategicMergePatch(pod(), {spec: {containers: [{name: 'app', env: [{name: 'A', $patch: 'delete'}, {name: 'C', value: '3'}]}]}}) as ReturnType<typeof pod>
    expect(env.spec.containers[0].env).toEqual([{name: 'B', value: '2'}, {name: 'C', value: '3'}])
  })

  it('service ports merge by port', () => {
    const svc = {spec: {ports: [{port: 80, targetPort: 8080}, {port: 443}]}}
    expect(strategicMergePatch(svc, {spec: {ports: [{port: 80, targetPort: 9090}]}})).toEqual({spec: {ports: [{port: 80, targetPort: 9090}, {port: 443}]}})
  })
})

describe('managed fields encoding', () => {
  it('round-trips FieldsV1 with keyed list elements and renders paths', () => {
    const flat = flatten(pod() as never, {keyedLists: true, statusSubresource: true})
    const paths = [...flat.values()].map((l) => l.path)
    const f = toFieldsV1(paths)
    expect(f).toMatchObject({'f:spec': {'f:containers': {'k:{"name":"app"}': {'.': {}, 'f:image': {}}}}})
    expect(new Set(fromFieldsV1(f).map((p) => JSON.stringify(p)))).toEqual(new Set(paths.map((p) => JSON.stringify(p))))
    expect(renderPath(['f:spec', 'f:containers', 'k:{"name":"app"}', 'f:image'])).toBe('.spec.containers[name="app"].image')
  })
})
