// Found reading the sweep (2026-12-06; failed before the fix): the sweep aborted an expired tus
// upload's multipart upload and treated any error as the bucket failing. A multipart upload
// already gone — aborted by a DELETE whose state removal then failed, by the lifecycle rule, or by
// another instance's sweep running at the same time — answers NoSuchUpload, and the whole sweep
// threw at that state: on every run after, so nothing behind it was ever swept again.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { AbortMultipartUploadCommand } from '@aws-sdk/client-s3'
import { freshBucket, needsStrictS3, pendingUploads, testClient, testS3 } from '../support/s3.ts'
import { createUpload, patchUpload, startTus, tusLeftovers } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => { setTimeout(resolve, ms).unref() }) }

t.test('an expired tus upload whose multipart upload is already gone is swept, and the sweep goes on', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { app, endpoint } = await startTus(t, server, bucket, { tus: { expiresIn: 1 } })
  const urls: string[] = []
  for (let i = 0; i < 2; i++) {
    const url = await createUpload(endpoint, 12 * MiB)
    const patched = await patchUpload(url, 0, randomBytes(5 * MiB))
    t.equal(patched.status, 204, `upload ${i}: one part stored`)
    urls.push(url)
  }
  // Someone else (a lifecycle rule, a concurrent sweep) aborted one of the two multipart uploads.
  const open = await pendingUploads(client, bucket)
  t.equal(open.length, 2, 'two multipart uploads open')
  const gone = open[0] as { key: string, uploadId: string }
  await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: gone.key, UploadId: gone.uploadId }))
  await sleep(1500)
  const swept = await app.s3Chunk.abortStaleUploads({ olderThan: 60_000 })
  t.ok(swept.aborted.some((upload) => upload.uploadId === open[1]?.uploadId), 'the one still open is aborted')
  t.same(await pendingUploads(client, bucket), [], 'no multipart upload left open')
  t.same(await tusLeftovers(client, bucket), [], 'both expired states are removed')
})
