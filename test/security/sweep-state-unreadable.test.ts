// Found by an attack run (helper-47, 2026-12-07; failed before the fix): abortStaleUploads() reads each tus state with readTusState(), which swallows
// every error (maintenance.ts: `catch { return null }`) and the state is then just skipped —
// neither swept nor counted live. Its multipart upload then looks like any stale one and is
// aborted by age. A store answering 503 SlowDown to that one GET (after the SDK's own retries)
// makes the sweep kill a live tus upload: HEAD still says 6 MiB stored, the next PATCH fails.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { isGetObject } from '../support/fault-proxy.ts'
import { freshBucket, needsStrictS3, testClient, testS3 } from '../support/s3.ts'
import { createUpload, isTusState, patchUpload, startTusBehindProxy, tusRequest } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

t.test('a sweep whose read of a live tus state fails does not abort that upload', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { app, endpoint, proxy } = await startTusBehindProxy(t, server, bucket)
  const data = randomBytes(12 * MiB)
  const url = await createUpload(endpoint, data.byteLength)
  t.equal((await patchUpload(url, 0, data.subarray(0, 6 * MiB))).status, 204, 'the first PATCH stores a part')
  await new Promise((resolve) => setTimeout(resolve, 1500))
  // S3 throttles the sweep's GETs of state objects (SlowDown on each attempt of that one read).
  proxy.setRules([{ match: (r) => isGetObject(r) && isTusState(r), fault: { kind: 'status', status: 503, code: 'SlowDown' }, times: 10 }])
  const failure = await app.s3Chunk.abortStaleUploads({ olderThan: 1000 }).then(() => null, (error: unknown) => error as { code?: string, swept?: { aborted: unknown[] }, failedBuckets?: Array<{ bucket: string, error: { code?: string, message?: string } }> })
  proxy.setRules([])
  t.equal(failure?.failedBuckets?.[0]?.bucket, bucket, 'the sweep says it could not sweep the bucket')
  t.match(failure?.failedBuckets?.[0]?.error, { code: 'FST_S3CHUNK_BUCKET_CALL', message: /GetObject: SlowDown/ }, 'for the state S3 would not give')
  t.same(failure?.swept?.aborted, [], 'the sweep aborted no live upload')
  const head = await tusRequest(url, 'HEAD')
  t.equal(head.status, 200, 'the upload is alive')
  t.equal(head.headers.get('upload-offset'), String(6 * MiB), 'HEAD says 6 MiB stored')
  const rest = await patchUpload(url, 6 * MiB, data.subarray(6 * MiB))
  t.equal(rest.status, 204, `the upload can be finished (got ${rest.status} ${await rest.text()})`)
})
