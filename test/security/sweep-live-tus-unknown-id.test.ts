// Found by two attack runs (helper-34, helper-35, 2026-12-06; both failed before the fix): the
// sweep spared a live tus upload's multipart upload only by the id its state names, and found
// states only under its own prefixes' `.tus/`. So it aborted, by age, (1) the multipart upload
// of a live upload whose state did not name it yet — a PATCH that made it and is in its Complete
// (the finishing mark is the state as before that PATCH) — and (2) every live tus upload of a
// nested registration whose keyPrefix lies below the sweeping one's: the app's root sweep
// killed uploads its HEAD still called alive (the next PATCH 502, the client starting over).
import t from 'tap'
import { randomBytes } from 'node:crypto'
import s3Chunk from 'fastify-s3-chunk'
import { startApp } from '../support/app.ts'
import { isComplete, testFaultProxy } from '../support/fault-proxy.ts'
import { freshBucket, needsStrictS3, openUploads, pluginS3Options, testClient, testS3 } from '../support/s3.ts'
import { createUpload, expectOnlyObject, patchUpload, startTus, tusRequest } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => { setTimeout(resolve, ms).unref() }) }

t.test('a sweep during the Complete of the PATCH that made the multipart upload spares it', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const proxy = await testFaultProxy(t, server.endpoint)
  const { app, endpoint } = await startTus(t, server, bucket, { s3: { ...pluginS3Options(server), endpoint: proxy.endpoint } })
  const data = randomBytes(11 * MiB)
  const url = await createUpload(endpoint, data.byteLength)
  proxy.setRules([{ match: isComplete, fault: { kind: 'delay', ms: 3000 }, times: 1 }])
  const patching = patchUpload(url, 0, data)
  // The body is in and the Complete held up: the state names no multipart upload yet.
  for (let waited = 0; waited < 5000 && (await openUploads(client, bucket)).length === 0; waited += 100) await sleep(100)
  await sleep(1000)
  const swept = await app.s3Chunk.abortStaleUploads({ olderThan: 0 })
  t.same(swept.aborted, [], 'the sweep aborts nothing')
  t.equal((await patching).status, 204, 'the PATCH finishes the upload')
  await expectOnlyObject(t, client, bucket, data)
})

t.test('the root scope\'s sweep spares a live tus upload of a nested registration below its keyPrefix', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { app, url } = await startApp(t, server, { bucket, mode: 'inline', keyPrefix: 'media' }, async (app) => {
    await app.register(async (child) => {
      await child.register(s3Chunk, { s3: pluginS3Options(server), bucket, keyPrefix: 'media/resumable', tus: { prefix: '/files' } })
    })
  })
  const data = randomBytes(12 * MiB)
  const upload = await createUpload(`${url}/files`, data.byteLength)
  t.equal((await patchUpload(upload, 0, data.subarray(0, 6 * MiB))).status, 204, 'the first PATCH stores a part')
  await sleep(1500)
  const swept = await app.s3Chunk.abortStaleUploads({ olderThan: 1000 })
  t.same(swept.aborted, [], 'the root sweep aborts no live tus upload')
  t.equal((await tusRequest(upload, 'HEAD')).status, 200, 'the upload is alive')
  t.equal((await patchUpload(upload, 6 * MiB, data.subarray(6 * MiB))).status, 204, 'and can be finished')
  await expectOnlyObject(t, client, bucket, data)
})
