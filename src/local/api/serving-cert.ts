// The embedded API's TLS material: a private CA (kept across restarts, so kubeconfigs stay valid)
// and a serving certificate for 127.0.0.1 / localhost signed by it. ECDSA P-256.
import {existsSync, readFileSync, renameSync, writeFileSync, mkdirSync, chmodSync} from 'node:fs'
import {join} from 'node:path'
import {webcrypto} from 'node:crypto'
import {EC_KEY_ALG, EC_SIGN_ALG, randomSerialHex, toPem, x509} from '../pki/x509.js'

export interface ServingCa {
  /** PEM of the CA certificate (goes into the kubeconfig as certificate-authority-data) */
  caCert: string
  /** PEM of the serving certificate and its private key (for https.createServer) */
  cert: string
  key: string
  caCertPath: string
  certPath: string
  keyPath: string
}

export interface ServingCaOptions {
  /** extra SANs besides 127.0.0.1 and localhost */
  ips?: string[]
  dnsNames?: string[]
  /** days the serving certificate is valid (default 365); it is re-issued when under 30 days remain */
  servingDays?: number
}

const FILES = {caCert: 'ca.crt', caKey: 'ca.key', cert: 'apiserver.crt', key: 'apiserver.key'}
const DAY = 24 * 3600 * 1000

/** Loads the CA and serving certificate in `dir`, creating (or renewing) what is missing. */
export async function createServingCa(dir: string, opts: ServingCaOptions = {}): Promise<ServingCa> {
  mkdirSync(dir, {recursive: true, mode: 0o700})
  const p = (f: string) => join(dir, f)
  const ips = ['127.0.0.1', ...(opts.ips ?? [])]
  const dns = ['localhost', ...(opts.dnsNames ?? [])]

  let caCertPem: string
  let caKey: webcrypto.CryptoKey
  if (existsSync(p(FILES.caCert)) && existsSync(p(FILES.caKey))) {
    caCertPem = readFileSync(p(FILES.caCert), 'utf8')
    caKey = await importKey(readFileSync(p(FILES.caKey), 'utf8'))
  } else {
    const keys = (await webcrypto.subtle.generateKey(EC_KEY_ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair
    const now = Date.now()
    const ca = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerialHex(),
      name: 'CN=mesh-local-ca,O=mesh',
      notBefore: new Date(now - 3600 * 1000),
      notAfter: new Date(now + 3650 * DAY),
      keys,
      signingAlgorithm: EC_SIGN_ALG,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    })
    caCertPem = ca.toString('pem') + '\n'
    caKey = keys.privateKey
    writeSecret(p(FILES.caKey), toPem(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY'))
    writeAtomic(p(FILES.caCert), caCertPem, 0o644)
  }
  const caCert = new x509.X509Certificate(caCertPem)

  if (existsSync(p(FILES.cert)) && existsSync(p(FILES.key))) {
    const certPem = readFileSync(p(FILES.cert), 'utf8')
    const cert = new x509.X509Certificate(certPem)
    const san = cert.getExtension(x509.SubjectAlternativeNameExtension)
    const names = san ? san.names.items.map((n) => n.value) : []
    const fresh = cert.notAfter.getTime() - Date.now() > 30 * DAY
    const covers = [...ips, ...dns].every((n) => names.includes(n))
    const signed = cert.issuer === caCert.subject && (await cert.verify({publicKey: caCert.publicKey, signatureOnly: true}).catch(() => false))
    if (fresh && covers && signed) {
      return {caCert: caCertPem, cert: certPem, key: readFileSync(p(FILES.key), 'utf8'), caCertPath: p(FILES.caCert), certPath: p(FILES.cert), keyPath: p(FILES.key)}
    }
  }

  const keys = (await webcrypto.subtle.generateKey(EC_KEY_ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair
  const now = Date.now()
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: 'CN=meshd,O=mesh',
    issuer: caCert.subject,
    notBefore: new Date(now - 3600 * 1000),
    notAfter: new Date(now + (opts.servingDays ?? 365) * DAY),
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: EC_SIGN_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([...ips.map((v) => ({type: 'ip' as const, value: v})), ...dns.map((v) => ({type: 'dns' as const, value: v}))]),
      await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
    ],
  })
  const certPem = cert.toString('pem') + '\n'
  const keyPem = toPem(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY')
  writeSecret(p(FILES.key), keyPem)
  writeAtomic(p(FILES.cert), certPem, 0o644)
  return {caCert: caCertPem, cert: certPem, key: keyPem, caCertPath: p(FILES.caCert), certPath: p(FILES.cert), keyPath: p(FILES.key)}
}

async function importKey(pem: string): Promise<webcrypto.CryptoKey> {
  const der = x509.PemConverter.decodeFirst(pem)
  return webcrypto.subtle.importKey('pkcs8', der, EC_KEY_ALG, true, ['sign'])
}

function writeAtomic(path: string, data: string, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}`
  writeFileSync(tmp, data, {mode})
  chmodSync(tmp, mode)
  renameSync(tmp, path)
}

function writeSecret(path: string, data: string): void {
  writeAtomic(path, data, 0o600)
}
