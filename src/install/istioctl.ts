// istioctl for real clusters: find it (MESH_ISTIOCTL, PATH, mesh's cache) or download the pinned
// release for this OS/arch, verify the published SHA-256 before unpacking, and run it.
import {createHash, randomBytes} from 'node:crypto'
import {accessSync, chmodSync, constants, createWriteStream, mkdirSync, renameSync, rmSync, statSync} from 'node:fs'
import {delimiter, join} from 'node:path'
import {Readable, Transform} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import type {ReadableStream as WebReadableStream} from 'node:stream/web'
import {execa} from 'execa'
import {extract, type ReadEntry} from 'tar'
import {EXIT, MeshError, invalid, unavailable} from '../lib/errors.js'
import {meshHome} from '../cluster/select.js'
import type {KubeConfig} from '@kubernetes/client-node'
import {childKubeconfig, kubeConfigFor, kubeconfigSource} from '../cluster/kubeconfig.js'
import {deleteInstallRecord, readInstallRecord, type InstallRecord} from './record.js'

export const DEFAULT_ISTIO_VERSION = '1.28.1'
export const DEFAULT_ISTIO_RELEASE_URL = 'https://github.com/istio/istio/releases/download'
export const ISTIO_PROFILES = ['demo', 'default', 'minimal'] as const
export type IstioProfile = (typeof ISTIO_PROFILES)[number]

export interface MeshWarning {
  code: string
  message: string
}

export type IstioOs = 'linux' | 'osx' | 'win'
export type IstioArch = 'amd64' | 'arm64'

export interface IstioctlArtifact {
  os: IstioOs
  arch: IstioArch
  /** e.g. istioctl-1.28.1-linux-amd64.tar.gz */
  name: string
  /** full URL of the archive; the checksum is `${url}.sha256` */
  url: string
  /** the executable inside the archive */
  binary: string
  format: 'tar.gz' | 'zip'
}

export interface IstioctlLocation {
  path: string
  source: 'env' | 'path' | 'cache' | 'download'
  /** known when it came from mesh's cache or a download */
  version?: string
}

export interface IstioctlLookup {
  version?: string
  home?: string
  env?: NodeJS.ProcessEnv
  platform?: NodeJS.Platform
  arch?: string
}

export interface DownloadOptions extends IstioctlLookup {
  /** release base URL; default MESH_ISTIO_RELEASE_URL or GitHub releases */
  baseUrl?: string
  signal?: AbortSignal
  /** whole download; default 5 minutes */
  timeoutMs?: number
}

/** Check a version string before it goes into a URL or a path. MESH_ISTIO_VERSION_INVALID (65). */
export function validateIstioVersion(version: string): string {
  if (!/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(version)) {
    throw invalid('MESH_ISTIO_VERSION_INVALID', `--istio-version "${version}" is not an Istio release version such as ${DEFAULT_ISTIO_VERSION}`, `Pass a release version, e.g. --istio-version ${DEFAULT_ISTIO_VERSION}.`, 'istio-version')
  }
  return version
}

export function validateProfile(profile: string): IstioProfile {
  if (!(ISTIO_PROFILES as readonly string[]).includes(profile)) {
    throw invalid('MESH_ISTIO_PROFILE_INVALID', `--profile "${profile}" is not one of ${ISTIO_PROFILES.join(', ')}`, 'Use --profile demo (the lab default), default or minimal.', 'profile')
  }
  return profile as IstioProfile
}

/** Istio's names for this OS and CPU. MESH_ISTIOCTL_PLATFORM (69) when there is no build. */
export function istioctlPlatform(platform: NodeJS.Platform = process.platform, arch: string = process.arch): {os: IstioOs; arch: IstioArch} {
  const os = ({linux: 'linux', darwin: 'osx', win32: 'win'} as Partial<Record<NodeJS.Platform, IstioOs>>)[platform]
  const a = ({x64: 'amd64', arm64: 'arm64'} as Record<string, IstioArch>)[arch]
  if (!os || !a) {
    throw unavailable('MESH_ISTIOCTL_PLATFORM', `Istio publishes no istioctl build for ${platform}/${arch}`, 'Install istioctl yourself and put it on PATH or set MESH_ISTIOCTL to its path.')
  }
  return {os, arch: a}
}

