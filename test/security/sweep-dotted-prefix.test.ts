// Found in review (helper-33, 2026-12-06; failed before the fix) of d6d916a: the sweep tells a tail from a state by '.tail.' anywhere in the
// key and groups tails by the text before the first '.tail.'. With a keyPrefix that contains
// '.tail.' every object under `<prefix>/.tus/` looks like a tail of an "upload" that has no state:
// a live upload's state (idle past olderThan, not expired) and its tail are deleted as orphans.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { freshBucket, needsStrictS3, testClient, testS3 } from '../support/s3.ts'
import { createUpload, patchUpload, startTus, tusLeftovers, tusRequest } from '../support/tus.ts'

const KiB = 1024
const MiB = 1024 * KiB
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => { setTimeout(resolve, ms).unref() }) }

t.test('the sweep spares a live (unexpired) upload under a keyPrefix containing ".tail."', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { app, endpoint } = await startTus(t, server, bucket, { keyPrefix: 'media.tail.v2', tus: { expiresIn: 3600 } })
  const url = await createUpload(endpoint, 8 * MiB)
  const first = await patchUpload(url, 0, randomBytes(100 * KiB))
  t.equal(first.status, 204, 'first PATCH')
  t.comment(`before: ${(await tusLeftovers(client, bucket)).join(' ')}`)
  await sleep(1500)
  // An upload idle for longer than olderThan but well within its Upload-Expires (an hour).
  const swept = await app.s3Chunk.abortStaleUploads({ olderThan: 1000 })
  t.comment(`swept: ${JSON.stringify(swept.deleted.map((o) => o.key))}`)
  t.same(swept.deleted, [], 'the sweep deletes nothing of a live upload')
  const head = await tusRequest(url, 'HEAD')
  t.equal(head.status, 200, `HEAD of the live upload: 200 (got ${head.status})`)
})
