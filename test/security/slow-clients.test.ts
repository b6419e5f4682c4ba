// Attack: pin the memory budget with slow clients (issue 9). A part's whole
// buffer used to be reserved at its first byte, sized from the declared
// Content-Length: 52 connections sending ~1 KiB then 1 byte/s pinned the whole
// 256 MiB budget, and every other upload — even 100 KB — then waited forever.
// Memory must be reserved as bytes arrive, so 64 such clients plus one that
// declares 5 TiB hold a few KiB each, and healthy uploads go through.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import type { S3File } from 'fastify-s3-chunk'
import { startApp } from '../support/app.ts'
import { expectNoPendingUploads, freshBucket, needsStrictS3, objectDigest, testClient, testS3 } from '../support/s3.ts'
import { openSlowClient, sampleMax, type SlowClient } from '../support/slow-client.ts'
import { streamUpload, type StreamedUpload } from '../support/stream-upload.ts'

const KiB = 1024
const MiB = 1024 * KiB
const TiB = 1024 * 1024 * MiB
const PART = 5 * MiB
const BUDGET = 256 * MiB
const SLOW = 64
const HEALTHY_BOUND_MS = 60_000

const server = await testS3()
const client = testClient(server)

/** streamUpload, or null when no answer came within `ms` (the request is left to the server's close). */
async function within (ms: number, upload: Promise<StreamedUpload>): Promise<{ result: StreamedUpload | null, ms: number }> {
  const started = Date.now()
  // Unref'd: the bound must not keep the test process alive once the upload has answered.
  const result = await Promise.race([upload, sleep(ms, null, { ref: false })])
  return { result, ms: Date.now() - started }
}

t.test(`${SLOW} clients dripping 1 byte/s and one declaring 5 TiB cannot hold back a 100 KB and a 64 MiB upload`, { skip: needsStrictS3(server) }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  // bodyTimeout far above the test's length: the slow clients must be survived, not timed out.
  const { app, url } = await startApp(t, server, { bucket, mode: 'workers', partSize: PART, bodyTimeout: 120_000 })
  t.equal(app.s3Chunk.stats().maxBufferedBytes, BUDGET, 'the default budget')

  const slow: SlowClient[] = []
  t.teardown(() => { for (const c of slow) c.close() })
  const buffered = sampleMax(() => app.s3Chunk.stats().bufferedBytes)
  t.teardown(buffered.stop)

  // The 5 TiB declaration first: it is the one that would take a part larger than the budget.
  slow.push(await openSlowClient(url, { declaredLength: 5 * TiB, filename: 'five-tib.bin', initialBytes: 8 * KiB, dripMs: 1000 }))
  for (let i = 0; i < SLOW; i++) {
    slow.push(await openSlowClient(url, { declaredLength: 100 * MiB, filename: `slow-${i}.bin`, initialBytes: 8 * KiB, dripMs: 1000 }))
  }
  // 8 KiB each: past the 4,100 bytes held back for sniffing, so every one has opened a part.
  // Hold on while only the slow clients are connected.
  await sleep(10_000)
  const slowOnly = buffered.max()
  const slowBound = (SLOW + 1) * 64 * KiB + PART
  t.ok(slowOnly <= slowBound, `with only the slow clients connected, part buffers held ≤ ${slowBound / MiB} MiB (peak ${(slowOnly / MiB).toFixed(2)} MiB): none can reserve whole parts`)
  t.ok(app.s3Chunk.stats().peakBufferedBytes <= BUDGET, `peak part buffers ${(app.s3Chunk.stats().peakBufferedBytes / MiB).toFixed(1)} MiB ≤ the ${BUDGET / MiB} MiB budget`)

  const [small, large] = await Promise.all([
    within(HEALTHY_BOUND_MS, streamUpload(`${url}/upload`, { seed: 1, size: 100 * 1000, filename: 'healthy-100k.bin' })),
    within(HEALTHY_BOUND_MS, streamUpload(`${url}/upload`, { seed: 2, size: 64 * MiB, filename: 'healthy-64m.bin' }))
  ])
  for (const [label, { result, ms }] of [['100 KB', small], ['64 MiB', large]] as const) {
    t.equal(result?.status, 200, `healthy ${label} upload answered 200 within ${HEALTHY_BOUND_MS / 1000} s (${result === null ? 'no answer' : `${result.status} in ${(ms / 1000).toFixed(1)} s`})`)
    if (result?.status === 200) {
      const file = JSON.parse(result.body) as S3File
      const stored = await objectDigest(client, bucket, file.key)
      t.equal(stored.sha256, result.sha256, `healthy ${label} upload stored byte for byte`)
      t.equal(stored.size, result.size)
    }
  }
  const stillThere = slow.filter((c) => !c.closed()).length
  t.equal(stillThere, slow.length, `the slow clients were still connected while the healthy uploads ran (${stillThere} of ${slow.length})`)

  const stats = app.s3Chunk.stats()
  t.ok(buffered.max() <= BUDGET, `part buffers sampled every 50 ms never over the budget (max ${(buffered.max() / MiB).toFixed(1)} MiB)`)
  t.ok(stats.peakBufferedBytes <= BUDGET, `peakBufferedBytes ${(stats.peakBufferedBytes / MiB).toFixed(1)} MiB ≤ ${BUDGET / MiB} MiB`)

  for (const c of slow) c.close()
  // Their uploads fail and give their memory back.
  for (let i = 0; i < 100 && (app.s3Chunk.stats().uploadsInFlight > 0 || app.s3Chunk.stats().bufferedBytes > 0); i++) await sleep(100)
  t.equal(app.s3Chunk.stats().uploadsInFlight, 0, 'no upload left in flight once the slow clients are gone')
  await expectNoPendingUploads(t, server, client, bucket)
})
