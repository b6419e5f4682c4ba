// Attack (helper-31, 2026-12-06; failed before the fix): Upload-Expires is "renewed by each
// PATCH", and abortStaleUploads() "spares live ones" — but a PATCH still streaming (holding the
// upload, renewing its hold) did not move `expires`: HEAD answered 410 meanwhile, and the sweep,
// run while it streamed, aborted its multipart upload and deleted its state under it (the PATCH
// then failed 409). A held upload is live, and each renewal pushes Upload-Expires on.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { freshBucket, listKeys, needsStrictS3, objectDigest, sha256, testClient, testS3 } from '../support/s3.ts'
import { createUpload, expectClean, startTus, tusRequest } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => { setTimeout(resolve, ms).unref() }) }

t.test('the sweep during a PATCH that is still streaming does not destroy the upload', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const { app, endpoint } = await startTus(t, server, bucket, { tus: { expiresIn: 2 } })
  const data = randomBytes(12 * MiB)
  const url = await createUpload(endpoint, data.byteLength)
  const target = new URL(url)
  const answer = new Promise<{ status: number, body: string }>((resolve, reject) => {
    const request = httpRequest({
      host: target.hostname,
      port: target.port,
      path: target.pathname,
      method: 'PATCH',
      headers: { 'tus-resumable': '1.0.0', 'content-type': 'application/offset+octet-stream', 'upload-offset': '0', 'content-length': String(data.byteLength) }
    }, (response) => {
      let body = ''
      response.on('data', (chunk: Buffer) => { body += chunk.toString() })
      response.on('end', () => { resolve({ status: response.statusCode ?? 0, body }) })
    })
    request.on('error', reject)
    // The first 6 MiB now, the rest once the creation's Upload-Expires has passed and the sweep ran.
    request.write(data.subarray(0, 6 * MiB))
    void (async () => {
      await sleep(3000)
      const head = await tusRequest(url, 'HEAD')
      t.equal(head.status, 200, 'HEAD while the PATCH streams past the creation\'s Upload-Expires: 200, not 410')
      const swept = await app.s3Chunk.abortStaleUploads({ olderThan: 24 * 3600 * 1000 })
      t.same(swept.aborted, [], 'the sweep aborts nothing')
      t.same(swept.deleted, [], 'and deletes nothing')
      await sleep(300)
      request.end(data.subarray(6 * MiB))
    })()
  })
  const done = await Promise.race([answer, sleep(60_000).then(() => ({ status: -1, body: 'timeout' }))])
  t.equal(done.status, 204, `the running PATCH finishes the upload (got ${done.status} ${done.body})`)
  const keys = (await listKeys(client, bucket)).filter((key) => !key.includes('.tus'))
  t.equal(keys.length, 1, 'one object stored')
  if (keys.length === 1) t.equal((await objectDigest(client, bucket, keys[0] as string)).sha256, sha256(data), 'byte-identical')
  await expectClean(t, client, bucket)
})
