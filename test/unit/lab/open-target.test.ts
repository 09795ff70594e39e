import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {EmbeddedTarget} from '../../../src/cluster/target.js'
import {openLab} from '../../../src/lab/open-target.js'
import {asProxySyncStatus, RealTarget} from '../../../src/cluster/real-target.js'
import {shiftCanary} from '../../../src/lab/canary.js'
import {bar, splitBars, transition} from '../../../src/lab/render.js'
import {parseProxyStatus} from '../../../src/install/proxy-status.js'

const home = () => mkdtempSync(join(tmpdir(), 'mesh-open-'))

const KUBECONFIG = `apiVersion: v1
kind: Config
clusters:
- name: kind-mesh
  cluster: {server: 'https://127.0.0.1:9'}
users:
- name: kind-mesh
  user: {token: x}
contexts:
- name: kind-mesh
  context: {cluster: kind-mesh, user: kind-mesh}
current-context: kind-mesh
`

describe('openLab', () => {
  it('an embedded lab that is down is MESH_LAB_DOWN (69) saying to run mesh lab up', async () => {
    await expect(openLab({home: home(), env: {}})).rejects.toMatchObject({code: 'MESH_LAB_DOWN', exit: 69, suggestion: 'Run mesh lab up.'})
  })

  it('with requireUp false (dry runs) it opens the lab as down, and a dry run still renders', async () => {
    const lab = await openLab({home: home(), env: {}, requireUp: false})
    expect(lab.up).toBe(false)
    expect(lab.target).toBeInstanceOf(EmbeddedTarget)
    const r = await shiftCanary(lab, '90/10', {dryRun: true})
    expect(r.serverValidated).toBe(false)
    expect(r.yaml).toContain('weight: 90')
  })

  it('--context names a real cluster; an unknown context is MESH_CONTEXT_NOT_FOUND (65)', async () => {
    const h = home()
    const kc = join(h, 'config')
    writeFileSync(kc, KUBECONFIG)
    const lab = await openLab({home: h, context: 'kind-mesh', kubeconfig: kc, env: {}})
    expect(lab.target).toBeInstanceOf(RealTarget)
    expect(lab.descriptor).toMatchObject({kind: 'real', context: 'kind-mesh', source: 'flag'})
    expect(lab.target.client.context).toBe('kind-mesh')
    await lab.close()
    await expect(openLab({home: h, context: 'does-not-exist', kubeconfig: kc, env: {}})).rejects.toMatchObject({code: 'MESH_CONTEXT_NOT_FOUND', exit: 65})
  })
})

describe('real-cluster sync through istioctl proxy-status', () => {
  const table = [
    'NAME                                   CLUSTER     CDS        LDS        EDS        RDS        ECDS        ISTIOD           VERSION',
    'istio-ingressgateway-5d9.istio-system  Kubernetes  SYNCED     SYNCED     SYNCED     SYNCED     NOT SENT    istiod-7f-abc    1.28.1',
    'hello-v1-6d9.mesh-lab                  Kubernetes  SYNCED     STALE      SYNCED     SYNCED     NOT SENT    istiod-7f-abc    1.28.1',
    '',
  ].join('\n')

  it('maps rows to the embedded shape: STALE anywhere is STALE, gateways are recognised', () => {
    expect(parseProxyStatus(table).map(asProxySyncStatus)).toMatchObject([
      {proxy: 'istio-ingressgateway-5d9.istio-system', kind: 'gateway', sent: 0, acked: 0, state: 'SYNCED'},
      {proxy: 'hello-v1-6d9.mesh-lab', kind: 'sidecar', sent: 0, acked: 0, state: 'STALE'},
    ])
  })

  it('waitForSync polls the istioctl stand-in until every proxy is in sync', async () => {
    const h = home()
    const ps = join(h, 'ps.txt')
    writeFileSync(ps, table.replace('STALE ', 'SYNCED'))
    const kc = join(h, 'config')
    writeFileSync(kc, KUBECONFIG)
    const env = {...process.env, MESH_ISTIOCTL: join(import.meta.dirname, '..', '..', 'fixtures', 'istioctl', 'istioctl'), FAKE_ISTIOCTL_PROXY_STATUS: ps}
    const t = new RealTarget({context: 'kind-mesh', kubeconfigPath: kc, env, home: h})
    const r = await t.waitForSync({timeoutMs: 10_000})
    expect(r.synced).toBe(true)
    expect(r.proxies.map((p) => p.state)).toEqual(['SYNCED', 'SYNCED'])
  })
})

describe('render', () => {
  it('draws bars at 5-point resolution and old → new', () => {
    expect(bar(90)).toBe('█'.repeat(18) + '░'.repeat(2))
    expect(bar(0)).toBe('░'.repeat(20))
    expect(splitBars({v1: 50, v2: 50})).toEqual(['v1 ██████████░░░░░░░░░░  50%', 'v2 ██████████░░░░░░░░░░  50%'])
    expect(transition({v1: 100, v2: 0}, {v1: 90, v2: 10})).toBe('100/0 → 90/10')
    expect(transition({v1: 90, v2: 10}, {v1: 90, v2: 10})).toBe('90/10 (unchanged)')
  })
})
