// meshd's certificate authority (the part of istiod that signs workload certificates).
// The root is created once per cluster and kept as PEM in the cluster's state directory, so
// certificates issued before a restart stay valid after it.
import {mkdir, readFile, writeFile, rename, chmod, stat} from 'node:fs/promises'
import {join} from 'node:path'
import lockfile from 'proper-lockfile'
import {MeshError, EXIT, invalid} from '../../lib/errors.js'
import type {WorkloadSecret} from '../dataplane/snapshot.js'
import {DEFAULT_TRUST_DOMAIN, parseSpiffeId, spiffeIdFor} from './spiffe.js'
import {EC_KEY_ALG, EC_SIGN_ALG, randomSerialHex, subtle, toPem, x509} from './x509.js'
import type {CryptoKey, CryptoKeyPair} from './x509.js'

export const ROOT_CERT_FILE = 'root-cert.pem'
export const ROOT_KEY_FILE = 'root-key.pem'
export const ROOT_COMMON_NAME = 'mesh-local root'
export const ROOT_VALIDITY_YEARS = 10
export const DEFAULT_WORKLOAD_TTL_SECONDS = 3600
/** Istio caps workload certificates at 90 days; so do we. */
export const MAX_WORKLOAD_TTL_SECONDS = 90 * 24 * 3600
/** notBefore is set this far in the past so small clock differences between processes don't matter. */
const BACKDATE_MS = 60_000

export interface IssueOptions {
  ttlSeconds?: number
}

export interface MeshCa {
  readonly dir: string
  readonly trustDomain: string
  readonly rootCertPem: string
  readonly rootCert: x509.X509Certificate
  /** true when this call created the root, false when it was loaded from dir */
  readonly created: boolean
  /** Signs a short-lived leaf for a SPIFFE identity (URI SAN only, serverAuth + clientAuth). */
  issueWorkload(spiffeId: string, opts?: IssueOptions): Promise<WorkloadSecret>
  /** issueWorkload(spiffeIdFor(namespace, serviceAccount, trustDomain)) */
  issueFor(namespace: string, serviceAccount: string, opts?: IssueOptions): Promise<WorkloadSecret>
}

export interface LoadCaOptions {
  trustDomain?: string
}

const caError = (code: string, message: string, suggestion: string, cause?: unknown) =>
  new MeshError(code, message, {suggestion, exit: EXIT.internal, cause})

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p)
    return true
  } catch {
    return false
  }
}

