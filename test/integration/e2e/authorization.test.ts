// SC-9 (Istio's authorization walk) and independent TLS checks with OpenSSL, on a real
// embedded lab. Namespaces foo and bar each run a meshed curl client and a helloworld server;
// the lab's mesh-legacy curl pod is the caller without a sidecar.
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {loadOrCreateMeshCa} from '../../../src/local/pki/ca.js'
import {
  httpGet,
  legacyCurl,
  meshedCurl,
  meshedNamespace,
  opensslClient,
  opensslSan,
  startLab,
  stopLab,
  type Lab,
  type LabPod,
} from './helpers.js'

let lab: Lab
let tmp: string
const client = {} as Record<'foo' | 'bar', LabPod>
let helloFoo: LabPod
let legacy: LabPod
let helloV1: LabPod

const policy = (name: string, spec: string) => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ${name}, namespace: foo}
spec: ${spec}
`
const ALLOW_NOTHING = policy('allow-nothing', '{}')
const ALLOW_GET = policy('allow-get', `
  selector: {matchLabels: {app: hello}}
  action: ALLOW
  rules: [{to: [{operation: {methods: [GET]}}]}]`)
const ALLOW_FOO_CURL = policy('allow-foo-curl', `
  selector: {matchLabels: {app: hello}}
  action: ALLOW
  rules: [{from: [{source: {principals: [cluster.local/ns/foo/sa/curl]}}]}]`)

const applyAndSync = async (yaml: string) => lab.waitSynced(await lab.apply(yaml))
const removeAndSync = async (yaml: string) => lab.waitSynced(await lab.remove(yaml))
const said = (r: {code: number; body: string; exit: number; stderr: string}) => (r.code === 0 ? `000 exit ${r.exit}: ${r.stderr.trim()}` : `${r.code} ${r.body.trim()}`)

/** Writes a certificate and key for a SPIFFE identity, signed by the lab's own CA. */
async function labCert(name: string, namespace: string, sa: string): Promise<{cert: string; key: string}> {
  const ca = await loadOrCreateMeshCa(lab.meshCaDir)
  expect(ca.created).toBe(false) // the lab's CA, not a new one
  const s = await ca.issueFor(namespace, sa)
  const cert = join(tmp, `${name}.crt`)
  const key = join(tmp, `${name}.key`)
  writeFileSync(cert, s.certChainPem)
  writeFileSync(key, s.privateKeyPem, {mode: 0o600})
  return {cert, key}
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'mesh-e2e-certs-'))
  lab = await startLab({prefix: 'mesh-e2e-sc9-'})
  await lab.apply(meshedNamespace('foo') + '---\n' + meshedNamespace('bar'))
  ;[client.foo] = await lab.readyPods('foo', 'app=curl', 1)
  ;[client.bar] = await lab.readyPods('bar', 'app=curl', 1)
  ;[helloFoo] = await lab.readyPods('foo', 'app=hello', 1)
  ;[legacy] = await lab.readyPods('mesh-legacy', 'app=curl', 1)
  ;[helloV1] = await lab.readyPods('mesh-lab', 'app=hello,version=v1', 1)
  writeFileSync(join(tmp, 'root.pem'), (await loadOrCreateMeshCa(lab.meshCaDir)).rootCertPem)
  await lab.waitSynced(await lab.resourceVersion())
})

afterAll(async () => {
  await stopLab(lab)
  if (tmp) rmSync(tmp, {recursive: true, force: true})
})

describe('SC-9 authorization walk on the embedded cluster', () => {
  it('allow-nothing (spec: {}) denies every caller with 403 "RBAC: access denied"', async () => {
    expect(said(await meshedCurl(client.foo, 'hello.foo', 5000, '/hello'))).toMatch(/^200 Hello version: v1/)
    await applyAndSync(ALLOW_NOTHING)
    expect(said(await meshedCurl(client.foo, 'hello.foo', 5000, '/hello'))).toBe('403 RBAC: access denied')
    expect(said(await meshedCurl(client.bar, 'hello.foo', 5000, '/hello'))).toBe('403 RBAC: access denied')
    expect(said(await legacyCurl(legacy, helloFoo, 5000, '/hello'))).toBe('403 RBAC: access denied')
    // other namespaces are untouched
    expect((await meshedCurl(client.foo, 'hello.bar', 5000, '/hello')).code).toBe(200)
  })

  it('ALLOW methods [GET] on hello: GET 200, POST 403', async () => {
    await applyAndSync(ALLOW_GET)
    expect(said(await meshedCurl(client.foo, 'hello.foo', 5000, '/hello'))).toMatch(/^200 Hello version: v1/)
    expect(said(await meshedCurl(client.foo, 'hello.foo', 5000, '/hello', {method: 'POST'}))).toBe('403 RBAC: access denied')
    expect((await legacyCurl(legacy, helloFoo, 5000, '/hello')).code).toBe(200)
    expect(said(await legacyCurl(legacy, helloFoo, 5000, '/hello', {method: 'POST'}))).toBe('403 RBAC: access denied')
    await removeAndSync(ALLOW_GET)
  })

  it('ALLOW from principal cluster.local/ns/foo/sa/curl lets only that identity in', async () => {
    await applyAndSync(ALLOW_FOO_CURL)
    expect(said(await meshedCurl(client.foo, 'hello.foo', 5000, '/hello'))).toMatch(/^200 Hello version: v1/)
    expect(said(await meshedCurl(client.bar, 'hello.foo', 5000, '/hello'))).toBe('403 RBAC: access denied')
    // plaintext has no principal (AZ-6)
    expect(said(await legacyCurl(legacy, helloFoo, 5000, '/hello'))).toBe('403 RBAC: access denied')
  })

  it('a certificate is judged by the identity it carries: the right one passes, a wrong one gets 403, a self-made one is refused', async () => {
    const req = httpGet('hello.foo:5000', '/hello')
    const caFile = join(tmp, 'root.pem')
    const right = await labCert('foo-curl', 'foo', 'curl')
    const ok = await opensslClient({host: helloFoo.ip, port: 5000, certFile: right.cert, keyFile: right.key, caFile, httpRequest: req})
    expect(ok.httpStatus).toBe(200)
    expect(ok.stdout).toContain('Hello version: v1')

    const wrong = await labCert('bar-curl', 'bar', 'curl')
    const denied = await opensslClient({host: helloFoo.ip, port: 5000, certFile: wrong.cert, keyFile: wrong.key, caFile, httpRequest: req})
    expect(denied.httpStatus).toBe(403)
    expect(denied.stdout).toContain('RBAC: access denied')

    // hand-made with openssl: claims the allowed identity, but no mesh CA signed it
    const forged = {cert: join(tmp, 'forged.crt'), key: join(tmp, 'forged.key')}
    const made = await execa('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/O=forged',
      '-addext', 'subjectAltName=critical,URI:spiffe://cluster.local/ns/foo/sa/curl', '-keyout', forged.key, '-out', forged.cert], {reject: false})
    expect(made.exitCode, made.stderr).toBe(0)
    const refused = await opensslClient({host: helloFoo.ip, port: 5000, certFile: forged.cert, keyFile: forged.key, caFile, httpRequest: req})
    expect(refused.httpStatus).toBeUndefined()
    // Node's TLS server drops an untrusted client right after the handshake, without an alert:
    // s_client sees EOF, or a reset (errno 104) when its request was still unread at the close
    expect(refused.exit).not.toBe(0)
    expect(refused.stderr).toMatch(/unexpected eof|errno=104|alert (unknown ca|bad certificate|certificate unknown)/)
  })
})

describe('OpenSSL against a STRICT workload port of the lab (hello-v1 in mesh-lab)', () => {
  it('without a client certificate the handshake fails; with one from the lab CA it succeeds and the server shows its SPIFFE URI', async () => {
    const strict = await lab.mesh(['mtls', 'strict', '--json'])
    expect(strict.status, strict.stderr).toBe(0)
    await lab.waitSynced(await lab.resourceVersion())
    const caFile = join(tmp, 'root.pem')
    const req = httpGet('hello.mesh-lab:5000', '/hello')

    const anonymous = await opensslClient({host: helloV1.ip, port: 5000, caFile, httpRequest: req})
    expect(anonymous.exit).not.toBe(0)
    expect(anonymous.httpStatus).toBeUndefined()
    expect(anonymous.stderr).toMatch(/alert certificate required|handshake failure/)
    // TLS 1.2 shows the same refusal inside the handshake itself
    const anonymous12 = await opensslClient({host: helloV1.ip, port: 5000, caFile, httpRequest: req, extra: ['-tls1_2']})
    expect(anonymous12.exit).not.toBe(0)
    expect(anonymous12.httpStatus).toBeUndefined()
    expect(anonymous12.stderr).toMatch(/handshake failure|certificate required/)

    const mine = await labCert('lab-curl', 'mesh-lab', 'curl')
    const mtls = await opensslClient({host: helloV1.ip, port: 5000, certFile: mine.cert, keyFile: mine.key, caFile, httpRequest: req})
    expect(mtls.stdout).toContain('Verify return code: 0 (ok)')
    expect(mtls.httpStatus).toBe(200)
    expect(mtls.stdout).toContain(`Hello version: v1, instance: ${helloV1.name}`)
    expect(mtls.serverCertPem).toBeDefined()
    expect(await opensslSan(mtls.serverCertPem!)).toContain('URI:spiffe://cluster.local/ns/mesh-lab/sa/hello-v1')

    // and plaintext is reset, as curl shows it
    const plain = await legacyCurl(legacy, helloV1, 5000, '/hello')
    expect([plain.code, plain.exit]).toEqual([0, 56])
  })
})
