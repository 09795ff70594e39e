import {describe, expect, it} from 'vitest'
import {canonicalRepository, effectiveArgv, EMULATED_IMAGES, findImage, parseCurlArgs, parseFortioServerArgs, parseGoDuration, parseImageRef, planPod, type AppPlan} from '../../../src/local/runtime/images.js'

const pod = (image: string, extra: {command?: string[]; args?: string[]; env?: Record<string, string>} = {}) => ({
  name: 'p-1', image, command: extra.command, args: extra.args ?? [], env: extra.env ?? {},
})

const okPlan = (image: string, extra: Parameters<typeof pod>[1] = {}): AppPlan => {
  const r = planPod(pod(image, extra))
  if (!r.ok) throw new Error(`expected a plan, got ${r.reason}: ${r.message}`)
  return r.plan
}

describe('image references', () => {
  it('ignores the Docker Hub host, tag and digest when matching', () => {
    for (const image of [
      'istio/examples-helloworld-v1',
      'istio/examples-helloworld-v1:1.0',
      'docker.io/istio/examples-helloworld-v1:1.0',
      'index.docker.io/istio/examples-helloworld-v1:latest',
      'docker.io/istio/examples-helloworld-v1@sha256:0123abcd',
    ]) expect(canonicalRepository(image), image).toBe('istio/examples-helloworld-v1')
    expect(findImage('docker.io/fortio/fortio:1.69.0')?.repositories).toContain('fortio/fortio')
    expect(findImage('curlimages/curl:8.11.1')?.repositories).toContain('curlimages/curl')
  })

  it('keeps other registries and registry ports apart from Docker Hub names', () => {
    expect(parseImageRef('localhost:5000/istio/examples-helloworld-v1:1.0')).toEqual({registry: 'localhost:5000', repository: 'istio/examples-helloworld-v1', tag: '1.0', digest: undefined})
    expect(findImage('quay.io/istio/examples-helloworld-v1:1.0')).toBeUndefined()
    expect(findImage('istio/examples-helloworld-v3')).toBeUndefined()
    // Istio's current samples pull the same image from registry.istio.io
    expect(findImage('registry.istio.io/release/examples-helloworld-v2:1.0')?.repositories[0]).toBe('istio/examples-helloworld-v2')
  })

  it('refuses an image it cannot emulate, naming it and listing the emulated ones', () => {
    const r = planPod(pod('docker.io/library/nginx:1.27'))
    expect(r.ok).toBe(false)
    if (r.ok) return
    expect(r.reason).toBe('ImageNotEmulated')
    expect(r.message).toContain('"docker.io/library/nginx:1.27"')
    for (const e of EMULATED_IMAGES) expect(r.message).toContain(e.repositories[0])
  })
})

describe('command and args', () => {
  it('follows Kubernetes: command replaces the entrypoint, args replace the CMD', () => {
    const img = {entrypoint: ['/usr/bin/fortio'], cmd: ['server']}
    expect(effectiveArgv(img, undefined, [])).toEqual(['/usr/bin/fortio', 'server'])
    expect(effectiveArgv(img, undefined, ['server', '-http-port', '5000'])).toEqual(['/usr/bin/fortio', 'server', '-http-port', '5000'])
    expect(effectiveArgv(img, ['fortio'], ['server'])).toEqual(['fortio', 'server'])
    expect(effectiveArgv(img, ['fortio', 'server'], [])).toEqual(['fortio', 'server'])
  })
})

describe('helloworld', () => {
  it('serves /hello on 5000 with its version and the pod name; the manifest env overrides both', () => {
    const plan = okPlan('istio/examples-helloworld-v2:1.0')
    expect(plan.listeners).toEqual([{name: 'http', port: 5000, behaviour: {kind: 'helloworld', version: 'v2', instance: 'p-1'}}])
    const custom = okPlan('istio/examples-helloworld-v1', {env: {SERVICE_VERSION: 'v1-canary', HOSTNAME: 'h'}})
    expect(custom.listeners[0].behaviour).toEqual({kind: 'helloworld', version: 'v1-canary', instance: 'h'})
  })

  it('listens where a gunicorn -b override says, and rejects commands it does not know', () => {
    expect(okPlan('istio/examples-helloworld-v1', {command: ['gunicorn', '-b', '[0.0.0.0]:8080', 'app:app']}).listeners.map((l) => l.port)).toEqual([8080])
    const r = planPod(pod('istio/examples-helloworld-v1', {command: ['java', '-jar', 'x.jar']}))
    expect(r.ok ? 'ok' : r.reason).toBe('CommandNotEmulated')
  })
})

