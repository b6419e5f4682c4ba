// The bench's GC counter (test/support/gc-counter.mjs): a full GC shows as
// major, scavenges as minor — the kinds perf_hooks numbers 4 and 1 (the
// counter it replaced had them the wrong way round).
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { countGarbageCollections } from '../support/gc-counter.mjs'
import { exposedGc } from '../support/force-gc.ts'

t.test('counts a forced full GC as major, young-generation GCs as minor', async (t) => {
  const gc = exposedGc()
  const seen = countGarbageCollections()
  gc()
  gc()
  gc({ type: 'minor' })
  // perf_hooks delivers 'gc' entries asynchronously.
  for (let i = 0; i < 50 && (seen().major?.count ?? 0) < 2; i++) await sleep(10)
  t.ok((seen().major?.count ?? 0) >= 2, `two full GCs counted as major (${JSON.stringify(seen())})`)
  t.ok((seen().minor?.count ?? 0) >= 1, 'the scavenge counted as minor')
  t.ok((seen().major?.ms ?? -1) >= 0, 'with their time')
})
