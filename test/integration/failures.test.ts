// More ways an upload dies half-way: a worker thread crashes, the route
// handler throws. Each time the upload is aborted and nothing is left.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { S3Client } from '@aws-sdk/client-s3'
import { uploadStream, type UploadDeps } from '../../dist/lib/upload/coordinator.js'
import { PartBufferPool } from '../../dist/lib/upload/part-buffer-pool.js'
import { createWorkerPoolSender, type WorkerPoolSender } from '../../dist/lib/upload/worker-pool-sender.js'
import { configOf, type ChecksumSetting, type EngineConfig } from '../../dist/lib/options.js'
import { createS3Client } from '../../dist/lib/s3-client.js'
import { startApp } from '../support/app.ts'
import { isPutObject, isUploadPart, startFaultProxy } from '../support/fault-proxy.ts'
import { postMultipart } from '../support/multipart.ts'
import { expectNoPendingUploads, freshBucket, listKeys, needsStrictS3, objectDigest, pendingUploads, pluginS3Options, sha256, testClient, testS3 } from '../support/s3.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

/** A coordinator's dependencies around a worker pool sender: 5 MiB parts, 4 in flight. */
function threadDeps (config: EngineConfig, sender: WorkerPoolSender, s3: S3Client, checksum: ChecksumSetting, buffers: PartBufferPool): UploadDeps {
  return {
    client: s3,
    retry: config.retry,
    sender,
    partSize: () => 5 * MiB,
    partConcurrency: 4,
    maxFileSize: 1024 * MiB,
    maxParts: 10_000,
    checksum,
    buffers,
    counters: { uploadsInFlight: 0, partsInFlight: 0 }
  }
}

t.test('a worker thread that dies mid-upload fails the upload, which is aborted', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  // Every part held 3 s on its way to S3, so the thread is killed with its parts unfinished
  // (queued, or sent and held): a thread whose parts had all been stored would die idle, and
  // Piscina's next one would store the file.
  const proxy = await startFaultProxy({ target: server.endpoint })
  t.teardown(async () => { await proxy.close() })
  proxy.setRules([{ match: isUploadPart, fault: { kind: 'delay', ms: 3000 } }])
  const config = configOf({ bucket, s3: { ...pluginS3Options(server), endpoint: proxy.endpoint }, workers: { minThreads: 1, maxThreads: 1 } })
  const sender = createWorkerPoolSender(config)
  const s3 = createS3Client(config.s3)
  t.teardown(async () => { await sender.close(); s3.destroy() })
  let sent = 0
  async function * source (): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < 40; i++) {
      if (i === 12) {
        // A multipart upload is under way with parts in the thread: kill the thread.
        for (let wait = 0; wait < 50 && (await pendingUploads(client, bucket)).length === 0; wait++) await sleep(50)
        await Promise.all(sender.pool.threads.map(async (thread) => await thread.terminate()))
      }
      sent += MiB
      yield randomBytes(MiB)
    }
  }
  await t.rejects(uploadStream(source(), { bucket, key: 'crash.bin', contentType: 'application/octet-stream', overwrite: false }, threadDeps(config, sender, s3, 'none', new PartBufferPool(256 * MiB))), { code: 'FST_S3CHUNK_STORAGE', statusCode: 502 })
  t.ok(sent < 40 * MiB, `stopped reading after the crash (${sent / MiB} MiB read)`)
  t.same(await listKeys(client, bucket), [], 'nothing committed')
  await expectNoPendingUploads(t, server, client, bucket)
})

