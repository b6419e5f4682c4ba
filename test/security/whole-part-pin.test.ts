// Found by an attack run (helper-39, 2026-12-06; failed before the fix): the cutter held a part
// that was exactly full back, sealed, until the file's next byte told whether it was the last.
// Sealed, the pool counted it as on its way to S3, so its relief (park the slow, then evict the
// stalest holder) never ran while one existed: three clients that sent exactly one part of a file
// and went silent held 15 of 16 MiB, and an honest 12 MiB upload waited for bodyTimeout (28.9 s).
// One byte short of a part, the same clients were evicted at once. The full part now stays
// "filling" until its next byte comes.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { startApp } from '../support/app.ts'
import { freshBucket, needsStrictS3, testClient, testS3 } from '../support/s3.ts'
import { openSlowClient, type SlowClient } from '../support/slow-client.ts'
import { streamUpload } from '../support/stream-upload.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

for (const sent of [5 * MiB, 5 * MiB - 1]) {
  t.test(`three clients that stop after ${sent} bytes of a file do not hold an honest upload back`, { skip }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const { app, url } = await startApp(t, server, { bucket, mode: 'inline', partSize: 5 * MiB, maxBufferedBytes: 16 * MiB, bodyTimeout: 30_000 })
    const silent: SlowClient[] = []
    t.teardown(() => { for (const one of silent) one.close() })
    for (let i = 0; i < 3; i++) silent.push(await openSlowClient(url, { declaredLength: 64 * MiB, initialBytes: sent, filename: `pin-${i}.bin` }))
    await sleep(1500)
    t.comment(`held: ${(app.s3Chunk.stats().bufferedBytes / MiB).toFixed(1)} MiB of 16`)
    const started = Date.now()
    const honest = await streamUpload(`${url}/upload`, { seed: 7, size: 12 * MiB, hash: false })
    const took = Date.now() - started
    t.equal(honest.status, 200, 'the honest upload is stored')
    // Generous: it took 0.6 s one byte short of a part, and bodyTimeout (30 s) before the fix.
    t.ok(took < 15_000, `without waiting out the silent clients' bodyTimeout (${took} ms)`)
    t.ok(silent.some((one) => one.status() === 503), `a silent client was asked to come back later (${silent.map((one) => one.status()).join(', ')})`)
  })
}
