// Multi-document YAML in and out, as kubectl reads and writes it.
import {dump, loadAll} from 'js-yaml'
import {MeshError, EXIT} from '../lib/errors.js'
import {MESH_CODES} from './codes.js'

/** Parse a YAML stream into objects; empty documents (e.g. a trailing `---`) are skipped. */
export function loadYamlObjects(text: string, source = 'input'): Record<string, unknown>[] {
  let docs: unknown[]
  try {
    docs = loadAll(text)
  } catch (err) {
    const e = err as Error & {reason?: string; mark?: {line: number; column: number}}
    const where = e.mark ? `${source}:${e.mark.line + 1}:${e.mark.column + 1}` : source
    throw new MeshError('MESH_YAML', `${where}: ${e.reason ?? e.message.split('\n')[0]}`, {suggestion: MESH_CODES.MESH_YAML, exit: EXIT.invalidInput, field: source, cause: err})
  }
  const out: Record<string, unknown>[] = []
  docs.forEach((doc, i) => {
    if (doc === null || doc === undefined) return
    if (typeof doc !== 'object' || Array.isArray(doc)) {
      throw new MeshError('MESH_YAML', `${source}: document ${i + 1} is a ${Array.isArray(doc) ? 'list' : typeof doc}, not an object with apiVersion and kind`, {
        suggestion: MESH_CODES.MESH_YAML,
        exit: EXIT.invalidInput,
        field: `${source}[${i}]`,
      })
    }
    out.push(doc as Record<string, unknown>)
  })
  return out
}

/** Objects as one YAML stream, documents separated by `---`. */
export function dumpYamlObjects(objects: readonly unknown[]): string {
  return objects.map((o) => dump(o, {noRefs: true, lineWidth: -1})).join('---\n')
}
