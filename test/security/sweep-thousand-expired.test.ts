// Found reading the sweep (2026-12-06; failed before the fix): every expired tus state and tail
// went to S3 in one DeleteObjects call, and S3 takes at most 1,000 keys per call — past that the
// whole call is refused (MalformedXML), so an app with more than a thousand abandoned tus uploads
// could never sweep any of them again: their objects stayed on the bill forever.
import t from 'tap'
import { freshBucket, needsStrictS3, testClient, testS3 } from '../support/s3.ts'
import { createUpload, startTus, tusLeftovers } from '../support/tus.ts'

const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => { setTimeout(resolve, ms).unref() }) }

t.test('the sweep removes more than 1,000 expired tus uploads', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { app, endpoint } = await startTus(t, server, bucket, { tus: { expiresIn: 1 } })
  const uploads = 1005
  let created = 0
  // 8 at a time, each a small state write: bounded by the count.
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (created < uploads) {
      created++
      await createUpload(endpoint, 1024)
    }
  }))
  t.equal((await tusLeftovers(client, bucket)).length, uploads, 'one state object per upload')
  await sleep(1500)
  const swept = await app.s3Chunk.abortStaleUploads({ olderThan: 60_000 })
  t.equal(swept.deleted.length, uploads, 'every expired state is reported deleted')
  t.same(await tusLeftovers(client, bucket), [], 'and none is left in the bucket')
})
