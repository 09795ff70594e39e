// Errors of the embedded API, shaped like Kubernetes `Status` objects so that kubectl and
// client-node render them as they would a real apiserver's.
import {EXIT, MeshError} from '../../lib/errors.js'

export type StatusReason =
  | 'BadRequest'
  | 'Unauthorized'
  | 'Forbidden'
  | 'NotFound'
  | 'MethodNotAllowed'
  | 'NotAcceptable'
  | 'AlreadyExists'
  | 'Conflict'
  | 'Expired'
  | 'Gone'
  | 'UnsupportedMediaType'
  | 'Invalid'
  | 'InternalError'
  | 'ServiceUnavailable'

export interface StatusCause {
  field?: string
  message: string
  reason?: string
}

export interface StatusDetails {
  name?: string
  group?: string
  kind?: string
  uid?: string
  causes?: StatusCause[]
}

/** The wire form of a Kubernetes v1 Status. */
export interface KubeStatus {
  kind: 'Status'
  apiVersion: 'v1'
  metadata: Record<string, never>
  status: 'Success' | 'Failure'
  message: string
  reason?: StatusReason
  details?: StatusDetails
  code: number
}

const CODE_PREFIX: Record<StatusReason, string> = {
  BadRequest: 'MESH_API_BAD_REQUEST',
  Unauthorized: 'MESH_API_UNAUTHORIZED',
  Forbidden: 'MESH_API_FORBIDDEN',
  NotFound: 'MESH_API_NOT_FOUND',
  MethodNotAllowed: 'MESH_API_METHOD_NOT_ALLOWED',
  NotAcceptable: 'MESH_API_NOT_ACCEPTABLE',
  AlreadyExists: 'MESH_API_ALREADY_EXISTS',
  Conflict: 'MESH_API_CONFLICT',
  Expired: 'MESH_API_EXPIRED',
  Gone: 'MESH_API_GONE',
  UnsupportedMediaType: 'MESH_API_UNSUPPORTED_MEDIA_TYPE',
  Invalid: 'MESH_API_INVALID',
  InternalError: 'MESH_API_INTERNAL',
  ServiceUnavailable: 'MESH_API_UNAVAILABLE',
}

/** An API failure with its HTTP status code and Kubernetes reason. */
export class MeshApiError extends MeshError {
  readonly status: number
  readonly reason: StatusReason
  readonly details?: StatusDetails

  constructor(status: number, reason: StatusReason, message: string, details?: StatusDetails, suggestion = '') {
    super(CODE_PREFIX[reason], message, {
      suggestion,
      exit: status >= 500 ? EXIT.internal : status === 401 || status === 503 ? EXIT.unavailable : EXIT.invalidInput,
      causes: details?.causes?.map((c) => ({field: c.field ?? '', message: c.message})),
    })
    this.name = 'MeshApiError'
    this.status = status
    this.reason = reason
    this.details = details
  }

  toStatus(): KubeStatus {
    return {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      reason: this.reason,
      ...(this.details ? {details: this.details} : {}),
      code: this.status,
    }
  }
}

export const isMeshApiError = (e: unknown): e is MeshApiError => e instanceof MeshApiError

/** `deployments.apps` / `pods`: how Kubernetes names a resource in messages. */
export const qualifiedResource = (t: {group: string; resource: string}): string =>
  t.group ? `${t.resource}.${t.group}` : t.resource

type T = {group: string; resource: string; kind: string}

export const notFound = (t: T, name: string): MeshApiError =>
  new MeshApiError(404, 'NotFound', `${qualifiedResource(t)} "${name}" not found`, {name, group: t.group, kind: t.resource})

export const alreadyExists = (t: T, name: string): MeshApiError =>
  new MeshApiError(409, 'AlreadyExists', `${qualifiedResource(t)} "${name}" already exists`, {name, group: t.group, kind: t.resource})

export const conflict = (t: T, name: string, why = 'the object has been modified; please apply your changes to the latest version and try again', causes?: StatusCause[]): MeshApiError =>
  new MeshApiError(409, 'Conflict', `Operation cannot be fulfilled on ${qualifiedResource(t)} "${name}": ${why}`, {
    name,
    group: t.group,
    kind: t.resource,
    ...(causes ? {causes} : {}),
  })

export const invalidObject = (t: T, name: string, causes: StatusCause[]): MeshApiError => {
  const summary = causes.map((c) => (c.field ? `${c.field}: ${c.message}` : c.message)).join(', ')
  return new MeshApiError(
    422,
    'Invalid',
    `${t.kind}.${t.group || 'core'} "${name}" is invalid: ${summary}`.replace('.core "', ' "'),
    {name, group: t.group, kind: t.kind, causes: causes.map((c) => ({reason: 'FieldValueInvalid', ...c}))},
  )
}

export const badRequest = (message: string): MeshApiError => new MeshApiError(400, 'BadRequest', message)

export const expired = (message: string): MeshApiError => new MeshApiError(410, 'Expired', message)

export const methodNotAllowed = (message: string): MeshApiError => new MeshApiError(405, 'MethodNotAllowed', message)

export const unsupportedMediaType = (contentType: string): MeshApiError =>
  new MeshApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/apply-patch+yaml, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got "${contentType}")`)

export const internalError = (message: string): MeshApiError => new MeshApiError(500, 'InternalError', message)
