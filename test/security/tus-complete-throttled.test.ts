// Found by an attack run (helper-35, 2026-12-06; failed before the fix): the finishing PATCH's
// CompleteMultipartUpload failing for a moment (S3 503 SlowDown in every attempt) removed the
// whole tus upload — multipart upload aborted, state deleted, HEAD 404 — although a failed
// request is to leave the upload as it found it. tus-js-client then starts the file over.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { isComplete, testFaultProxy } from '../support/fault-proxy.ts'
import { needsStrictS3, freshBucket, pendingUploads, pluginS3Options, testClient, testS3 } from '../support/s3.ts'
import { createUpload, expectOnlyObject, patchUpload, startTus, tusRequest } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)
const throttled = { kind: 'status', status: 503, code: 'SlowDown', message: 'Please reduce your request rate.' } as const

for (const firstPatch of [11 * MiB, 0]) {
  const name = firstPatch > 0 ? 'after an earlier PATCH stored parts' : 'in the one PATCH that made the multipart upload'
  t.test(`a Complete S3 throttles in every attempt ${name}: 502, and the upload resumes from where it was`, { skip }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const proxy = await testFaultProxy(t, server.endpoint)
    const { endpoint } = await startTus(t, server, bucket, { s3: { ...pluginS3Options(server), endpoint: proxy.endpoint }, retry: { attempts: 4, baseDelayMs: 50, maxDelayMs: 200 } })
    const data = randomBytes(12 * MiB)
    const url = await createUpload(endpoint, data.byteLength)
    if (firstPatch > 0) t.equal((await patchUpload(url, 0, data.subarray(0, firstPatch))).status, 204, 'the first 11 MiB are stored')
    proxy.setRules([{ match: isComplete, fault: throttled, times: 6 }])
    const last = await patchUpload(url, firstPatch, data.subarray(firstPatch))
    t.equal(last.status, 502, `the finishing PATCH: 502 (${await last.text()})`)
    proxy.setRules([])
    const head = await tusRequest(url, 'HEAD')
    t.equal(head.status, 200, 'the upload is still there (HEAD 200)')
    t.equal(head.headers.get('upload-offset'), String(firstPatch), 'at the offset before the failed PATCH')
    if (firstPatch === 0) t.same(await pendingUploads(client, bucket), [], 'the multipart upload that PATCH made is aborted (no state names it)')
    const retried = await patchUpload(url, firstPatch, data.subarray(firstPatch))
    t.equal(retried.status, 204, 'the PATCH sent again finishes the upload')
    await expectOnlyObject(t, client, bucket, data)
  })
}
