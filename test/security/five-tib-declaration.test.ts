// Attack: declare a huge body, send almost nothing (issue 9). Part sizes were
// planned from the request's Content-Length and a part's whole buffer reserved
// at its first byte: one request declaring 5 TiB and sending 1 KiB reserved a
// 525 MiB buffer — over the whole 256 MiB budget. A declaration must not
// reserve more than what has arrived, and no part may be larger than the budget.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { startApp } from '../support/app.ts'
import { expectNoPendingUploads, freshBucket, needsStrictS3, testClient, testS3 } from '../support/s3.ts'
import { openSlowClient, sampleMax } from '../support/slow-client.ts'

const KiB = 1024
const MiB = 1024 * KiB
const TiB = 1024 * 1024 * MiB
/** What 1 KiB of file may hold at most: far below any part a 5 TiB plan would size. */
const SMALL_BOUND = 8 * MiB

const server = await testS3()
const client = testClient(server)

for (const budget of [undefined, 64 * MiB]) {
  const label = budget === undefined ? 'the default budget (256 MiB)' : `maxBufferedBytes ${budget / MiB} MiB`
  t.test(`${label}: a request declaring 5 TiB and sending 1 KiB reserves next to nothing`, { skip: needsStrictS3(server) }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const { app, url } = await startApp(t, server, {
      bucket,
      mode: 'workers',
      bodyTimeout: 60_000,
      ...(budget !== undefined ? { maxBufferedBytes: budget } : {})
    })
    const limit = app.s3Chunk.stats().maxBufferedBytes
    const buffered = sampleMax(() => app.s3Chunk.stats().bufferedBytes)
    t.teardown(buffered.stop)

    // 8 KiB: past the 4,100 bytes held back for sniffing, so a part has been opened.
    const huge = await openSlowClient(url, { declaredLength: 5 * TiB, filename: 'five-tib.bin', initialBytes: 8 * KiB })
    t.teardown(huge.close)
    // It pauses; watch what it holds meanwhile.
    await sleep(3000)
    t.ok(buffered.max() <= SMALL_BOUND, `part buffers held ≤ ${SMALL_BOUND / MiB} MiB for 8 KiB received (max ${(buffered.max() / MiB).toFixed(2)} MiB)`)
    t.ok(app.s3Chunk.stats().peakBufferedBytes <= limit, `peakBufferedBytes ${(app.s3Chunk.stats().peakBufferedBytes / MiB).toFixed(1)} MiB ≤ maxBufferedBytes ${limit / MiB} MiB`)
    t.comment(`the 5 TiB request is ${huge.closed() ? `closed (answered ${String(huge.status())})` : 'still open'} after 3 s`)

    huge.close()
    for (let i = 0; i < 100 && app.s3Chunk.stats().uploadsInFlight > 0; i++) await sleep(100)
    t.equal(app.s3Chunk.stats().uploadsInFlight, 0, 'its upload ends with the connection')
    await expectNoPendingUploads(t, server, client, bucket)
  })
}
