// TEST DOUBLE of a Kubernetes API server for the real-cluster target's unit-level checks: a
// tiny in-memory REST store over HTTP on 127.0.0.1 (GET/POST/PUT/DELETE by path), /version,
// and SelfSubjectAccessReview answered from a table (or 404, like a server without it).
import {createServer, type IncomingMessage, type Server} from 'node:http'
import type {AddressInfo} from 'node:net'
import {writeFileSync} from 'node:fs'

export interface FakeApiServer {
  url: string
  objects: Map<string, Record<string, unknown>>
  requests: string[]
  /** resource → allowed; undefined answers 404 (review API missing) */
  access?: Record<string, boolean>
  gitVersion: string
  put(path: string, obj: Record<string, unknown>): void
  writeKubeconfig(file: string, context: string): void
  close(): Promise<void>
}

const body = (req: IncomingMessage) =>
  new Promise<string>((resolve) => {
    let s = ''
    req.on('data', (d: Buffer) => (s += d.toString()))
    req.on('end', () => resolve(s))
  })

export async function startFakeApiServer(gitVersion = 'v1.32.2'): Promise<FakeApiServer> {
  const objects = new Map<string, Record<string, unknown>>()
  const requests: string[] = []
  const api: FakeApiServer = {
    url: '',
    objects,
    requests,
    gitVersion,
    put: (path, obj) => objects.set(path, obj),
    writeKubeconfig(file, context) {
      writeFileSync(
        file,
        `apiVersion: v1
kind: Config
clusters:
- name: ${context}
  cluster: {server: "${api.url}", insecure-skip-tls-verify: true}
users:
- name: ${context}
  user: {token: test-token}
contexts:
- name: ${context}
  context: {cluster: ${context}, user: ${context}}
current-context: ${context}
`,
      )
    },
    close: () => new Promise((r) => server.close(() => r())),
  }
  const server: Server = createServer(async (req, res) => {
    const path = (req.url ?? '').split('?')[0]
    requests.push(`${req.method} ${path}`)
    const send = (code: number, obj: unknown) => res.writeHead(code, {'content-type': 'application/json'}).end(JSON.stringify(obj))
    const notFound = () => send(404, {kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404, message: `${path} not found`})
    const text = await body(req)
    if (path === '/version') return send(200, {major: '1', minor: api.gitVersion.split('.')[1], gitVersion: api.gitVersion})
    if (path === '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews' && req.method === 'POST') {
      if (!api.access) return notFound()
      const review = JSON.parse(text) as {spec: {resourceAttributes: {resource: string}}}
      return send(201, {...review, status: {allowed: api.access[review.spec.resourceAttributes.resource] ?? false}})
    }
    if (req.method === 'GET') return objects.has(path) ? send(200, objects.get(path)) : notFound()
    if (req.method === 'POST') {
      const obj = JSON.parse(text) as {metadata: {name: string}}
      const key = `${path}/${obj.metadata.name}`
      if (objects.has(key)) return send(409, {kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'AlreadyExists', code: 409})
      objects.set(key, obj)
      return send(201, obj)
    }
    if (req.method === 'PUT') {
      objects.set(path, JSON.parse(text))
      return send(200, objects.get(path))
    }
    if (req.method === 'DELETE') {
      if (!objects.delete(path)) return notFound()
      return send(200, {kind: 'Status', apiVersion: 'v1', status: 'Success'})
    }
    notFound()
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  api.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return api
}
