// Attack: terminate (DELETE) a tus upload while one of its PATCHes runs — after the PATCH has
// made the upload's multipart upload (its first whole part in S3) and before it records it in
// the state. The PATCH can no longer record it, and must abort it: a multipart upload no state
// names is on the bucket's bill until a lifecycle rule or the sweep finds it. (This left one
// open before 67c6ea7.)
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { freshBucket, listKeys, needsStrictS3, pendingUploads, testClient, testS3 } from '../support/s3.ts'
import { createUpload, expectClean, startTus, tusRequest } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

t.test('termination while a PATCH runs: the PATCH is refused and leaves no multipart upload behind', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const { endpoint } = await startTus(t, server, bucket)
  const url = await createUpload(endpoint, 20 * MiB)
  const answered = new Promise<number>((resolve, reject) => {
    const request = httpRequest(url, { method: 'PATCH', headers: { 'tus-resumable': '1.0.0', 'upload-offset': '0', 'content-type': 'application/offset+octet-stream', 'content-length': String(7 * MiB) } }, (response) => {
      response.resume()
      resolve(response.statusCode ?? 0)
    })
    request.on('error', reject)
    request.write(randomBytes(6 * MiB))
    t.teardown(() => { request.destroy() })
    void (async () => {
      // Bounded: the part is in S3 (its multipart upload listed) within 10 s, or the test fails below.
      for (let round = 0; round < 100 && (await pendingUploads(client, bucket)).length === 0; round++) await new Promise((resolve) => setTimeout(resolve, 100))
      t.equal((await pendingUploads(client, bucket)).length, 1, 'the PATCH made the multipart upload')
      t.equal((await tusRequest(url, 'DELETE')).status, 204, 'DELETE while the PATCH runs')
      request.end(randomBytes(MiB))
    })().catch(reject)
  })
  const status = await answered
  t.ok(status === 404 || status === 409, `the PATCH is refused (${status}): its upload is gone`)
  t.equal((await tusRequest(url, 'HEAD')).status, 404)
  t.same(await listKeys(client, bucket), [])
  await expectClean(t, client, bucket)
})
