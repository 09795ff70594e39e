#!/usr/bin/env node
import {readdirSync, statSync, unlinkSync} from 'node:fs'
import {join} from 'node:path'
import {execute} from '@oclif/core'

// `npm run build` writes oclif.manifest.json so a command does not import every other command
// (~1 s per invocation). A manifest older than the compiled commands would hide new ones: drop it.
const root = join(import.meta.dirname, '..')
try {
  const manifest = statSync(join(root, 'oclif.manifest.json')).mtimeMs
  const newest = (dir) =>
    readdirSync(dir, {withFileTypes: true}).reduce((m, e) => Math.max(m, e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs), 0)
  if (newest(join(root, 'dist', 'commands')) > manifest) unlinkSync(join(root, 'oclif.manifest.json'))
} catch {
  // no manifest (or no dist yet): oclif finds commands by scanning
}

await execute({dir: import.meta.url})
