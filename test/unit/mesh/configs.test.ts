// configs/ and manifests/ are real YAML for real clusters; here we prove they validate and
// that configs/ holds exactly what the builders generate (so `mesh` and the files never drift).
import {readdirSync, readFileSync} from 'node:fs'
import {join, relative} from 'node:path'
import {describe, expect, it} from 'vitest'
import {
  LAB,
  buildAccessLogTelemetry,
  buildAllowPolicy,
  buildCircuitBreakerDestinationRule,
  buildDenyAll,
  buildGateway,
  buildHelloDestinationRule,
  buildHelloVirtualServices,
  buildPeerAuthentication,
  isIstioObject,
  labBaseline,
  loadYamlObjects,
  parseWeights,
  validateIstioObject,
} from '../../../src/mesh/index.js'

type Obj = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

const root = join(import.meta.dirname, '..', '..', '..')
const yamlFiles = (dir: string): string[] =>
  readdirSync(join(root, dir), {recursive: true, withFileTypes: true})
    .filter((e) => e.isFile() && /\.ya?ml$/.test(e.name))
    .map((e) => relative(root, join(e.parentPath, e.name)))
    .sort()
const load = (file: string): Obj[] => loadYamlObjects(readFileSync(join(root, file), 'utf8'), file)

const EXPECTED: Record<string, () => unknown[]> = {
  'configs/traffic/gateway.yaml': () => [buildGateway()],
  'configs/traffic/destination-rule.yaml': () => [buildHelloDestinationRule()],
  'configs/traffic/destination-rule-circuit-breaker.yaml': () => [buildCircuitBreakerDestinationRule()],
  'configs/traffic/virtual-service-100-0.yaml': () => buildHelloVirtualServices(parseWeights('100/0')),
  'configs/traffic/virtual-service-90-10.yaml': () => buildHelloVirtualServices(parseWeights('90/10')),
  'configs/traffic/virtual-service-50-50.yaml': () => buildHelloVirtualServices(parseWeights('50/50')),
  'configs/traffic/virtual-service-0-100.yaml': () => buildHelloVirtualServices(parseWeights('0/100')),
  'configs/mtls/peer-authentication-permissive.yaml': () => [buildPeerAuthentication({mode: 'PERMISSIVE'})],
  'configs/mtls/peer-authentication-strict.yaml': () => [buildPeerAuthentication({mode: 'STRICT'})],
  'configs/mtls/mesh-strict.yaml': () => [buildPeerAuthentication({mode: 'STRICT', mesh: true})],
  'configs/security/deny-all.yaml': () => [buildDenyAll()],
  'configs/security/allow-get-hello.yaml': () => [buildAllowPolicy({methods: ['GET'], selector: {app: 'hello'}})],
  'configs/observability/access-logging.yaml': () => [buildAccessLogTelemetry()],
}

describe('configs/', () => {
  const files = yamlFiles('configs')

  it('has the layout traffic/, mtls/, security/, observability/ and every file is checked below', () => {
    expect(files).toEqual(Object.keys(EXPECTED).sort())
  })

  it.each(Object.keys(EXPECTED))('%s equals what the builders generate', (file) => {
    expect(load(file)).toEqual(EXPECTED[file]!())
  })

  it('every Istio object in configs/ validates, VirtualServices against the lab DestinationRule', () => {
    const dr = load('configs/traffic/destination-rule.yaml')
    let count = 0
    for (const file of files) {
      for (const o of load(file)) {
        expect(isIstioObject(o), `${file}: ${o.kind}`).toBe(true)
        expect(validateIstioObject(o, {destinationRules: dr}), `${file}: ${o.kind} ${o.metadata?.name}`).toEqual([])
        count++
      }
    }
    expect(count).toBeGreaterThanOrEqual(17)
  })

  it('the baseline is the 100/0 files plus gateway, destination rule and PERMISSIVE', () => {
    const fromFiles = ['configs/traffic/gateway.yaml', 'configs/traffic/destination-rule.yaml', 'configs/traffic/virtual-service-100-0.yaml', 'configs/mtls/peer-authentication-permissive.yaml'].flatMap(load)
    expect(labBaseline()).toEqual(fromFiles)
  })
})

