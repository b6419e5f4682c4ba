// The bench's receive floor (contender r, bench/contenders/receive-floor-server.mjs):
// it stores nothing, so the bench trusts the bytes its /health counts in place
// of the bucket's objects — that count must be the file's bytes exactly, over
// several parts' worth and in more than one upload. And it runs only where its
// figure means something (one large file, concurrent large files).
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { contenders } from '../../bench/contenders.ts'
import { runsScenario, scenarios } from '../../bench/scenarios.ts'
import { startNodeServer } from '../support/server-process.ts'

const script = fileURLToPath(new URL('../../bench/contenders/receive-floor-server.mjs', import.meta.url))

t.test('counts every byte of each file it receives', async (t) => {
  const server = await startNodeServer<{ bytesReceived: number, filesReceived: number }>(script, {})
  t.teardown(async () => { await server.stop() })
  // 12 MiB + 7 bytes: two whole 5 MiB part buffers refilled and a partial third.
  const sizes = [12 * 1024 * 1024 + 7, 1]
  for (const size of sizes) {
    const body = new FormData()
    body.append('file', new Blob([new Uint8Array(size).fill(7)]), 'f.bin')
    const response = await fetch(`${server.url}/upload`, { method: 'POST', body })
    t.equal(response.status, 200)
    t.match(await response.json(), { size })
  }
  const { stats } = await server.health()
  t.equal(stats.filesReceived, sizes.length)
  t.equal(stats.bytesReceived, sizes[0]! + sizes[1]!)
})

t.test('runs only the one-large and concurrent scenarios, in full and quick runs', async (t) => {
  const floor = contenders.find((contender) => contender.id === 'r')
  t.ok(floor?.receiveOnly === true)
  for (const quick of [false, true]) {
    const ran = scenarios(quick).filter((scenario) => runsScenario(scenario, floor!)).map((scenario) => scenario.id)
    t.same(ran, ['one-large', 'concurrent'], quick ? 'quick' : 'full')
  }
})