describe('fortio', () => {
  it('parses the faulty-replica server command', () => {
    const a = parseFortioServerArgs(['server', '-http-port', '5000', '-echo-server-default-params=status=503'])
    expect(a).toMatchObject({httpPort: 5000, tcpPort: 8078, defaultParams: 'status=503', maxDelayMs: 1500})
    const plan = okPlan('fortio/fortio:latest', {args: ['server', '-http-port', '5000', '-echo-server-default-params=status=503']})
    expect(plan.listeners.map((l) => [l.name, l.port])).toEqual([['http', 5000], ['tcp-echo', 8078]])
    expect(plan.listeners[0].behaviour).toMatchObject({kind: 'fortio-echo', defaultParams: 'status=503'})
  })

  it('accepts --flag, -flag=value, host:port and the image defaults', () => {
    expect(parseFortioServerArgs(['server', '--http-port=0.0.0.0:9090', '-tcp-port', 'disabled', '-max-echo-delay', '3s'])).toMatchObject({httpPort: 9090, tcpPort: undefined, maxDelayMs: 3000})
    expect(okPlan('fortio/fortio').listeners.map((l) => l.port)).toEqual([8080, 8078])
  })

  it('names what it cannot emulate instead of ignoring it', () => {
    expect(parseFortioServerArgs(['load', '-qps', '10', 'http://x'])).toEqual({error: expect.stringContaining('"load"')})
    expect(parseFortioServerArgs(['server', '-https-insecure'])).toEqual({error: expect.stringContaining('-https-insecure')})
    expect(parseFortioServerArgs(['server', '-http-port', 'abc'])).toEqual({error: expect.stringContaining('"abc"')})
    const r = planPod(pod('fortio/fortio', {args: ['server', '-bogus', '1']}))
    expect(r.ok ? '' : r.message).toContain('-bogus')
  })

  it('reads Go durations', () => {
    expect(parseGoDuration('1.5s')).toBe(1500)
    expect(parseGoDuration('1m30s')).toBe(90_000)
    expect(parseGoDuration('250ms')).toBe(250)
    expect(parseGoDuration('5')).toBeUndefined()
  })
})

describe('curl client', () => {
  it('idles for sleep commands, as Istio samples run it', () => {
    expect(okPlan('curlimages/curl', {command: ['/bin/sleep', 'infinity']}).main).toEqual({kind: 'sleep', ms: null})
    expect(okPlan('curlimages/curl', {command: ['sleep', '3650d']}).main).toEqual({kind: 'sleep', ms: null})
    expect(okPlan('curlimages/curl', {command: ['sh', '-c', 'sleep 30']}).main).toEqual({kind: 'sleep', ms: 30_000})
    expect(okPlan('curlimages/curl', {args: ['sleep', '1h']}).main).toEqual({kind: 'sleep', ms: 3_600_000})
    expect(okPlan('curlimages/curl', {command: ['sleep', 'infinity']}).listeners).toEqual([])
  })

  it('runs curl through the entrypoint when args start with an option or a URL', () => {
    const main = okPlan('curlimages/curl', {args: ['-sS', '-o', '/dev/null', '-w', '%{http_code}', 'http://10.0.0.1:5000/hello']}).main
    expect(main).toMatchObject({kind: 'curl', request: {url: 'http://10.0.0.1:5000/hello', method: 'GET', silent: true, showError: true, printBody: false, writeOut: '%{http_code}'}})
    expect(okPlan('curlimages/curl', {args: ['helloworld:5000/hello']}).main).toMatchObject({kind: 'curl', request: {url: 'http://helloworld:5000/hello'}})
    // no args: the real image prints a hint and exits 2
    expect(okPlan('curlimages/curl').main).toMatchObject({kind: 'exit', code: 2})
  })

  it('parses the curl options labs use and reports the rest', () => {
    expect(parseCurlArgs(['-XPOST', '-H', 'end-user: jason', '-d', 'a=1', 'http://h/x'])).toMatchObject({method: 'POST', headers: [['end-user', 'jason']], body: 'a=1'})
    expect(parseCurlArgs(['-I', 'http://h/'])).toMatchObject({method: 'HEAD', headOnly: true})
    expect(parseCurlArgs(['--max-time', '2', 'http://h/'])).toMatchObject({maxTimeMs: 2000})
    expect(parseCurlArgs(['-L', 'http://h/'])).toEqual({error: expect.stringContaining('-L')})
    expect(parseCurlArgs(['-o', '/tmp/out', 'http://h/'])).toEqual({error: expect.stringContaining('/tmp/out')})
    expect(parseCurlArgs(['https://h/'])).toEqual({error: expect.stringContaining('https://h/')})
  })
})