describe('manifests/', () => {
  const files = yamlFiles('manifests')
  const all = files.flatMap((f) => load(f).map((o) => ({file: f, o})))
  const find = (kind: string, name: string, namespace: string = LAB.namespace): Obj => {
    const hit = all.find(({o}) => o.kind === kind && o.metadata?.name === name && (o.metadata?.namespace ?? namespace) === namespace)
    expect(hit, `${kind} ${namespace}/${name}`).toBeDefined()
    return hit!.o
  }

  it('holds the namespace, hello, the faulty replica and both clients', () => {
    expect(files).toEqual(['manifests/00-namespace.yaml', 'manifests/curl.yaml', 'manifests/hello-faulty.yaml', 'manifests/hello.yaml', 'manifests/legacy-client.yaml'])
  })

  it('every object is labelled as managed by mesh and part of the lab; any Istio object validates', () => {
    for (const {file, o} of all) {
      expect(o.metadata.labels, `${file}: ${o.kind} ${o.metadata.name}`).toMatchObject(LAB.labels)
      if (isIstioObject(o)) expect(validateIstioObject(o)).toEqual([])
    }
  })

  it('enables sidecar injection in mesh-lab and not in mesh-legacy', () => {
    expect(find('Namespace', LAB.namespace, '').metadata.labels['istio-injection']).toBe('enabled')
    expect(find('Namespace', LAB.legacyNamespace, '').metadata.labels['istio-injection']).toBeUndefined()
  })

  it('the hello Service matches the port and selector the Istio objects route to', () => {
    const svc = find('Service', LAB.service)
    expect(svc.spec.selector).toEqual({app: 'hello'})
    expect(svc.spec.ports).toEqual([{name: LAB.portName, port: LAB.port, targetPort: LAB.port}])
  })

  it('each hello Deployment is selected by exactly the DestinationRule subset of its version', () => {
    const dr = buildHelloDestinationRule()
    const subsetOf = (labels: Record<string, string>) =>
      dr.spec.subsets!.filter((s) => Object.entries(s.labels ?? {}).every(([k, v]) => labels[k] === v)).map((s) => s.name)
    const cases: Array<[string, string, string, string]> = [
      [LAB.deployments.v1, 'v1', LAB.images.v1, LAB.serviceAccounts.v1],
      [LAB.deployments.v2, 'v2', LAB.images.v2, LAB.serviceAccounts.v2],
      [LAB.deployments.faulty, 'v1', LAB.images.faulty, LAB.serviceAccounts.v1],
    ]
    for (const [name, version, image, sa] of cases) {
      const d = find('Deployment', name)
      const labels = d.spec.template.metadata.labels
      expect(labels).toMatchObject({app: 'hello', version})
      expect(subsetOf(labels)).toEqual([version])
      // the Deployment's own selector must pick its pods
      expect(labels).toMatchObject(d.spec.selector.matchLabels)
      const c = d.spec.template.spec.containers[0]
      expect(c.image).toBe(image)
      expect(c.ports).toContainEqual(expect.objectContaining({containerPort: LAB.port}))
      expect(d.spec.template.spec.serviceAccountName).toBe(sa)
      find('ServiceAccount', sa)
    }
  })

  it("hello-v1 and hello-v1-faulty have selectors that never pick each other's pods", () => {
    const v1 = find('Deployment', LAB.deployments.v1)
    const faulty = find('Deployment', LAB.deployments.faulty)
    const picks = (sel: Record<string, string>, labels: Record<string, string>) => Object.entries(sel).every(([k, v]) => labels[k] === v)
    expect(picks(v1.spec.selector.matchLabels, faulty.spec.template.metadata.labels)).toBe(false)
    expect(picks(faulty.spec.selector.matchLabels, v1.spec.template.metadata.labels)).toBe(false)
  })

  it('hello v1/v2 use an HTTP readiness probe on /health; the faulty replica a TCP probe, 0 replicas, and a 503 echo server', () => {
    for (const name of [LAB.deployments.v1, LAB.deployments.v2]) {
      expect(find('Deployment', name).spec.template.spec.containers[0].readinessProbe.httpGet).toEqual({path: '/health', port: LAB.port})
    }
    const faulty = find('Deployment', LAB.deployments.faulty)
    expect(faulty.metadata.labels).toMatchObject({app: 'hello', version: 'v1', 'mesh.lab/faulty': 'true'})
    expect(faulty.spec.replicas).toBe(0)
    const c = faulty.spec.template.spec.containers[0]
    expect(c.readinessProbe.tcpSocket).toEqual({port: LAB.port})
    expect(c.readinessProbe.httpGet).toBeUndefined()
    expect(c.args).toEqual(['server', '-http-port', '5000', '-echo-server-default-params=status=503'])
  })

  it('the curl clients sleep forever under ServiceAccount curl, one meshed and one legacy', () => {
    for (const ns of [LAB.namespace, LAB.legacyNamespace]) {
      const d = find('Deployment', 'curl', ns)
      expect(d.spec.template.spec.serviceAccountName).toBe('curl')
      expect(d.spec.template.spec.containers[0]).toMatchObject({image: LAB.images.client, command: ['sleep', 'infinity']})
      find('ServiceAccount', 'curl', ns)
    }
  })
})
