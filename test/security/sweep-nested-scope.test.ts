// Found in review (helper-32, 2026-12-06) of 37f798a: the route locations are collected with an onRoute hook on the
// registration's instance — which, the plugin being fastify-plugin-wrapped, also sees the routes
// of every nested scope, including a nested s3Chunk registration with its own bucket. Such a
// route's config.s3Chunk is layered over the OUTER registration's rules, giving a location the
// app never stores to (outer bucket + the inner route's keyPrefix). The outer scope's
// abortStaleUploads() then aborts another app's multipart upload there (and ensureLifecycleRule()
// writes rules for that prefix into the outer bucket).
import t from 'tap'
import { AbortMultipartUploadCommand, CreateMultipartUploadCommand } from '@aws-sdk/client-s3'
import s3Chunk from 'fastify-s3-chunk'
import { startApp } from '../support/app.ts'
import { freshBucket, needsStrictS3, openUploads, pluginS3Options, testClient, testS3 } from '../support/s3.ts'
import { streamUpload } from '../support/stream-upload.ts'

const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => { setTimeout(resolve, ms).unref() }) }

t.test('the outer scope\'s sweep does not reach a prefix only a nested scope\'s route names (in another bucket)', { skip }, async (t) => {
  const outerBucket = await freshBucket(t, server, client)
  const innerBucket = await freshBucket(t, server, client)
  const { app, url } = await startApp(t, server, { bucket: outerBucket, mode: 'inline', keyPrefix: 'media' }, async (app) => {
    await app.register(async (child) => {
      await child.register(s3Chunk, { s3: pluginS3Options(server), bucket: innerBucket, keyPrefix: 'inner' })
      child.post('/reports', { config: { s3Chunk: { keyPrefix: 'reports' } } }, async (request) => await request.s3File())
    })
  })
  const stored = await streamUpload(`${url}/reports`, { seed: 1, size: 1000, filename: 'r.png' })
  t.comment(`the nested route stores: ${stored.status} ${stored.body}`)
  // Another app shares the outer bucket and uploads under reports/ (a long multipart upload of its own).
  const key = 'reports/other-app-big-export.bin'
  const foreign = await client.send(new CreateMultipartUploadCommand({ Bucket: outerBucket, Key: key }))
  t.teardown(async () => { await client.send(new AbortMultipartUploadCommand({ Bucket: outerBucket, Key: key, UploadId: foreign.UploadId })).catch(() => {}) })
  await sleep(1500)
  const { aborted } = await app.s3Chunk.abortStaleUploads({ olderThan: 1000 })
  t.comment(`aborted: ${JSON.stringify(aborted.map((u) => `${u.key}`))}`)
  t.same(aborted.map((u) => u.key), [], 'nothing of this app is stale in the outer bucket')
  t.same((await openUploads(client, outerBucket)).map((u) => u.key), [key], 'the other app\'s upload (outer bucket, reports/) is still open')
})
