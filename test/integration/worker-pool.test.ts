// The worker pool: parts are moved to the threads (ArrayBuffers) or read there
// in place (SharedArrayBuffers), never copied, and S3 errors come back rebuilt
// on the main thread.
import t from 'tap'
import { AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand } from '@aws-sdk/client-s3'
import { randomBytes } from 'node:crypto'
import { createWorkerPoolSender } from '../../dist/lib/upload/worker-pool-sender.js'
import { configOf } from '../../dist/lib/options.js'
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
