// The orphan safety net reaches every place a scope stores to (helper-30 and
// helper-31, 2026-12-06; each failed before the fix). A named rule set, or a
// route's own `config.s3Chunk`, may set its own keyPrefix (or bucket), and
// `tus.rules` may point the tus routes at one — but abortStaleUploads() and
// ensureLifecycleRule() only ever looked under the registration's keyPrefix:
// - the multipart upload a killed process left under a rule set's prefix was
//   never aborted;
// - expired tus uploads under `tus.rules`' prefix were never removed (state,
//   tail and multipart upload left for ever), and with the registration at the
//   bucket's root the age-based abort did not know the live ones: it aborted a
//   live tus upload's multipart upload under it.
import t from 'tap'
import { AbortMultipartUploadCommand, CreateMultipartUploadCommand } from '@aws-sdk/client-s3'
import { randomBytes } from 'node:crypto'
import { startApp } from '../support/app.ts'
import { freshBucket, listKeys, needsStrictS3, openUploads, pendingUploads, testClient, testS3 } from '../support/s3.ts'
import { streamUpload } from '../support/stream-upload.ts'
import { createUpload, patchUpload, startTus, tusRequest } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

// (ensureLifecycleRule() over several prefixes is checked against a mock in test/unit/maintenance.test.ts: MinIO refuses the rules.)
t.test('abortStaleUploads() covers rule sets\' and routes\' own prefixes', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { app, url } = await startApp(t, server, {
    bucket,
    mode: 'inline',
    keyPrefix: 'media',
    rules: { avatars: { keyPrefix: 'avatars' } }
  }, (app) => {
    app.post('/avatars', { config: { s3Chunk: 'avatars' } }, async (request) => await request.s3File())
    app.post('/docs', { config: { s3Chunk: { keyPrefix: 'docs' } } }, async (request) => await request.s3File())
  })
  for (const [path, prefix] of [['/avatars', 'avatars/'], ['/docs', 'docs/']]) {
    const stored = await streamUpload(`${url}${path}`, { seed: 1, size: 1000, filename: 'me.png' })
    t.match((JSON.parse(stored.body) as { key: string }).key, new RegExp(`^${prefix}`), `${path} stores under ${prefix}`)
  }
  // What a process killed mid-upload leaves on each.
  const crashed = ['media', 'avatars', 'docs'].map((prefix) => `${prefix}/crashed_20261206T000000000Z-000000000000.bin`)
  for (const key of crashed) {
    const created = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }))
    t.teardown(async () => { await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: created.UploadId })).catch(() => {}) })
  }
  const { aborted } = await app.s3Chunk.abortStaleUploads({ olderThan: 0 })
  t.same(aborted.map((upload) => upload.key).sort(), [...crashed].sort(), 'each is reclaimed')
  t.same(await openUploads(client, bucket), [], 'no multipart upload left open')

})

t.test('expired tus uploads of a tus.rules rule set are swept', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const { app, endpoint } = await startTus(t, server, bucket, { rules: { tusfiles: { keyPrefix: 'tusfiles' } }, tus: { rules: 'tusfiles', expiresIn: 2 } })
  const url = await createUpload(endpoint, 20 * MiB)
  t.equal((await patchUpload(url, 0, randomBytes(6 * MiB))).status, 204)
  await new Promise((resolve) => setTimeout(resolve, 2500))
  t.equal((await tusRequest(url, 'HEAD')).status, 410, 'expired')
  const swept = await app.s3Chunk.abortStaleUploads({ olderThan: 24 * 3600 * 1000 })
  t.equal(swept.aborted.length, 1, 'its multipart upload aborted by the sweep')
  t.same(await pendingUploads(client, bucket), [], 'no multipart upload left open')
  t.same(await listKeys(client, bucket), [], 'no state or tail left')
})

t.test('the sweep spares a live tus upload of a tus.rules rule set however old its multipart upload is', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const { app, endpoint } = await startTus(t, server, bucket, { rules: { tusfiles: { keyPrefix: 'tusfiles' } }, tus: { rules: 'tusfiles' } })
  const data = randomBytes(7 * MiB)
  const url = await createUpload(endpoint, data.byteLength)
  t.equal((await patchUpload(url, 0, data.subarray(0, 6 * MiB))).status, 204)
  const swept = await app.s3Chunk.abortStaleUploads({ olderThan: 0 })
  t.same(swept.aborted.map((upload) => upload.key), [], 'the live tus upload is not aborted')
  const last = await patchUpload(url, 6 * MiB, data.subarray(6 * MiB))
  t.equal(last.status, 204, 'the upload finishes')
})
