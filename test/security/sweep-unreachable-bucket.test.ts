// A registration whose rule sets store to several buckets: abortStaleUploads() threw at the
// first bucket it could not reach (deleted, no permission, another account), and the buckets
// after it were never swept — a crashed upload in a healthy bucket stayed on the bill on every
// run, behind the one broken bucket. Every bucket it can reach is now swept; it then rejects with
// the failure, what it did reclaim and which buckets failed attached.
import t from 'tap'
import { AbortMultipartUploadCommand, CreateMultipartUploadCommand } from '@aws-sdk/client-s3'
import { randomBytes } from 'node:crypto'
import { startApp } from '../support/app.ts'
import { freshBucket, needsStrictS3, openUploads, testClient, testS3 } from '../support/s3.ts'

const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

t.test('a bucket that cannot be reached does not stop the sweep of the others', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  // Swept first (the registration's own bucket), and never created.
  const missing = `missing-${randomBytes(6).toString('hex')}`
  const { app } = await startApp(t, server, {
    bucket: missing,
    mode: 'inline',
    keyPrefix: 'media',
    rules: { avatars: { bucket, keyPrefix: 'avatars' } }
  })
  const key = 'avatars/crashed_20261207T000000000Z-000000000000.bin'
  const created = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }))
  t.teardown(async () => { await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: created.UploadId })).catch(() => {}) })

  const failure = await app.s3Chunk.abortStaleUploads({ olderThan: 0 }).then(() => null, (error: unknown) => error)
  t.ok(failure instanceof Error, 'the sweep rejects: one bucket could not be swept')
  const error = failure as Error & { code?: string, statusCode?: number, failedBuckets?: Array<{ bucket: string, error: Error }>, swept?: { aborted: Array<{ key: string }> } }
  t.equal(error.code, 'FST_S3CHUNK_BUCKET_CALL', 'the plugin\'s bucket-call error')
  t.match((error as { s3?: unknown }).s3, { operation: String, code: 'NoSuchBucket' }, 'the S3 failure, for the log')
  t.same(error.failedBuckets?.map((failed) => failed.bucket), [missing], 'and lists the buckets that failed')
  t.same(error.swept?.aborted.map((upload) => upload.key), [key], 'with what the sweep did reclaim')
  t.same(await openUploads(client, bucket), [], 'the crashed upload in the reachable bucket was aborted')
})
