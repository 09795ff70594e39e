// Child process for the cross-process lock tests: takes the lab lock through the compiled
// withLabLock (dist/), logs start/end to a file, and holds it for a while or until killed.
// usage: node lock-holder.mjs <home> <id> <eventsFile> <holdMs|forever>
import {appendFileSync} from 'node:fs'
import {withLabLock} from '../../../dist/cluster/lock.js'

const [home, id, events, hold] = process.argv.slice(2)
await withLabLock(
  home,
  async () => {
    appendFileSync(events, `${id}:start\n`)
    process.stdout.write('held\n')
    await new Promise((r) => setTimeout(r, hold === 'forever' ? 2 ** 31 - 1 : Number(hold)))
    appendFileSync(events, `${id}:end\n`)
  },
  {waitMs: 30_000, command: `lock-holder ${id}`},
)
