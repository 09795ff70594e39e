import {MeshCommand} from '../../lib/command.js'
import {meshHome} from '../../local/home.js'
import {displayPath, labsDir, loadCatalog, loadProgress, progressSummary} from '../../walkthrough/index.js'

export interface LabListEntry {
  id: string
  title: string
  summary: string
  minutes: number
  steps: number
  file: string
  progress: {passed: number; total: number; current: number | null; completed: boolean; label: string}
}

export interface LabListResult {
  dir: string
  labs: LabListEntry[]
  invalid: Array<{file: string; code: string; message: string}>
}

export default class LabList extends MeshCommand<LabListResult> {
  static override summary = 'List the workshop labs and how far you got in each'
  static override description =
    'Labs are files in labs/ (or $MESH_LABS_DIR). Progress comes from $MESH_HOME/walkthroughs/<lab>.json, written by `mesh lab walkthrough`.'
  static override examples = ['<%= config.bin %> lab list', '<%= config.bin %> lab list --json']

  async run(): Promise<LabListResult> {
    await this.parse(LabList)
    const catalog = loadCatalog(labsDir(this.config.root))
    const home = meshHome()
    for (const bad of catalog.invalid) this.meshWarn(bad.error.code, bad.error.message)
    const labs: LabListEntry[] = catalog.labs.map((lab) => ({
      id: lab.id,
      title: lab.title,
      summary: lab.summary,
      minutes: lab.minutes,
      steps: lab.steps.length,
      file: displayPath(lab.file),
      progress: progressSummary(lab, loadProgress(home, lab.id)),
    }))
    const c = this.c
    if (labs.length === 0) this.out(`No labs in ${catalog.dir}.`)
    else {
      const idW = Math.max(2, ...labs.map((l) => l.id.length))
      const titleW = Math.max(5, ...labs.map((l) => l.title.length))
      this.out(c.bold(`${'ID'.padEnd(idW)}  ${'TITLE'.padEnd(titleW)}  MIN  STEPS  PROGRESS`))
      for (const l of labs) {
        this.out(`${l.id.padEnd(idW)}  ${l.title.padEnd(titleW)}  ${String(l.minutes).padStart(3)}  ${String(l.steps).padStart(5)}  ${l.progress.label}`)
      }
      this.out()
      this.out(c.dim(`Start one with: mesh lab walkthrough ${labs.find((l) => !l.progress.completed)?.id ?? labs[0]!.id}`))
    }
    return {
      dir: catalog.dir,
      labs,
      invalid: catalog.invalid.map((b) => ({file: displayPath(b.file), code: b.error.code, message: b.error.message})),
    }
  }
}