export function istioctlArtifact(version: string, opts: {platform?: NodeJS.Platform; arch?: string; baseUrl?: string} = {}): IstioctlArtifact {
  validateIstioVersion(version)
  const {os, arch} = istioctlPlatform(opts.platform, opts.arch)
  // Windows builds are published as zip archives
  const format = os === 'win' ? 'zip' : 'tar.gz'
  const name = `istioctl-${version}-${os}-${arch}.${format}`
  const base = (opts.baseUrl ?? DEFAULT_ISTIO_RELEASE_URL).replace(/\/+$/, '')
  return {os, arch, name, url: `${base}/${version}/${name}`, binary: os === 'win' ? 'istioctl.exe' : 'istioctl', format}
}

const cacheRoot = (home: string) => join(home, 'cache', 'istioctl')

/** `<home>/cache/istioctl/<version>/istioctl` */
export function istioctlCachePath(home: string, version: string, platform: NodeJS.Platform = process.platform): string {
  return join(cacheRoot(home), validateIstioVersion(version), platform === 'win32' ? 'istioctl.exe' : 'istioctl')
}

function isExecutable(p: string): boolean {
  try {
    if (!statSync(p).isFile()) return false
    accessSync(p, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** Look for istioctl without downloading: MESH_ISTIOCTL, then PATH, then the cache. */
export function findIstioctl(opts: IstioctlLookup = {}): IstioctlLocation | undefined {
  const env = opts.env ?? process.env
  const platform = opts.platform ?? process.platform
  if (env.MESH_ISTIOCTL) {
    if (!isExecutable(env.MESH_ISTIOCTL)) {
      throw invalid('MESH_ISTIOCTL_NOT_FOUND', `MESH_ISTIOCTL=${env.MESH_ISTIOCTL} is not an executable file`, 'Point MESH_ISTIOCTL at an istioctl binary, or unset it to let mesh find or download one.', 'MESH_ISTIOCTL')
    }
    return {path: env.MESH_ISTIOCTL, source: 'env'}
  }
  const exe = platform === 'win32' ? 'istioctl.exe' : 'istioctl'
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue
    const candidate = join(dir, exe)
    if (isExecutable(candidate)) return {path: candidate, source: 'path'}
  }
  const version = opts.version ?? DEFAULT_ISTIO_VERSION
  const cached = istioctlCachePath(opts.home ?? meshHome(env), version, platform)
  if (isExecutable(cached)) return {path: cached, source: 'cache', version}
  return undefined
}

/** The first hex digest of a `.sha256` file (`<hex>  <filename>`), checked against the artifact name. */
export function parseSha256File(text: string, artifactName: string, url: string): string {
  const m = /^\s*([0-9a-fA-F]{64})(?:\s+\*?(\S+))?/.exec(text)
  if (!m || (m[2] !== undefined && m[2].replace(/^.*\//, '') !== artifactName)) {
    throw new MeshError('MESH_ISTIOCTL_CHECKSUM', `checksum file ${url}.sha256 does not hold a SHA-256 for ${artifactName}`, {
      suggestion: 'Retry later, or install istioctl yourself and set MESH_ISTIOCTL to its path.',
      exit: EXIT.unavailable,
    })
  }
  return m[1].toLowerCase()
}

async function get(url: string, signal: AbortSignal): Promise<Response> {
  let res: Response
  try {
    res = await fetch(url, {signal, redirect: 'follow'})
  } catch (e) {
    const cause = (e as Error & {cause?: {code?: string; message?: string}}).cause
    throw unavailable('MESH_ISTIOCTL_DOWNLOAD', `cannot download ${url}: ${cause?.code ?? cause?.message ?? (e as Error).message}`, 'Check the network (or MESH_ISTIO_RELEASE_URL), or install istioctl and set MESH_ISTIOCTL.', e)
  }
  if (!res.ok || !res.body) {
    throw unavailable(
      'MESH_ISTIOCTL_DOWNLOAD',
      `cannot download ${url}: HTTP ${res.status}${res.status === 404 ? ' (no such release artifact)' : ''}`,
      res.status === 404 ? 'Check --istio-version names a published Istio release, or set MESH_ISTIOCTL.' : 'Retry later, or install istioctl and set MESH_ISTIOCTL.',
    )
  }
  return res
}

/**
 * Download istioctl `version` into the cache: fetch archive and `.sha256`, verify, unpack into a
 * temporary directory beside the cache entry and rename it into place. Nothing is left behind
 * on failure.
 */
export async function downloadIstioctl(opts: DownloadOptions = {}): Promise<IstioctlLocation> {
  const env = opts.env ?? process.env
  const version = validateIstioVersion(opts.version ?? DEFAULT_ISTIO_VERSION)
  const home = opts.home ?? meshHome(env)
  const artifact = istioctlArtifact(version, {platform: opts.platform, arch: opts.arch, baseUrl: opts.baseUrl ?? (env.MESH_ISTIO_RELEASE_URL || undefined)})
  if (artifact.format !== 'tar.gz') {
    throw unavailable('MESH_ISTIOCTL_PLATFORM', `mesh cannot unpack ${artifact.name} (${artifact.format}) itself`, 'Install istioctl yourself and put it on PATH or set MESH_ISTIOCTL to its path.')
  }
  const finalDir = join(cacheRoot(home), version)
  const finalPath = join(finalDir, artifact.binary)
  mkdirSync(cacheRoot(home), {recursive: true})
  const tmp = join(cacheRoot(home), `.partial-${version}-${process.pid}-${randomBytes(4).toString('hex')}`)
  mkdirSync(tmp)
  const signals = [AbortSignal.timeout(opts.timeoutMs ?? 300_000), ...(opts.signal ? [opts.signal] : [])]
  const signal = AbortSignal.any(signals)
  try {
    const sumRes = await get(`${artifact.url}.sha256`, signal)
    const expected = parseSha256File(await sumRes.text(), artifact.name, artifact.url)
    const archive = join(tmp, artifact.name)
    const res = await get(artifact.url, signal)
    const hash = createHash('sha256')
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk)
        cb(null, chunk)
      },
    })
    try {
      await pipeline(Readable.fromWeb(res.body as unknown as WebReadableStream<Uint8Array>), tap, createWriteStream(archive))
    } catch (e) {
      throw unavailable('MESH_ISTIOCTL_DOWNLOAD', `download of ${artifact.url} broke off: ${(e as Error).message}`, 'Retry, or install istioctl and set MESH_ISTIOCTL.', e)
    }
    const actual = hash.digest('hex')
    if (actual !== expected) {
      throw new MeshError('MESH_ISTIOCTL_CHECKSUM', `${artifact.name} from ${artifact.url} has SHA-256 ${actual}, but the published checksum is ${expected}; not installing it`, {
        suggestion: 'Retry the download (it may have been corrupted), or install istioctl yourself and set MESH_ISTIOCTL.',
        exit: EXIT.unavailable,
      })
    }
    const out = join(tmp, 'out')
    mkdirSync(out)
    try {
      await extract({
        file: archive,
        cwd: out,
        strict: true,
        // only the binary itself, and only as a regular file
        filter: (p: string, entry) => p.replace(/^\.\//, '') === artifact.binary && (entry as ReadEntry).type === 'File',
      })
    } catch (e) {
      throw unavailable('MESH_ISTIOCTL_ARCHIVE', `cannot unpack ${artifact.name}: ${(e as Error).message}`, 'Retry, or install istioctl yourself and set MESH_ISTIOCTL.', e)
    }
    const binary = join(out, artifact.binary)
    try {
      chmodSync(binary, 0o755)
    } catch {
      throw unavailable('MESH_ISTIOCTL_ARCHIVE', `${artifact.name} does not contain ${artifact.binary}`, 'Install istioctl yourself and set MESH_ISTIOCTL.')
    }
    try {
      renameSync(out, finalDir)
    } catch (e) {
      // another mesh process finished the same download first: use its copy
      if (!isExecutable(finalPath)) throw e
    }
    return {path: finalPath, source: 'download', version}
  } finally {
    rmSync(tmp, {recursive: true, force: true})
  }
}

/** Find istioctl, or download the pinned version when there is none. */
export async function ensureIstioctl(opts: DownloadOptions = {}): Promise<IstioctlLocation> {
  return findIstioctl(opts) ?? downloadIstioctl(opts)
}

export interface IstioctlRunOptions {
  /** path of istioctl; default: findIstioctl() (no download) */
  istioctl?: string
  /** kubeconfig path, or a KUBECONFIG-style list */
  kubeconfig?: string
  context?: string
  env?: NodeJS.ProcessEnv
  /** default 10 minutes */
  timeoutMs?: number
  signal?: AbortSignal
}

export interface IstioctlRun {
  argv: string[]
  stdout: string
  stderr: string
}

/** Run istioctl with `--context`/`--kubeconfig` added; non-zero exit → MESH_ISTIOCTL_FAILED (69). */
export async function runIstioctl(args: string[], opts: IstioctlRunOptions = {}): Promise<IstioctlRun> {
  const env = opts.env ?? process.env
  const bin = opts.istioctl ?? findIstioctl({env})?.path
  if (!bin) throw unavailable('MESH_ISTIOCTL_MISSING', 'istioctl was not found (MESH_ISTIOCTL, PATH, mesh cache)', 'Run `mesh lab up --context <ctx>` to download it, or install istioctl and put it on PATH.')
  const kc = opts.kubeconfig ? childKubeconfig(opts.kubeconfig) : {args: [], env: {}}
  const argv = [...args, ...(opts.context ? ['--context', opts.context] : []), ...kc.args]
  const r = await execa(bin, argv, {
    reject: false,
    env: {...env, ...kc.env},
    extendEnv: false,
    timeout: opts.timeoutMs ?? 600_000,
    cancelSignal: opts.signal,
    stdin: 'ignore',
  })
  const stdout = String(r.stdout ?? '')
  const stderr = String(r.stderr ?? '')
  if (r.failed) {
    const tail = (stderr.trim() || stdout.trim()).split('\n').slice(-5).join(' | ')
    const why = r.timedOut ? 'timed out' : r.isCanceled ? 'was cancelled' : r.exitCode !== undefined ? `exited with ${r.exitCode}` : `could not start (${(r as {code?: string}).code ?? r.shortMessage})`
    throw unavailable('MESH_ISTIOCTL_FAILED', `istioctl ${args[0] ?? ''} ${why}${tail ? `: ${tail}` : ''}`, 'Read the istioctl output above; `istioctl x precheck` diagnoses most install problems.')
  }
  return {argv: [bin, ...argv], stdout, stderr}
}

/** `client version: 1.28.1` (1.2x) or a bare `1.28.1` (older) → `1.28.1`. */
export function parseIstioctlClientVersion(text: string): string | undefined {
  const m = /client version:\s*v?(\d+\.\d+\.\d+\S*)/i.exec(text) ?? /^\s*v?(\d+\.\d+\.\d+\S*)\s*$/m.exec(text)
  return m?.[1]
}

const majorMinor = (v: string) => v.split('.').slice(0, 2).join('.')

export interface InstallIstioOptions extends DownloadOptions {
  profile?: IstioProfile
  context: string
  kubeconfig?: string
  revision?: string
  /** a known istioctl path; default ensureIstioctl() */
  istioctl?: string
}

export interface InstallIstioResult {
  istioctl: IstioctlLocation
  clientVersion?: string
  argv: string[]
  stdout: string
  warnings: MeshWarning[]
}

/**
 * `istioctl install --set profile=<p> -y --context <ctx> [--kubeconfig <path>] [--revision r]`,
 * after checking the client's major.minor against the pinned version (a mismatch is a warning).
 */
export async function installIstio(opts: InstallIstioOptions): Promise<InstallIstioResult> {
  const version = validateIstioVersion(opts.version ?? DEFAULT_ISTIO_VERSION)
  const profile = validateProfile(opts.profile ?? 'demo')
  if (opts.revision !== undefined && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(opts.revision)) {
    throw invalid('MESH_ISTIO_REVISION_INVALID', `--revision "${opts.revision}" is not a valid revision name (lowercase letters, digits, '-')`, 'Use a name like 1-28-1, or leave --revision out.', 'revision')
  }
  const istioctl: IstioctlLocation = opts.istioctl ? {path: opts.istioctl, source: 'env'} : await ensureIstioctl({...opts, version})
  const warnings: MeshWarning[] = []
  const run = {istioctl: istioctl.path, env: opts.env, signal: opts.signal}
  const ver = await runIstioctl(['version', '--remote=false'], {...run, timeoutMs: 60_000})
  const clientVersion = parseIstioctlClientVersion(ver.stdout)
  if (!clientVersion) {
    warnings.push({code: 'MESH_ISTIOCTL_VERSION_UNKNOWN', message: `could not read the version of ${istioctl.path}; expected ${version}`})
  } else if (majorMinor(clientVersion) !== majorMinor(version)) {
    warnings.push({code: 'MESH_ISTIOCTL_VERSION_MISMATCH', message: `istioctl at ${istioctl.path} is ${clientVersion}, mesh is pinned to ${version}; installing with it anyway`})
  }
  const args = ['install', '--set', `profile=${profile}`, '-y', ...(opts.revision ? ['--revision', opts.revision] : [])]
  const r = await runIstioctl(args, {...run, context: opts.context, kubeconfig: opts.kubeconfig})
  return {istioctl, clientVersion, argv: r.argv, stdout: r.stdout, warnings}
}

export interface UninstallIstioOptions extends Omit<IstioctlRunOptions, 'istioctl'>, DownloadOptions {
  context: string
  istioctl?: string
  /** client for the install record; default built from kubeconfig + context */
  kc?: KubeConfig
}

export interface UninstallIstioResult {
  uninstalled: boolean
  record?: InstallRecord
  argv?: string[]
  warnings: MeshWarning[]
}

/**
 * `istioctl uninstall --purge -y --context <ctx>`, only when istio-system/mesh-state says mesh
 * installed this Istio; otherwise nothing is run and a MESH_ISTIO_NOT_OURS warning is returned.
 */
export async function uninstallIstio(opts: UninstallIstioOptions): Promise<UninstallIstioResult> {
  const kc = opts.kc ?? kubeConfigFor({...(opts.kubeconfig ? kubeconfigSource(opts.kubeconfig, opts.env) : {env: opts.env}), context: opts.context}).kc
  const record = await readInstallRecord(kc)
  if (!record) {
    return {
      uninstalled: false,
      warnings: [{code: 'MESH_ISTIO_NOT_OURS', message: `Istio on context "${opts.context}" was not installed by mesh (no ${'istio-system'}/mesh-state record); leaving it in place`}],
    }
  }
  const istioctl = opts.istioctl ?? (await ensureIstioctl({...opts, version: record.istioVersion})).path
  // --purge removes every revision; istioctl refuses --purge together with --revision
  const args = ['uninstall', '--purge', '-y']
  const r = await runIstioctl(args, {istioctl, kubeconfig: opts.kubeconfig, context: opts.context, env: opts.env, signal: opts.signal, timeoutMs: opts.timeoutMs})
  await deleteInstallRecord(kc)
  return {uninstalled: true, record, argv: r.argv, warnings: []}
}
