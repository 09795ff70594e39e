// Where labs live and how a participant names one: `canary`, `02-canary` or `2`.
import {existsSync, readFileSync, readdirSync, statSync} from 'node:fs'
import {basename, join, resolve} from 'node:path'
import {EXIT, MeshError, isMeshError} from '../lib/errors.js'
import {labIdFromFile, parseLab} from './parse.js'
import type {Lab} from './types.js'

/** `$MESH_LABS_DIR`, else `<package root>/labs`. */
export function labsDir(packageRoot: string, env: NodeJS.ProcessEnv = process.env): string {
  const d = env.MESH_LABS_DIR?.trim()
  return resolve(d ? d : join(packageRoot, 'labs'))
}

export interface LabFile {
  id: string
  /** file name without .md, e.g. 02-canary */
  stem: string
  /** the number prefix, when there is one */
  number?: number
  file: string
}

/** Lab files in a directory, in file-name order (the numbers give the course order). */
export function listLabFiles(dir: string): LabFile[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new MeshError('MESH_LABS_DIR_MISSING', `no labs directory at ${dir}`, {
      suggestion: 'Unset MESH_LABS_DIR, or point it at a directory of lab files (NN-id.md).',
      exit: EXIT.invalidInput,
      field: 'MESH_LABS_DIR',
    })
  return readdirSync(dir)
    .filter((f) => f.toLowerCase().endsWith('.md') && !/^readme\.md$/i.test(f))
    .sort((a, b) => a.localeCompare(b, 'en', {numeric: true}))
    .map((f) => {
      const stem = f.replace(/\.md$/i, '')
      const n = /^(\d+)-/.exec(stem)
      return {id: labIdFromFile(f), stem, ...(n ? {number: Number(n[1])} : {}), file: join(dir, f)}
    })
}

export function readLab(file: string): Lab {
  return parseLab(readFileSync(file, 'utf8'), file)
}

/** Finds and parses one lab; MESH_LAB_NOT_FOUND (exit 65) lists the ids there are. */
export function loadLab(dir: string, ref: string): Lab {
  const files = listLabFiles(dir)
  const r = ref.trim().replace(/\.md$/i, '')
  const hit =
    files.find((f) => f.id === r || f.stem === r) ??
    (/^\d+$/.test(r) ? files.find((f) => f.number !== undefined && f.number === Number(r)) : undefined) ??
    files.find((f) => basename(f.file) === basename(ref))
  if (!hit) {
    const ids = files.map((f) => f.id)
    throw new MeshError('MESH_LAB_NOT_FOUND', `no lab "${ref}"; labs: ${ids.length ? ids.join(', ') : '(none)'}`, {
      suggestion: 'Run `mesh lab list` to see the labs, then `mesh lab walkthrough <id>`.',
      exit: EXIT.invalidInput,
      field: 'lab',
    })
  }
  return readLab(hit.file)
}

export interface Catalog {
  dir: string
  labs: Lab[]
  /** labs that failed to load, with their error */
  invalid: Array<{file: string; error: MeshError}>
}

/** Every lab in the directory; a broken lab is reported, not fatal to the others. */
export function loadCatalog(dir: string): Catalog {
  const labs: Lab[] = []
  const invalid: Catalog['invalid'] = []
  const seen = new Map<string, string>()
  for (const f of listLabFiles(dir)) {
    if (seen.has(f.id)) {
      const msg = `${basename(f.file)}: id "${f.id}" is also the id of ${seen.get(f.id)}`
      invalid.push({file: f.file, error: new MeshError('MESH_LAB_INVALID', msg, {suggestion: 'Give every lab file a different id (NN-id.md).', exit: EXIT.invalidInput, field: 'id'})})
      continue
    }
    seen.set(f.id, basename(f.file))
    try {
      labs.push(readLab(f.file))
    } catch (e) {
      if (!isMeshError(e)) throw e
      invalid.push({file: f.file, error: e})
    }
  }
  return {dir, labs, invalid}
}

/** `--from 3` or `--from shift-90-10` → 0-based index. */
export function stepIndex(lab: Lab, ref: string): number {
  const r = ref.trim()
  const byId = lab.steps.findIndex((s) => s.id === r)
  if (byId >= 0) return byId
  if (/^\d+$/.test(r) && Number(r) >= 1 && Number(r) <= lab.steps.length) return Number(r) - 1
  throw new MeshError('MESH_LAB_STEP_NOT_FOUND', `lab "${lab.id}" has no step "${ref}"; steps: ${lab.steps.map((s, i) => `${i + 1} ${s.id}`).join(', ')}`, {
    suggestion: 'Give a step number (1-based) or a step id from the list.',
    exit: EXIT.invalidInput,
    field: 'from',
  })
}

