// Starts the embedded API in-process on 127.0.0.1:0 over a temp-dir store, writes a kubeconfig
// for it, and runs the real kubectl against it.
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import https from 'node:https'
import type {AddressInfo} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {randomBytes} from 'node:crypto'
import {execa} from 'execa'
import {FileStore, type FileStoreOptions} from '../../../src/local/api/store.js'
import {createApiServer, type ObjectValidator} from '../../../src/local/api/server.js'
import {createServingCa} from '../../../src/local/api/serving-cert.js'

export const KUBECTL = process.env.KUBECTL ?? 'kubectl'

export interface HttpResult {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  json: any // eslint-disable-line @typescript-eslint/no-explicit-any
}

export interface Harness {
  dir: string
  port: number
  token: string
  ca: string
  kubeconfig: string
  store: FileStore
  server: https.Server
  kubectl(args: string[], input?: string): Promise<{exitCode: number; stdout: string; stderr: string}>
  request(method: string, path: string, opts?: {body?: unknown; contentType?: string; token?: string | null; accept?: string}): Promise<HttpResult>
  close(): Promise<void>
}

export async function startApi(opts: {validators?: ObjectValidator[]; store?: Partial<FileStoreOptions>} = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'mesh-api-'))
  const ca = await createServingCa(join(dir, 'pki'))
  const store = await FileStore.open({dir: join(dir, 'state'), ...opts.store})
  const token = randomBytes(24).toString('hex')
  const server = createApiServer({store, token, tlsKey: ca.key, tlsCert: ca.cert, validators: opts.validators})
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const kubeconfig = join(dir, 'kubeconfig')
  writeFileSync(
    kubeconfig,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: mesh-local',
      '  cluster:',
      `    server: https://127.0.0.1:${port}`,
      `    certificate-authority-data: ${Buffer.from(ca.caCert).toString('base64')}`,
      'users:',
      '- name: mesh-local',
      '  user:',
      `    token: ${token}`,
      'contexts:',
      '- name: mesh-local',
      '  context:',
      '    cluster: mesh-local',
      '    user: mesh-local',
      'current-context: mesh-local',
      '',
    ].join('\n'),
    {mode: 0o600},
  )
  const agent = new https.Agent({ca: ca.caCert, keepAlive: true})
  return {
    dir,
    port,
    token,
    ca: ca.caCert,
    kubeconfig,
    store,
    server,
    async kubectl(args, input) {
      const r = await execa(KUBECTL, ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'kube-cache'), ...args], {
        reject: false,
        input,
        timeout: 60_000,
        env: {HOME: dir, KUBECONFIG: kubeconfig},
      })
      return {exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr)}
    },
    request(method, path, o = {}) {
      return new Promise((resolve, reject) => {
        const body = o.body === undefined ? undefined : typeof o.body === 'string' ? o.body : JSON.stringify(o.body)
        const headers: Record<string, string> = {}
        const tok = o.token === undefined ? token : o.token
        if (tok !== null) headers.authorization = `Bearer ${tok}`
        if (body !== undefined) headers['content-type'] = o.contentType ?? 'application/json'
        if (o.accept) headers.accept = o.accept
        const req = https.request({host: '127.0.0.1', port, path, method, headers, agent}, (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8')
            let json: unknown
            try {
              json = JSON.parse(text)
            } catch {
              json = undefined
            }
            resolve({status: res.statusCode ?? 0, headers: res.headers, text, json})
          })
        })
        req.on('error', reject)
        req.end(body)
      })
    },
    async close() {
      agent.destroy()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await store.close()
      rmSync(dir, {recursive: true, force: true})
    },
  }
}

/** Opens a watch stream and collects its events until stopped. */
export function openWatch(h: Harness, path: string): {events: Array<{type: string; object: any}>; stop: () => void; ready: Promise<void>} { // eslint-disable-line @typescript-eslint/no-explicit-any
  const events: Array<{type: string; object: any}> = [] // eslint-disable-line @typescript-eslint/no-explicit-any
  let buf = ''
  let stop = () => undefined as void
  const ready = new Promise<void>((resolve, reject) => {
    const req = https.request({host: '127.0.0.1', port: h.port, path, method: 'GET', headers: {authorization: `Bearer ${h.token}`}, ca: h.ca}, (res) => {
      res.setEncoding('utf8')
      res.on('data', (c: string) => {
        buf += c
        let i
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i)
          buf = buf.slice(i + 1)
          if (line.trim()) events.push(JSON.parse(line))
        }
      })
      res.on('error', () => undefined)
      resolve()
    })
    req.on('error', (e) => reject(e))
    req.end()
    stop = () => req.destroy()
  })
  return {events, stop: () => stop(), ready}
}

/** Polls until `fn` returns truthy (bounded). */
export async function until<T>(fn: () => T | undefined | false, what: string, ms = 10_000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = fn()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}
