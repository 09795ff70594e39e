import {describe, expect, it} from 'vitest'
import {
  DEFAULT_ISTIO_RELEASE_URL,
  DEFAULT_ISTIO_VERSION,
  istioctlArtifact,
  istioctlCachePath,
  istioctlPlatform,
  parseIstioctlClientVersion,
  parseSha256File,
  validateIstioVersion,
  validateProfile,
} from '../../../src/install/istioctl.js'
import {MeshError} from '../../../src/lib/errors.js'

const err = (f: () => unknown): MeshError => {
  try {
    f()
  } catch (e) {
    return e as MeshError
  }
  throw new Error('expected a MeshError')
}

describe('istioctl release artifacts', () => {
  it.each([
    ['linux', 'x64', 'linux', 'amd64'],
    ['linux', 'arm64', 'linux', 'arm64'],
    ['darwin', 'x64', 'osx', 'amd64'],
    ['darwin', 'arm64', 'osx', 'arm64'],
    ['win32', 'x64', 'win', 'amd64'],
    ['win32', 'arm64', 'win', 'arm64'],
  ] as const)('maps %s/%s to Istio names %s-%s', (platform, arch, os, a) => {
    expect(istioctlPlatform(platform, arch)).toEqual({os, arch: a})
  })

  it.each([
    ['freebsd', 'x64'],
    ['linux', 'ia32'],
    ['linux', 's390x'],
  ] as const)('has no build for %s/%s (MESH_ISTIOCTL_PLATFORM, exit 69)', (platform, arch) => {
    const e = err(() => istioctlPlatform(platform, arch))
    expect(e.code).toBe('MESH_ISTIOCTL_PLATFORM')
    expect(e.exit).toBe(69)
    expect(e.suggestion).toContain('MESH_ISTIOCTL')
  })

  it('names the archive and checksum URL like Istio publishes them', () => {
    const a = istioctlArtifact('1.28.1', {platform: 'linux', arch: 'x64'})
    expect(a.name).toBe('istioctl-1.28.1-linux-amd64.tar.gz')
    expect(a.url).toBe(`${DEFAULT_ISTIO_RELEASE_URL}/1.28.1/istioctl-1.28.1-linux-amd64.tar.gz`)
    expect(a.binary).toBe('istioctl')
    const mac = istioctlArtifact('1.29.0', {platform: 'darwin', arch: 'arm64', baseUrl: 'http://127.0.0.1:9/rel/'})
    expect(mac.url).toBe('http://127.0.0.1:9/rel/1.29.0/istioctl-1.29.0-osx-arm64.tar.gz')
  })

  it('pins 1.28.1 by default and keeps the cache per version', () => {
    expect(DEFAULT_ISTIO_VERSION).toBe('1.28.1')
    expect(istioctlCachePath('/h', '1.28.1', 'linux')).toBe('/h/cache/istioctl/1.28.1/istioctl')
  })

  it.each(['latest', '1.28', '../1.28.1', '1.28.1/../../x', ''])('rejects version %j before it reaches a URL or path', (v) => {
    const e = err(() => validateIstioVersion(v))
    expect(e.code).toBe('MESH_ISTIO_VERSION_INVALID')
    expect(e.exit).toBe(65)
  })

  it('accepts release and pre-release versions', () => {
    expect(validateIstioVersion('1.28.1')).toBe('1.28.1')
    expect(validateIstioVersion('1.29.0-beta.1')).toBe('1.29.0-beta.1')
  })

  it('rejects unknown profiles with the allowed list', () => {
    const e = err(() => validateProfile('ambient-ish'))
    expect(e.code).toBe('MESH_ISTIO_PROFILE_INVALID')
    expect(e.message).toContain('demo, default, minimal')
    expect(validateProfile('minimal')).toBe('minimal')
  })
})

describe('checksum files', () => {
  const hex = 'ab'.repeat(32)
  it('reads "<hex>  <filename>"', () => {
    expect(parseSha256File(`${hex}  istioctl-1.28.1-linux-amd64.tar.gz\n`, 'istioctl-1.28.1-linux-amd64.tar.gz', 'u')).toBe(hex)
    expect(parseSha256File(`${hex.toUpperCase()}\n`, 'x.tar.gz', 'u')).toBe(hex)
  })

  it('refuses a checksum for another file or garbage', () => {
    expect(err(() => parseSha256File(`${hex}  istioctl-1.28.1-osx.tar.gz`, 'istioctl-1.28.1-linux-amd64.tar.gz', 'u')).code).toBe('MESH_ISTIOCTL_CHECKSUM')
    expect(err(() => parseSha256File('<html>Not Found</html>', 'a.tar.gz', 'u')).code).toBe('MESH_ISTIOCTL_CHECKSUM')
  })
})

describe('istioctl version output', () => {
  it.each([
    ['client version: 1.28.1\n', '1.28.1'],
    ['1.20.3\n', '1.20.3'],
    ['client version: 1.29.0-beta.1\ncontrol plane version: 1.28.1\n', '1.29.0-beta.1'],
    ['Error: unknown flag', undefined],
  ])('%j → %s', (text, v) => {
    expect(parseIstioctlClientVersion(text)).toBe(v)
  })
})
