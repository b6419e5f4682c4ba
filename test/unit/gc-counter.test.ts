// The bench's GC counter (test/support/gc-counter.mjs): a full GC shows as
// major, scavenges as minor — the kinds perf_hooks numbers 4 and 1 (the
// counter it replaced had them the wrong way round).
import t from 'tap'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { setTimeout as sleep } from 'node:timers/promises'
import { countGarbageCollections } from '../support/gc-counter.mjs'

t.test('counts a forced full GC as major, young-generation GCs as minor', async (t) => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as (options?: { type: 'major' | 'minor' }) => void
  const seen = countGarbageCollections()
  // gc() with no options is a full GC on every Node (Node 20's V8 reads { type: 'major' } as a scavenge).
  gc()
  gc()
  gc({ type: 'minor' })
  // perf_hooks delivers 'gc' entries asynchronously.
  for (let i = 0; i < 50 && (seen().major?.count ?? 0) < 2; i++) await sleep(10)
  t.ok((seen().major?.count ?? 0) >= 2, `two full GCs counted as major (${JSON.stringify(seen())})`)
  t.ok((seen().minor?.count ?? 0) >= 1, 'the scavenge counted as minor')
  t.ok((seen().major?.ms ?? -1) >= 0, 'with their time')
})
