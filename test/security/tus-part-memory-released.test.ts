// Found in review: a tus PATCH that failed between a part's sealing and its sending — its
// CreateMultipartUpload refused (S3 5xx after retries), the part limit passed, the key taken
// (409) — left that part's buffer counted against maxBufferedBytes for ever: about 52 such
// PATCHes (no S3 failure needed for the 409) took the default 256 MiB budget, and every upload
// after them waited for memory without end. Every part's memory now goes back unless it is sent
// or kept as the tail.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { isCreateMultipart } from '../support/fault-proxy.ts'
import { freshBucket, needsStrictS3, testS3 } from '../support/s3.ts'
import { createUpload, metadataHeader, patchUpload, startTusBehindProxy } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const skip = needsStrictS3(server)

t.test('a tus PATCH whose CreateMultipartUpload fails gives its part buffer back to the budget', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const { app, endpoint, proxy } = await startTusBehindProxy(t, server, bucket, {
    mode: 'inline',
    maxBufferedBytes: 20 * MiB,
    retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 }
  })
  proxy.setRules([{ match: isCreateMultipart, fault: { kind: 'status', status: 500 } }])
  for (let i = 0; i < 4; i++) {
    const url = await createUpload(endpoint, 6 * MiB, { 'upload-metadata': metadataHeader({ filename: `f${i}.bin` }) })
    const answer = await patchUpload(url, 0, randomBytes(6 * MiB))
    t.equal(answer.status, 502, `PATCH ${i}: 502 (S3 refused the create)`)
  }
  await new Promise((resolve) => setTimeout(resolve, 300))
  const stats = app.s3Chunk.stats()
  t.equal(stats.uploadsInFlight, 0, 'nothing in flight')
  t.equal(stats.bufferedBytes, 0, `no part buffer still counted against the budget (bufferedBytes ${stats.bufferedBytes})`)

  // With the budget leaked, a healthy upload after S3 recovered can no longer get memory.
  proxy.setRules([])
  const url = await createUpload(endpoint, 6 * MiB, { 'upload-metadata': metadataHeader({ filename: 'healthy.bin' }) })
  const controller = new AbortController()
  const timer = setTimeout(() => { controller.abort() }, 15_000)
  let status: number | string
  try {
    status = (await fetch(url, { method: 'PATCH', signal: controller.signal, headers: { 'tus-resumable': '1.0.0', 'content-type': 'application/offset+octet-stream', 'upload-offset': '0' }, body: randomBytes(6 * MiB) })).status
  } catch (error) {
    status = `no answer in 15 s (${(error as Error).name})`
  } finally {
    clearTimeout(timer)
  }
  t.equal(status, 204, 'a healthy PATCH once S3 recovered is stored')
})

// The same hole without any S3 failure: a deferred-length upload that goes past maxParts is
// refused (413) at a part that was sealed but never dispatched — its buffer is never given back.
t.test('a deferred-length tus PATCH past maxParts gives its part buffer back to the budget', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const { app, endpoint } = await startTusBehindProxy(t, server, bucket, { mode: 'inline', maxParts: 1, maxBufferedBytes: 20 * MiB })
  const url = await createUpload(endpoint, null, { 'upload-metadata': metadataHeader({ filename: 'deferred.bin' }) })
  const answer = await patchUpload(url, 0, randomBytes(11 * MiB))
  t.equal(answer.status, 413, 'past maxParts: 413')
  await new Promise((resolve) => setTimeout(resolve, 300))
  const stats = app.s3Chunk.stats()
  t.equal(stats.uploadsInFlight, 0, 'nothing in flight')
  t.equal(stats.bufferedBytes, 0, `no part buffer still counted against the budget (bufferedBytes ${stats.bufferedBytes})`)
})

// Without any S3 failure either: an app naming its keys (onFile → { key }) with overwrite off,
// and a client sending a file whose key is taken — 409 from createMultipartUpload's look, its
// first part's buffer leaked each time. 52 such PATCHes take the default 256 MiB budget.
t.test('a tus PATCH refused 409 (key taken) gives its part buffer back to the budget', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const { PutObjectCommand } = await import('@aws-sdk/client-s3')
  const { testClient } = await import('../support/s3.ts')
  await testClient(server).send(new PutObjectCommand({ Bucket: bucket, Key: 'avatars/alice.bin', Body: 'taken' }))
  const { app, endpoint } = await startTusBehindProxy(t, server, bucket, { mode: 'inline', maxBufferedBytes: 20 * MiB, onFile: () => ({ key: 'avatars/alice.bin' }) })
  for (let i = 0; i < 4; i++) {
    const url = await createUpload(endpoint, 6 * MiB, { 'upload-metadata': metadataHeader({ filename: 'alice.bin' }) })
    t.equal((await patchUpload(url, 0, randomBytes(6 * MiB))).status, 409, `PATCH ${i}: 409, the key is taken`)
  }
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(app.s3Chunk.stats().bufferedBytes, 0, `no part buffer still counted against the budget (bufferedBytes ${app.s3Chunk.stats().bufferedBytes})`)
})

// Plain configuration, default workers mode: appendTimestamp off (keys are the sanitised
// filenames), two clients sending files of one name — the second's PATCHes are 409, each leaking.
t.test('workers mode, appendTimestamp off: a second upload of one filename (409) gives its part buffer back', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const { app, endpoint } = await startTusBehindProxy(t, server, bucket, { mode: 'workers', appendTimestamp: false, maxBufferedBytes: 20 * MiB })
  const first = await createUpload(endpoint, 6 * MiB, { 'upload-metadata': metadataHeader({ filename: 'report.pdf' }) })
  t.equal((await patchUpload(first, 0, randomBytes(6 * MiB))).status, 204, 'the first report.pdf is stored')
  for (let i = 0; i < 4; i++) {
    const url = await createUpload(endpoint, 6 * MiB, { 'upload-metadata': metadataHeader({ filename: 'report.pdf' }) })
    t.equal((await patchUpload(url, 0, randomBytes(6 * MiB))).status, 409, `another report.pdf (${i}): 409`)
  }
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(app.s3Chunk.stats().bufferedBytes, 0, `no part buffer still counted against the budget (bufferedBytes ${app.s3Chunk.stats().bufferedBytes})`)
})
