// `lab status` names the Istio minor the embedded cluster follows from its proxy image, so that
// lab.ts need not load the istioctl module: the two pins must move together.
import {describe, expect, it} from 'vitest'
import {EMBEDDED_ISTIO} from '../../../src/cluster/lab.js'
import {DEFAULT_ISTIO_VERSION} from '../../../src/install/istioctl.js'
import {PROXY_IMAGE} from '../../../src/local/controllers/kubelet.js'

const minor = (v: string) => v.split('.').slice(0, 2).join('.')

describe('the embedded cluster\'s Istio version', () => {
  it('is the minor of the pinned istioctl release, and of the proxy image its pods get', () => {
    expect(minor(PROXY_IMAGE.slice(PROXY_IMAGE.lastIndexOf(':') + 1))).toBe(minor(DEFAULT_ISTIO_VERSION))
    expect(EMBEDDED_ISTIO).toBe(`embedded (Istio ${minor(DEFAULT_ISTIO_VERSION)} semantics)`)
  })
})