async function writeAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`
  await writeFile(tmp, data, {mode})
  await chmod(tmp, mode) // umask may have narrowed or widened the create mode
  await rename(tmp, path)
}

async function createRoot(trustDomain: string): Promise<{certPem: string; keyPem: string}> {
  const keys = (await subtle.generateKey(EC_KEY_ALG, true, ['sign', 'verify'])) as CryptoKeyPair
  const now = Date.now()
  const notAfter = new Date(now)
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + ROOT_VALIDITY_YEARS)
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialHex(),
    name: [{CN: [ROOT_COMMON_NAME]}, {O: [trustDomain]}],
    notBefore: new Date(now - BACKDATE_MS),
    notAfter,
    keys,
    signingAlgorithm: EC_SIGN_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  })
  const pkcs8 = await subtle.exportKey('pkcs8', keys.privateKey)
  return {certPem: cert.toString('pem') + '\n', keyPem: toPem(pkcs8, 'PRIVATE KEY')}
}

async function loadRoot(certPem: string, keyPem: string, dir: string) {
  let rootCert: x509.X509Certificate
  let privateKey: CryptoKey
  try {
    rootCert = new x509.X509Certificate(certPem)
    const der = x509.PemConverter.decodeFirst(keyPem)
    privateKey = await subtle.importKey('pkcs8', der, EC_KEY_ALG, false, ['sign'])
  } catch (error) {
    throw caError(
      'MESH_CA_CORRUPT',
      `the mesh CA in ${dir} cannot be read: ${(error as Error).message}`,
      `restore ${ROOT_CERT_FILE}/${ROOT_KEY_FILE}, or remove ${dir} to create a new CA (existing workload certificates stop being trusted)`,
      error,
    )
  }
  // The key must belong to the certificate, or every certificate we sign would fail to verify.
  const probe = new TextEncoder().encode('mesh-ca-key-check')
  const sig = await subtle.sign(EC_SIGN_ALG, privateKey, probe)
  const pub = await rootCert.publicKey.export()
  if (!(await subtle.verify(EC_SIGN_ALG, pub, sig, probe))) {
    throw caError(
      'MESH_CA_KEY_MISMATCH',
      `${ROOT_KEY_FILE} in ${dir} is not the key of ${ROOT_CERT_FILE}`,
      `restore the matching pair, or remove ${dir} to create a new CA`,
    )
  }
  return {rootCert, privateKey}
}

/**
 * Loads the mesh root CA from dir, creating it (ECDSA P-256, 10 years, CN "mesh-local root",
 * O <trust domain>) when dir holds none. The key file is written with mode 0600.
 */
export async function loadOrCreateMeshCa(dir: string, opts: LoadCaOptions = {}): Promise<MeshCa> {
  const trustDomain = opts.trustDomain ?? DEFAULT_TRUST_DOMAIN
  await mkdir(dir, {recursive: true, mode: 0o700})
  const certPath = join(dir, ROOT_CERT_FILE)
  const keyPath = join(dir, ROOT_KEY_FILE)

  // Two processes starting at once must not each write half of a pair.
  const release = await lockfile.lock(dir, {
    lockfilePath: join(dir, '.ca.lock'),
    retries: {retries: 40, minTimeout: 25, maxTimeout: 250},
    stale: 10_000,
  })
  let certPem: string
  let keyPem: string
  let created = false
  try {
    const [hasCert, hasKey] = await Promise.all([exists(certPath), exists(keyPath)])
    if (hasCert !== hasKey) {
      throw caError(
        'MESH_CA_INCOMPLETE',
        `${dir} has ${hasCert ? ROOT_CERT_FILE : ROOT_KEY_FILE} but not ${hasCert ? ROOT_KEY_FILE : ROOT_CERT_FILE}`,
        `restore the missing file, or remove ${dir} to create a new CA`,
      )
    }
    if (hasCert) {
      ;[certPem, keyPem] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')])
    } else {
      ;({certPem, keyPem} = await createRoot(trustDomain))
      await writeAtomic(keyPath, keyPem, 0o600)
      await writeAtomic(certPath, certPem, 0o644)
      created = true
    }
  } finally {
    await release()
  }

  const {rootCert, privateKey} = await loadRoot(certPem, keyPem, dir)
  const rootSki = rootCert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId

  const issueWorkload = async (spiffeId: string, issueOpts: IssueOptions = {}): Promise<WorkloadSecret> => {
    const id = parseSpiffeId(spiffeId)
    if (id.trustDomain !== trustDomain) {
      throw invalid(
        'MESH_SPIFFE_TRUST_DOMAIN',
        `identity ${spiffeId} is in trust domain "${id.trustDomain}", this CA signs for "${trustDomain}"`,
        `use spiffe://${trustDomain}/ns/<namespace>/sa/<service-account>`,
        'spiffeId',
      )
    }
    const ttl = issueOpts.ttlSeconds ?? DEFAULT_WORKLOAD_TTL_SECONDS
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_WORKLOAD_TTL_SECONDS) {
      throw invalid(
        'MESH_CERT_TTL_INVALID',
        `ttlSeconds ${ttl} is out of range 1..${MAX_WORKLOAD_TTL_SECONDS}`,
        'use a whole number of seconds, e.g. 3600',
        'ttlSeconds',
      )
    }
    const now = Date.now()
    const notAfter = new Date(now + ttl * 1000)
    const leafKeys = (await subtle.generateKey(EC_KEY_ALG, true, ['sign', 'verify'])) as CryptoKeyPair
    const extensions: x509.Extension[] = [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      // Empty subject, so the SAN is critical (RFC 5280 4.2.1.6), as in Istio's workload certs.
      new x509.SubjectAlternativeNameExtension([{type: 'url', value: spiffeId}], true),
    ]
    if (rootSki) extensions.push(new x509.AuthorityKeyIdentifierExtension(rootSki))
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerialHex(),
      subject: '',
      issuer: rootCert.subjectName,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter,
      publicKey: leafKeys.publicKey,
      signingKey: privateKey,
      signingAlgorithm: EC_SIGN_ALG,
      extensions,
    })
    const pkcs8 = await subtle.exportKey('pkcs8', leafKeys.privateKey)
    return {
      certChainPem: leaf.toString('pem') + '\n',
      privateKeyPem: toPem(pkcs8, 'PRIVATE KEY'),
      rootCaPem: certPem,
      spiffeId,
      notAfter: notAfter.toISOString(),
    }
  }

  return {
    dir,
    trustDomain,
    rootCertPem: certPem,
    rootCert,
    created,
    issueWorkload,
    issueFor: (namespace, serviceAccount, issueOpts) =>
      issueWorkload(spiffeIdFor(namespace, serviceAccount, trustDomain), issueOpts),
  }
}
