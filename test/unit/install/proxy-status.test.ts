import {describe, expect, it} from 'vitest'
import {isRowSynced, parseProxyStatus, summarizeSync} from '../../../src/install/proxy-status.js'

// istioctl 1.2x prints through a tabwriter: columns start where their headers start
const withAges = [
  'NAME                                                  CLUSTER        CDS                LDS                EDS                RDS                ECDS        ISTIOD                     VERSION',
  'hello-v1-6d8c8b5d9f-4x2kq.hello                       Kubernetes     SYNCED (2m1s)      SYNCED (2m1s)      SYNCED (1m58s)     SYNCED (2m1s)      IGNORED     istiod-7b69c7f8d-9wq7m     1.28.1',
  'hello-v2-79d5fbdc8b-kq7zt.hello                       Kubernetes     SYNCED (2m1s)      SYNCED (2m1s)      STALE (3s)         STALE (3s)         IGNORED     istiod-7b69c7f8d-9wq7m     1.28.1',
  'istio-ingressgateway-5c8d9f6b7-ttw2c.istio-system     Kubernetes     SYNCED (2m5s)      SYNCED (2m5s)      SYNCED (2m5s)      NOT SENT           IGNORED     istiod-7b69c7f8d-9wq7m     1.28.1',
  '',
].join('\n')

const plain = [
  'Warning: 1 proxy is running an older version',
  'NAME                                          CLUSTER        CDS          LDS        EDS        RDS          ECDS         ISTIOD                      VERSION',
  'sleep-7656cf8794-8fhdk.default                Kubernetes     SYNCED       SYNCED     SYNCED     SYNCED       NOT SENT     istiod-5f8d8f4f79-lxq6s     1.27.3',
  'istio-egressgateway-58f5c.istio-system        Kubernetes     SYNCED       SYNCED     SYNCED     NOT SENT     NOT SENT     istiod-5f8d8f4f79-lxq6s     1.27.3',
].join('\n')

describe('parseProxyStatus', () => {
  it('reads every column, keeping multi-word cells and ages', () => {
    const rows = parseProxyStatus(withAges)
    expect(rows.map((r) => r.id)).toEqual([
      'hello-v1-6d8c8b5d9f-4x2kq.hello',
      'hello-v2-79d5fbdc8b-kq7zt.hello',
      'istio-ingressgateway-5c8d9f6b7-ttw2c.istio-system',
    ])
    const gw = rows[2]
    expect(gw.pod).toBe('istio-ingressgateway-5c8d9f6b7-ttw2c')
    expect(gw.namespace).toBe('istio-system')
    expect(gw.cluster).toBe('Kubernetes')
    expect(gw.xds.RDS).toEqual({state: 'NOT SENT', raw: 'NOT SENT'})
    expect(gw.xds.CDS).toEqual({state: 'SYNCED', raw: 'SYNCED (2m5s)', age: '2m5s'})
    expect(gw.xds.ECDS?.state).toBe('IGNORED')
    expect(gw.istiod).toBe('istiod-7b69c7f8d-9wq7m')
    expect(gw.version).toBe('1.28.1')
    expect(rows[1].xds.EDS).toEqual({state: 'STALE', raw: 'STALE (3s)', age: '3s'})
  })

  it('skips warning lines before the header and reads cells without ages', () => {
    const rows = parseProxyStatus(plain)
    expect(rows).toHaveLength(2)
    expect(rows[0].xds.ECDS?.state).toBe('NOT SENT')
    expect(rows[1].xds.RDS?.state).toBe('NOT SENT')
    expect(rows[1].version).toBe('1.27.3')
  })

  it('returns no rows for output without a table', () => {
    expect(parseProxyStatus('Error: no running Istio pods in "istio-system"\n')).toEqual([])
    expect(parseProxyStatus('NAME     CLUSTER     CDS     LDS     EDS     RDS     ECDS     ISTIOD     VERSION\n')).toEqual([])
  })
})

describe('sync summary', () => {
  it('counts a proxy with STALE types as pending and names the types', () => {
    const s = summarizeSync(parseProxyStatus(withAges))
    expect(s.total).toBe(3)
    expect(s.synced).toBe(2)
    expect(s.pending).toEqual([{id: 'hello-v2-79d5fbdc8b-kq7zt.hello', types: ['EDS', 'RDS']}])
    expect(s.allSynced).toBe(false)
  })

  it('treats NOT SENT and IGNORED as not blocking', () => {
    const rows = parseProxyStatus(plain)
    expect(rows.every(isRowSynced)).toBe(true)
    expect(summarizeSync(rows).allSynced).toBe(true)
  })

  it('is never in sync with no proxies listed', () => {
    expect(summarizeSync([]).allSynced).toBe(false)
  })

  it('treats an unreadable cell as not in sync', () => {
    const odd = 'NAME      CLUSTER     CDS        LDS\np.ns      K           SYNCED     ERROR\n'
    const rows = parseProxyStatus(odd)
    expect(rows[0].xds.LDS?.state).toBe('UNKNOWN')
    expect(summarizeSync(rows).pending).toEqual([{id: 'p.ns', types: ['LDS']}])
  })
})
