// One place that prepares @peculiar/x509: it needs reflect-metadata loaded before it and a
// WebCrypto provider set, or it fails at run time with confusing errors.
import 'reflect-metadata'
import {webcrypto} from 'node:crypto'
import * as x509 from '@peculiar/x509'

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

export {x509}
export const subtle = webcrypto.subtle
export type CryptoKey = webcrypto.CryptoKey
export type CryptoKeyPair = webcrypto.CryptoKeyPair

/** ECDSA P-256 with SHA-256: the algorithm of Istio's default workload certificates. */
export const EC_KEY_ALG = {name: 'ECDSA', namedCurve: 'P-256'} as const
export const EC_SIGN_ALG = {name: 'ECDSA', hash: 'SHA-256'} as const

/** URI SANs of a certificate (DER or PEM), read with the library rather than by string splitting. */
export function uriSans(cert: x509.X509Certificate): string[] {
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension)
  if (!san) return []
  return san.names.items.filter((n) => n.type === 'url').map((n) => n.value)
}

/** DNS SANs of a certificate. */
export function dnsSans(cert: x509.X509Certificate): string[] {
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension)
  if (!san) return []
  return san.names.items.filter((n) => n.type === 'dns').map((n) => n.value)
}

export function toPem(der: ArrayBuffer, label: 'PRIVATE KEY' | 'CERTIFICATE'): string {
  return x509.PemConverter.encode(der, label) + '\n'
}

export function randomSerialHex(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16))
  bytes[0] &= 0x7f // positive INTEGER
  if (bytes[0] === 0) bytes[0] = 0x01 // no leading zero octet
  return Buffer.from(bytes).toString('hex')
}
