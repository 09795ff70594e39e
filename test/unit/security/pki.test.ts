// Mesh CA, SPIFFE identities and certificate rotation. Certificates are checked with
// node:crypto's X509Certificate, independently of the library that made them.
import {X509Certificate, createPrivateKey, createPublicKey} from 'node:crypto'
import {mkdtemp, readFile, rm, stat, writeFile, unlink} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {loadOrCreateMeshCa, ROOT_CERT_FILE, ROOT_KEY_FILE, type MeshCa} from '../../../src/local/pki/ca.js'
import {parseSpiffeId, principalOf, spiffeIdFor, tryParseSpiffeId} from '../../../src/local/pki/spiffe.js'
import {CertRotator} from '../../../src/local/pki/rotator.js'
import type {WorkloadSecret} from '../../../src/local/dataplane/snapshot.js'

let base: string
let ca: MeshCa
beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'mesh-pki-'))
  ca = await loadOrCreateMeshCa(join(base, 'ca'))
})
afterAll(async () => {
  await rm(base, {recursive: true, force: true})
})

const codeOf = async (p: Promise<unknown>) => {
  try {
    await p
    return 'resolved'
  } catch (error) {
    return (error as {code?: string}).code
  }
}

describe('root CA', () => {
  it('creates an ECDSA P-256 root for 10 years with the expected names, key file 0600', async () => {
    expect(ca.created).toBe(true)
    const root = new X509Certificate(ca.rootCertPem)
    expect(root.subject).toContain('CN=mesh-local root')
    expect(root.subject).toContain('O=cluster.local')
    expect(root.ca).toBe(true)
    expect(root.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1')
    const years = (Date.parse(root.validTo) - Date.parse(root.validFrom)) / (365.25 * 24 * 3600 * 1000)
    expect(years).toBeGreaterThan(9.9)
    expect(years).toBeLessThan(10.1)
    const keyStat = await stat(join(ca.dir, ROOT_KEY_FILE))
    expect(keyStat.mode & 0o777).toBe(0o600)
    // the persisted key is the root's key
    const key = createPrivateKey(await readFile(join(ca.dir, ROOT_KEY_FILE), 'utf8'))
    expect(createPublicKey(key).export({format: 'der', type: 'spki'})).toEqual(root.publicKey.export({format: 'der', type: 'spki'}))
  })

  it('reloads the same root after a restart; earlier certificates still verify', async () => {
    const before = await ca.issueFor('foo', 'sleep')
    const again = await loadOrCreateMeshCa(ca.dir)
    expect(again.created).toBe(false)
    expect(again.rootCertPem).toBe(ca.rootCertPem)
    const leaf = new X509Certificate(before.certChainPem)
    expect(leaf.verify(new X509Certificate(again.rootCertPem).publicKey)).toBe(true)
    const after = await again.issueFor('foo', 'sleep')
    expect(new X509Certificate(after.certChainPem).checkIssued(new X509Certificate(ca.rootCertPem))).toBe(true)
  })

  it('two processes starting at once end up with one root', async () => {
    const dir = join(base, 'race')
    const [a, b] = await Promise.all([loadOrCreateMeshCa(dir), loadOrCreateMeshCa(dir)])
    expect(a.rootCertPem).toBe(b.rootCertPem)
    expect([a.created, b.created].filter(Boolean)).toHaveLength(1)
  })

  it('refuses a directory with only half of the pair', async () => {
    const dir = join(base, 'half')
    await loadOrCreateMeshCa(dir)
    await unlink(join(dir, ROOT_KEY_FILE))
    expect(await codeOf(loadOrCreateMeshCa(dir))).toBe('MESH_CA_INCOMPLETE')
  })

  it('refuses a key that does not belong to the certificate', async () => {
    const d1 = join(base, 'k1')
    const d2 = join(base, 'k2')
    await loadOrCreateMeshCa(d1)
    await loadOrCreateMeshCa(d2)
    await writeFile(join(d1, ROOT_KEY_FILE), await readFile(join(d2, ROOT_KEY_FILE)))
    expect(await codeOf(loadOrCreateMeshCa(d1))).toBe('MESH_CA_KEY_MISMATCH')
  })

  it('reports a corrupt certificate file', async () => {
    const dir = join(base, 'corrupt')
    await loadOrCreateMeshCa(dir)
    await writeFile(join(dir, ROOT_CERT_FILE), '-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n')
    expect(await codeOf(loadOrCreateMeshCa(dir))).toBe('MESH_CA_CORRUPT')
  })
})

describe('workload certificates', () => {
  it('carry the SPIFFE URI SAN, no DNS SAN, both EKUs, and chain to the root', async () => {
    const s = await ca.issueFor('mesh-lab', 'hello', {ttlSeconds: 600})
    expect(s.spiffeId).toBe('spiffe://cluster.local/ns/mesh-lab/sa/hello')
    const leaf = new X509Certificate(s.certChainPem)
    const root = new X509Certificate(s.rootCaPem)
    expect(leaf.subjectAltName).toBe('URI:spiffe://cluster.local/ns/mesh-lab/sa/hello')
    expect(leaf.subjectAltName).not.toContain('DNS:')
    expect(leaf.ca).toBe(false)
    expect(leaf.keyUsage).toEqual(expect.arrayContaining(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']))
    expect(leaf.checkIssued(root)).toBe(true)
    expect(leaf.verify(root.publicKey)).toBe(true)
    expect(leaf.checkPrivateKey(createPrivateKey(s.privateKeyPem))).toBe(true)
    const lifetime = Date.parse(leaf.validTo) - Date.now()
    expect(lifetime).toBeGreaterThan(500_000)
    expect(lifetime).toBeLessThanOrEqual(601_000)
    expect(Math.abs(Date.parse(s.notAfter) - Date.parse(leaf.validTo))).toBeLessThan(1000)
  })

  it('default lifetime is one hour', async () => {
    const s = await ca.issueWorkload(spiffeIdFor('foo', 'sleep'))
    const hours = (Date.parse(s.notAfter) - Date.now()) / 3_600_000
    expect(hours).toBeGreaterThan(0.99)
    expect(hours).toBeLessThanOrEqual(1)
  })

  it('a certificate from another CA does not verify against this root', async () => {
    const other = await loadOrCreateMeshCa(join(base, 'other-ca'))
    const s = await other.issueFor('foo', 'sleep')
    expect(new X509Certificate(s.certChainPem).verify(new X509Certificate(ca.rootCertPem).publicKey)).toBe(false)
  })

  it('refuses another trust domain, malformed identities and bad lifetimes', async () => {
    expect(await codeOf(ca.issueWorkload('spiffe://example.org/ns/foo/sa/sleep'))).toBe('MESH_SPIFFE_TRUST_DOMAIN')
    expect(await codeOf(ca.issueWorkload('spiffe://cluster.local/ns/foo'))).toBe('MESH_SPIFFE_ID_INVALID')
    expect(await codeOf(ca.issueFor('foo', 'sleep', {ttlSeconds: 0}))).toBe('MESH_CERT_TTL_INVALID')
    expect(await codeOf(ca.issueFor('foo', 'sleep', {ttlSeconds: 1.5}))).toBe('MESH_CERT_TTL_INVALID')
  })
})

describe('SPIFFE identities', () => {
  it('builds and parses Istio identities', () => {
    const id = spiffeIdFor('foo', 'sleep')
    expect(id).toBe('spiffe://cluster.local/ns/foo/sa/sleep')
    expect(parseSpiffeId(id)).toEqual({trustDomain: 'cluster.local', namespace: 'foo', serviceAccount: 'sleep'})
    expect(principalOf(id)).toBe('cluster.local/ns/foo/sa/sleep')
    expect(spiffeIdFor('a', 'b', 'example.org')).toBe('spiffe://example.org/ns/a/sa/b')
  })

  it.each([
    'cluster.local/ns/foo/sa/sleep',
    'spiffe://cluster.local/ns/foo/sa/',
    'spiffe://cluster.local/sa/sleep/ns/foo',
    'spiffe://cluster.local/ns/foo/sa/sleep/extra',
    'spiffe://Cluster.Local/ns/foo/sa/sleep',
    'spiffe://cluster.local/ns/Foo/sa/sleep',
    'https://cluster.local/ns/foo/sa/sleep',
  ])('rejects %s', (uri) => {
    expect(tryParseSpiffeId(uri)).toBeUndefined()
    expect(() => parseSpiffeId(uri)).toThrow(expect.objectContaining({code: 'MESH_SPIFFE_ID_INVALID'}))
  })

  it('refuses invalid names when building', () => {
    expect(() => spiffeIdFor('Foo', 'sleep')).toThrow(expect.objectContaining({code: 'MESH_SPIFFE_ID_INVALID', field: 'namespace'}))
    expect(() => spiffeIdFor('foo', 'a/b')).toThrow(expect.objectContaining({field: 'serviceAccount'}))
  })
})

describe('CertRotator', () => {
  const waitFor = async (cond: () => boolean, maxMs = 10_000) => {
    const until = Date.now() + maxMs
    while (!cond()) {
      if (Date.now() > until) throw new Error('condition not reached')
      await new Promise((r) => setTimeout(r, 20))
    }
  }

  it('renews before expiry, at half the lifetime by default, with a fresh certificate', async () => {
    const seen: WorkloadSecret[] = []
    const r = new CertRotator({issue: () => ca.issueFor('foo', 'sleep', {ttlSeconds: 2}), onRotate: (s) => seen.push(s)})
    const first = await r.start()
    const due = r.nextRotationAt!.getTime()
    // scheduled before expiry, half of the 2 s lifetime after issue (computed, not timed)
    expect(due).toBeLessThan(Date.parse(first.notAfter))
    expect(Math.abs(due - (Date.parse(first.notAfter) - 1000))).toBeLessThan(250)
    await waitFor(() => seen.length >= 2)
    r.stop()
    expect(seen[1].certChainPem).not.toBe(seen[0].certChainPem)
    expect(new X509Certificate(seen[1].certChainPem).serialNumber).not.toBe(new X509Certificate(seen[0].certChainPem).serialNumber)
    expect(r.current).toBe(seen[seen.length - 1])
    expect(Date.parse(seen[1].notAfter)).toBeGreaterThan(Date.parse(seen[0].notAfter))
  })

  it('uses a custom renewal callback and retries after a failed issue', async () => {
    let calls = 0
    const errors: unknown[] = []
    const r = new CertRotator({
      issue: async () => {
        calls++
        if (calls === 2) throw new Error('CA unreachable')
        return ca.issueFor('foo', 'sleep', {ttlSeconds: 3600})
      },
      renewAfterMs: () => 30,
      retryMs: 30,
      onError: (e) => errors.push(e),
    })
    await r.start()
    await waitFor(() => calls >= 3)
    r.stop()
    const stoppedAt = calls
    await new Promise((res) => setTimeout(res, 120))
    expect(calls).toBe(stoppedAt)
    expect(errors).toHaveLength(1)
    expect(r.current).toBeDefined()
  })

  it('rejects a renewal fraction outside (0, 1)', () => {
    expect(() => new CertRotator({issue: async () => ({}) as WorkloadSecret, renewFraction: 1})).toThrow(RangeError)
  })
})
