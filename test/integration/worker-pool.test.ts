// The worker pool: parts — and the PutObject of a file of one part — are moved
// to the threads (ArrayBuffers) or read there in place (SharedArrayBuffers),
// never copied, and S3 errors come back rebuilt on the main thread.
import t from 'tap'
import { AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { randomBytes } from 'node:crypto'
import { createWorkerPoolSender } from '../../dist/lib/upload/worker-pool-sender.js'
import { configOf } from '../../dist/lib/options.js'
import { startApp } from '../support/app.ts'
import { postMultipart } from '../support/multipart.ts'
import { expectNoPendingUploads, freshBucket, needsStrictS3, objectDigest, pluginS3Options, sha256, testClient, testS3 } from '../support/s3.ts'

const server = await testS3()
const client = testClient(server)

t.test('a part is transferred to the worker (the ArrayBuffer detaches) and stored', async (t) => {
  const bucket = await freshBucket(t, server, client)
  const sender = createWorkerPoolSender(configOf({ bucket, s3: pluginS3Options(server) }))
  t.teardown(() => sender.close())
  const key = 'moved.bin'
  const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }))
  const data = randomBytes(1000)
  const body = new ArrayBuffer(4096)
  new Uint8Array(body).set(data)
  const done = await sender.send({ bucket, key, uploadId: UploadId as string, partNumber: 1, body, length: data.byteLength })
  t.equal(body.byteLength, 0, 'the buffer was moved to the thread, not copied')
  t.match(done.etag, /^"[0-9a-f]{32}"$/)
  await client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: done.etag }] } }))
  const stored = await objectDigest(client, bucket, key)
  t.equal(stored.size, 1000, 'only `length` bytes were sent')
  t.equal(stored.sha256, sha256(data))
  t.equal(sender.stats()?.completed, 1)
  await expectNoPendingUploads(t, server, client, bucket)
})

t.test('a shared part is read by the worker in place: stored, and the same buffer handed back', async (t) => {
  const bucket = await freshBucket(t, server, client)
  const sender = createWorkerPoolSender(configOf({ bucket, s3: pluginS3Options(server) }))
  t.teardown(() => sender.close())
  const key = 'shared.bin'
  const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }))
  const data = randomBytes(100_000)
  const body = new SharedArrayBuffer(128 * 1024)
  new Uint8Array(body).set(data)
  const done = await sender.send({ bucket, key, uploadId: UploadId as string, partNumber: 1, body, length: data.byteLength })
  t.equal(done.body, body, 'the very SharedArrayBuffer comes back, for the next part')
  t.equal(body.byteLength, 128 * 1024, 'nothing was moved')
  await client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: done.etag }] } }))
  const stored = await objectDigest(client, bucket, key)
  t.equal(stored.size, 100_000, 'only `length` bytes were sent')
  t.equal(stored.sha256, sha256(data))
  await expectNoPendingUploads(t, server, client, bucket)
})

t.test('a shared part whose upload fails comes back with the failure', { skip: needsStrictS3(server) }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const sender = createWorkerPoolSender(configOf({ bucket, s3: pluginS3Options(server) }))
  t.teardown(() => sender.close())
  const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'k' }))
  await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'k', UploadId }))
  const body = new SharedArrayBuffer(10)
  const failure = await sender.send({ bucket, key: 'k', uploadId: UploadId as string, partNumber: 1, body, length: 10 }).then(() => null, (error: unknown) => error)
  t.match(failure, { code: 'FST_S3CHUNK_STORAGE', s3: { code: 'NoSuchUpload' } })
  t.equal((failure as { partBuffer?: unknown }).partBuffer, body, 'the failure carries the same buffer back')
})

t.test('an S3 error in a worker comes back as a StorageFailure with its code', { skip: needsStrictS3(server) }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const sender = createWorkerPoolSender(configOf({ bucket, s3: pluginS3Options(server) }))
  t.teardown(() => sender.close())
  const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'k' }))
  await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'k', UploadId }))
  await t.rejects(sender.send({ bucket, key: 'k', uploadId: UploadId as string, partNumber: 1, body: new ArrayBuffer(10), length: 10 }), {
    code: 'FST_S3CHUNK_STORAGE',
    statusCode: 502,
    s3: { operation: 'UploadPart', code: 'NoSuchUpload', status: 404, retryable: false }
  })
})

t.test('a file of one part is put by a thread: its bytes copied there (never moved), stored with the CRC32 the thread computed', async (t) => {
  const bucket = await freshBucket(t, server, client)
  const sender = createWorkerPoolSender(configOf({ bucket, s3: pluginS3Options(server) }))
  t.teardown(() => sender.close())
  const data = randomBytes(3000)
  const body = new ArrayBuffer(4096)
  new Uint8Array(body).set(data)
  const done = await sender.put({ input: { Bucket: bucket, Key: 'small.bin', ContentType: 'application/x-test', IfNoneMatch: '*' }, body, length: data.byteLength, crc32: true })
  t.equal(body.byteLength, 4096, 'the main thread kept the bytes (to send them again should the thread die)')
  t.equal(done.body, body, 'the same buffer comes back, for reuse')
  t.match(done.stored.ETag, /^"[0-9a-f]{32}"$/)
  t.equal(done.attempts, 1)
  const stored = await objectDigest(client, bucket, 'small.bin')
  t.equal(stored.size, 3000, 'only `length` bytes were sent')
  t.equal(stored.sha256, sha256(data))
  const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'small.bin', ChecksumMode: 'ENABLED' }))
  t.equal(head.ContentType, 'application/x-test')
  if (server.kind !== 's3rver') t.equal(head.ChecksumCRC32, done.stored.ChecksumCRC32, 'the CRC32 the thread computed is the one S3 keeps')
  t.equal(sender.stats()?.completed, 1)
})

t.test('a PutObject refused in a thread comes back as a StorageFailure with its status and the buffer', { skip: needsStrictS3(server) }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const sender = createWorkerPoolSender(configOf({ bucket, s3: pluginS3Options(server) }))
  t.teardown(() => sender.close())
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'taken.bin', Body: 'first' }))
  const body = new ArrayBuffer(10)
  const failure = await sender.put({ input: { Bucket: bucket, Key: 'taken.bin', IfNoneMatch: '*' }, body, length: 10, crc32: false }).then(() => null, (error: unknown) => error)
  t.match(failure, { code: 'FST_S3CHUNK_STORAGE', s3: { operation: 'PutObject', status: 412, attempts: 1 } })
  t.equal((failure as { partBuffer?: ArrayBuffer }).partBuffer, body, 'the failure carries the buffer back')
})

t.test('workers mode: a small file through the plugin goes out from a thread, not the main thread', async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { app, url } = await startApp(t, server, { bucket, mode: 'workers' })
  const data = randomBytes(200_000)
  const response = await postMultipart(`${url}/upload`, [{ name: 'file', filename: 'small.bin', contentType: 'application/octet-stream', data }])
  t.equal(response.status, 200, response.body)
  t.equal((JSON.parse(response.body) as { parts: number }).parts, 0, 'one PutObject')
  t.equal(app.s3Chunk.stats().pool?.completed, 1, 'the pool ran it')
  const stored = await objectDigest(client, bucket, (JSON.parse(response.body) as { key: string }).key)
  t.equal(stored.sha256, sha256(data))
})
