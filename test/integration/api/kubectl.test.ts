// The real kubectl against the embedded API server (in-process, temp store, own kubeconfig).
import {readdirSync, readFileSync} from 'node:fs'
import {join} from 'node:path'
import {loadAll} from 'js-yaml'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {isIstioObject, validateIstioObject} from '../../../src/mesh/index.js'
import type {KubeObject} from '../../../src/local/api/types.js'
import {startApi, type Harness} from './harness.js'

const ROOT = join(import.meta.dirname, '..', '..', '..')
const FIX = join(ROOT, 'test', 'fixtures', 'api')

let h: Harness
beforeAll(async () => {
  h = await startApi({validators: [(o: KubeObject) => (isIstioObject(o) ? validateIstioObject(o) : [])]})
})
afterAll(async () => {
  await h?.close()
})

async function ok(...args: string[]): Promise<string> {
  const r = await h.kubectl(args)
  if (r.exitCode !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.exitCode}): ${r.stderr}`)
  return r.stdout
}

describe('kubectl against the embedded API', () => {
  it('talks to it: version, namespaces, api-resources with short names', async () => {
    expect(await ok('version', '-o', 'json')).toContain('"gitVersion": "v1.32.3"')
    const ns = await ok('get', 'ns', '-o', 'name')
    expect(ns.split('\n')).toEqual(expect.arrayContaining(['namespace/default', 'namespace/kube-system', 'namespace/istio-system']))
    const res = await ok('api-resources', '--no-headers')
    for (const [name, short] of [['virtualservices', 'vs'], ['destinationrules', 'dr'], ['peerauthentications', 'pa'], ['deployments', 'deploy'], ['services', 'svc'], ['pods', 'po'], ['namespaces', 'ns']]) {
      expect(res).toMatch(new RegExp(`^${name}\\s+${short}\\b`, 'm'))
    }
  })

  it('applies the repo manifests and configs server-side and lists them', async () => {
    await ok('apply', '--server-side', '-f', join(ROOT, 'manifests', '00-namespace.yaml'))
    await ok('apply', '--server-side', '-f', join(ROOT, 'manifests'))
    await ok('apply', '--server-side', '-R', '-f', join(ROOT, 'configs'))
    const listed = await ok('get', 'vs,dr,pa,authorizationpolicies', '-A', '-o', 'name')
    const expected = new Set<string>()
    for (const f of ['traffic', 'mtls', 'security']) {
      for (const file of readdir(join(ROOT, 'configs', f))) {
        for (const o of loadAll(readFileSync(file, 'utf8')) as KubeObject[]) {
          if (o && ['VirtualService', 'DestinationRule', 'PeerAuthentication', 'AuthorizationPolicy'].includes(o.kind)) {
            expected.add(`${o.kind.toLowerCase()}.${o.apiVersion.split('/')[0]}/${o.metadata.name}`)
          }
        }
      }
    }
    expect(expected.size).toBeGreaterThan(0)
    for (const e of expected) expect(listed).toContain(e)
    const hello = (loadAll(readFileSync(join(ROOT, 'manifests', 'hello.yaml'), 'utf8')) as KubeObject[]).find((o) => o?.kind === 'Deployment')!
    const replicas = await ok('get', 'deploy', hello.metadata.name, '-n', hello.metadata.namespace!, '-o', 'jsonpath={.spec.replicas}')
    expect(Number(replicas)).toBe(hello.spec.replicas ?? 1)
    // a second apply of the same files changes nothing
    const rv = h.store.currentResourceVersion()
    await ok('apply', '--server-side', '-R', '-f', join(ROOT, 'configs', 'traffic', 'destination-rule.yaml'))
    expect(h.store.currentResourceVersion()).toBe(rv)
  })

  it('applies fixtures server-side; get, jsonpath, label, patch (merge/json/strategic), scale', async () => {
    expect(await ok('apply', '--server-side', '-f', join(FIX, 'app.yaml'))).toContain('virtualservice.networking.istio.io/web serverside-applied')
    expect(await ok('get', 'vs', 'web', '-n', 'demo', '-o', 'jsonpath={.spec.http[0].route[*].weight}')).toBe('90 10')
    const table = await ok('get', 'deploy', '-n', 'demo')
    expect(table).toMatch(/^NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE/)
    expect(table).toMatch(/^web\s+0\/2/m)

    await ok('label', 'vs', 'web', '-n', 'demo', 'team=blue')
    expect(await ok('get', 'vs', '-n', 'demo', '-l', 'team=blue', '-o', 'name')).toBe('virtualservice.networking.istio.io/web')
    expect(await ok('get', 'vs', '-n', 'demo', '-l', 'team!=blue', '-o', 'name')).toBe('')

    await ok('patch', 'vs', 'web', '-n', 'demo', '--type', 'merge', '-p', '{"spec":{"hosts":["web","web.demo"]}}')
    await ok('patch', 'vs', 'web', '-n', 'demo', '--type', 'json', '-p', '[{"op":"replace","path":"/spec/http/0/route/0/weight","value":50},{"op":"replace","path":"/spec/http/0/route/1/weight","value":50}]')
    expect(await ok('get', 'vs', 'web', '-n', 'demo', '-o', 'jsonpath={.spec.hosts} {.spec.http[0].route[*].weight}')).toBe('["web","web.demo"] 50 50')

    // strategic: the container list merges by name, so the image stays and env is added
    await ok('patch', 'deploy', 'web', '-n', 'demo', '-p', '{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"MODE","value":"blue"}]}]}}}}')
    const c = JSON.parse(await ok('get', 'deploy', 'web', '-n', 'demo', '-o', 'jsonpath={.spec.template.spec.containers[0]}'))
    expect(c.image).toBe('docker.io/istio/examples-helloworld-v1:1.0')
    expect(c.env).toEqual([{name: 'MODE', value: 'blue'}])
    // strategic merge is refused for Istio kinds, as on a real cluster
    const smp = await h.kubectl(['patch', 'vs', 'web', '-n', 'demo', '--type', 'strategic', '-p', '{"spec":{}}'])
    expect(smp.exitCode).not.toBe(0)

    await ok('scale', 'deploy', 'web', '-n', 'demo', '--replicas=3')
    expect(await ok('get', 'deploy', 'web', '-n', 'demo', '-o', 'jsonpath={.spec.replicas} {.metadata.generation}')).toBe('3 3')
  })

  it('client-side apply creates, then updates with a computed patch', async () => {
    const vs = (w1: number, w2: number) =>
      `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: csa\n  namespace: demo\nspec:\n  hosts: [web]\n  http:\n  - route:\n    - destination: {host: web, subset: v1}\n      weight: ${w1}\n    - destination: {host: web, subset: v2}\n      weight: ${w2}\n`
    expect((await h.kubectl(['apply', '-f', '-'], vs(90, 10))).stdout).toContain('created')
    const r = await h.kubectl(['apply', '-f', '-'], vs(20, 80))
    expect(r.stdout).toContain('configured')
    expect(await ok('get', 'vs', 'csa', '-n', 'demo', '-o', 'jsonpath={.spec.http[0].route[*].weight}')).toBe('20 80')
    // built-in kind: strategic merge patch from kubectl's own types
    const dep = readFileSync(join(FIX, 'app.yaml'), 'utf8').split('---')[1].replace('name: web\n  namespace', 'name: web-csa\n  namespace')
    expect((await h.kubectl(['apply', '-f', '-'], dep)).exitCode).toBe(0)
    expect((await h.kubectl(['apply', '-f', '-'], dep.replace('replicas: 2', 'replicas: 4'))).stdout).toContain('configured')
    expect(await ok('get', 'deploy', 'web-csa', '-n', 'demo', '-o', 'jsonpath={.spec.replicas}')).toBe('4')
  })

  it('refuses an invalid VirtualService with a 422 that names the field', async () => {
    for (const args of [['apply', '--server-side'], ['apply'], ['create']]) {
      const r = await h.kubectl([...args, '-f', join(FIX, 'invalid-virtualservice.yaml')])
      expect(r.exitCode).not.toBe(0)
      expect(r.stderr).toContain('is invalid')
      expect(r.stderr).toContain('spec.http[0].route[0].weight')
    }
    expect((await h.kubectl(['get', 'vs', 'broken', '-n', 'demo'])).stderr).toContain('NotFound')
  })

  it('server-side apply: a second manager conflicts unless it forces', async () => {
    const cm = (v: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\n  namespace: demo\ndata:\n  color: ${v}\n`
    expect((await h.kubectl(['apply', '--server-side', '--field-manager=alice', '-f', '-'], cm('red'))).exitCode).toBe(0)
    const clash = await h.kubectl(['apply', '--server-side', '--field-manager=bob', '-f', '-'], cm('blue'))
    expect(clash.exitCode).not.toBe(0)
    expect(clash.stderr).toContain('conflict with "alice"')
    expect(clash.stderr).toContain('.data.color')
    expect((await h.kubectl(['apply', '--server-side', '--field-manager=bob', '--force-conflicts', '-f', '-'], cm('blue'))).exitCode).toBe(0)
    expect(await ok('get', 'cm', 'owned', '-n', 'demo', '-o', 'jsonpath={.data.color}')).toBe('blue')
  })

  it('waits, deletes with -f, and cascades a namespace delete', async () => {
    await ok('wait', '--for=jsonpath={.spec.replicas}=3', 'deploy/web', '-n', 'demo', '--timeout=20s')
    expect(await ok('delete', '-f', join(FIX, 'app.yaml'), '--wait=true')).toContain('namespace "demo" deleted')
    for (const kind of ['deploy/web', 'vs/web', 'dr/web', 'svc/web', 'vs/csa', 'cm/owned']) {
      const r = await h.kubectl(['get', kind, '-n', 'demo'])
      expect(r.exitCode).not.toBe(0)
      expect(r.stderr).toContain('NotFound')
    }
    expect(await ok('get', 'ns', '-o', 'name')).not.toContain('namespace/demo')
  })
})

function readdir(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => join(dir, f))
}
