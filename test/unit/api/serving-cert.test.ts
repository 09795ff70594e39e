import {mkdtempSync, rmSync, statSync, unlinkSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {X509Certificate} from 'node:crypto'
import {afterAll, describe, expect, it} from 'vitest'
import {createServingCa} from '../../../src/local/api/serving-cert.js'

const dir = mkdtempSync(join(tmpdir(), 'mesh-pki-'))
afterAll(() => rmSync(dir, {recursive: true, force: true}))

describe('createServingCa', () => {
  it('creates a CA and a serving certificate for 127.0.0.1 and localhost, keys private', async () => {
    const a = await createServingCa(dir)
    const cert = new X509Certificate(a.cert)
    const ca = new X509Certificate(a.caCert)
    expect(cert.subjectAltName).toContain('IP Address:127.0.0.1')
    expect(cert.subjectAltName).toContain('DNS:localhost')
    expect(cert.checkIssued(ca)).toBe(true)
    expect(cert.verify(ca.publicKey)).toBe(true)
    expect(ca.ca).toBe(true)
    expect(cert.ca).toBe(false)
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1')
    expect(statSync(a.keyPath).mode & 0o777).toBe(0o600)
    expect(statSync(join(dir, 'ca.key')).mode & 0o777).toBe(0o600)
  })

  it('reuses what is on disk, and re-issues a serving certificate under the same CA when it is missing', async () => {
    const a = await createServingCa(dir)
    const b = await createServingCa(dir)
    expect(b.cert).toBe(a.cert)
    unlinkSync(b.certPath)
    const c = await createServingCa(dir, {ips: ['127.0.0.9']})
    expect(c.caCert).toBe(a.caCert)
    expect(c.cert).not.toBe(a.cert)
    expect(new X509Certificate(c.cert).subjectAltName).toContain('IP Address:127.0.0.9')
    // a certificate lacking a requested SAN is replaced too
    const d = await createServingCa(dir, {dnsNames: ['meshd.local']})
    expect(new X509Certificate(d.cert).subjectAltName).toContain('DNS:meshd.local')
  })
})