for (const size of [MiB, 10_000]) {
  t.test(`a worker thread that dies during a small file's PutObject (${size} B): sent again from the main thread, and the object its thread had sent is known as this upload's`, { skip }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    // The thread's PutObject is held 2 s at the proxy and then carried out (its socket outlives
    // the thread's end); the main thread's, held 4 s, meets that object: 412, then a look at it.
    const proxy = await startFaultProxy({ target: server.endpoint })
    t.teardown(async () => { await proxy.close() })
    proxy.setRules([
      { match: isPutObject, fault: { kind: 'delay', ms: 2000 }, times: 1 },
      { match: isPutObject, fault: { kind: 'delay', ms: 4000 }, times: 1 }
    ])
    const config = configOf({ bucket, s3: { ...pluginS3Options(server), endpoint: proxy.endpoint }, workers: { minThreads: 1, maxThreads: 1 } })
    const sender = createWorkerPoolSender(config, createS3Client(config.s3))
    const s3 = createS3Client(config.s3)
    t.teardown(async () => { await sender.close(); s3.destroy() })
    // As in workers mode: whole part buffers are shared (a file under 64 KiB stays in a buffer of its own, copied to the thread).
    const buffers = new PartBufferPool(64 * MiB, { shared: true })
    const data = randomBytes(size)
    async function * source (): AsyncGenerator<Uint8Array> { yield data }
    const upload = uploadStream(source(), { bucket, key: 'held.bin', contentType: 'application/octet-stream', overwrite: false }, threadDeps(config, sender, s3, 'CRC32', buffers))
    for (let wait = 0; wait < 60 && proxy.stats().faults.delay === 0; wait++) await sleep(50)
    t.equal(proxy.stats().faults.delay, 1, 'the PutObject reached the proxy, from the thread')
    await Promise.all(sender.pool.threads.map(async (thread) => await thread.terminate()))
    const outcome = await upload
    t.equal(outcome.parts, 0, 'stored as one PutObject')
    t.equal(proxy.stats().faults.delay, 2, 'sent twice: by the thread, then by the main thread')
    t.same(await listKeys(client, bucket), ['held.bin'])
    t.equal((await objectDigest(client, bucket, 'held.bin')).sha256, sha256(data), 'the object holds the bytes')
    t.equal(buffers.used, 0, 'the buffer is back in the pool')
  })
}

for (const mode of ['workers', 'inline'] as const) {
  t.test(`mode ${mode}: a route handler that throws after s3File() started leaves nothing`, { skip }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const { app, url } = await startApp(t, server, { bucket, mode }, (app) => {
      app.post('/throws', async (request) => {
        const upload = request.s3File()
        upload.catch(() => {})
        await sleep(50)
        throw new Error('the handler failed')
      })
    })
    const response = await postMultipart(`${url}/throws`, [{ name: 'file', filename: 'doomed.bin', data: randomBytes(40 * MiB) }]).catch((error: Error) => error)
    t.ok(response instanceof Error || response.status === 500, `the client got 500 or a closed connection (${response instanceof Error ? response.message : response.status})`)
    for (let i = 0; i < 100 && app.s3Chunk.stats().uploadsInFlight > 0; i++) await sleep(100)
    t.equal(app.s3Chunk.stats().uploadsInFlight, 0, 'the upload ended')
    t.equal(app.s3Chunk.stats().bufferedBytes, 0)
    t.same(await listKeys(client, bucket), [], 'nothing committed')
    await expectNoPendingUploads(t, server, client, bucket)
  })

  t.test(`mode ${mode}: maxBufferedBytes caps part memory over concurrent uploads`, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const { app, url } = await startApp(t, server, { bucket, mode, maxBufferedBytes: 15 * MiB, partConcurrency: 4 })
    const files = [0, 1, 2, 3].map(() => randomBytes(30 * MiB))
    const responses = await Promise.all(files.map(async (data, i) => await postMultipart(`${url}/upload`, [{ name: 'file', filename: `c${i}.bin`, data }])))
    t.same(responses.map((r) => r.status), [200, 200, 200, 200])
    const stats = app.s3Chunk.stats()
    t.ok(stats.peakBufferedBytes <= 15 * MiB, `peak ${stats.peakBufferedBytes / MiB} MiB ≤ 15 MiB over 4 × 30 MiB at once`)
    t.equal(stats.bufferedBytes, 0)
    t.equal(stats.partsWaitingForMemory, 0)
    await expectNoPendingUploads(t, server, client, bucket)
  })
}
