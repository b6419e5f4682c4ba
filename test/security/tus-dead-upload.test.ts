// Found in review (helper-51, 2026-12-07; HEAD 200 and every PATCH 502 until the upload expired,
// before the fix): a finishing PATCH's multipart upload aborted under its Complete (by the
// lifecycle rule, say) while S3 would not answer the look for the object after it. The state
// stays marked "completing" (the outcome unknown), and once its hold lapses, the request that
// finds it settles it: no object, and the multipart upload gone too — it can never finish, so it
// is removed and answered 404 (the client starts over).
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { AbortMultipartUploadCommand } from '@aws-sdk/client-s3'
import { isComplete } from '../support/fault-proxy.ts'
import { expectNoPendingUploads, freshBucket, listKeys, needsStrictS3, testClient, testS3 } from '../support/s3.ts'
import { createUpload, patchUpload, startTusBehindProxy, tusRequest } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

t.test('an upload whose multipart upload went under its Complete, the look after it throttled: 404 once its hold lapses, nothing left', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const hooked: string[] = []
  const { endpoint, proxy } = await startTusBehindProxy(t, server, bucket, {
    retry: { attempts: 3, baseDelayMs: 50, maxDelayMs: 200 },
    tus: { leaseTimeout: 1 },
    onUploadComplete: (file) => { hooked.push(file.key) }
  })
  const data = randomBytes(7 * MiB)
  const url = await createUpload(endpoint, data.byteLength)
  const first = await patchUpload(url, 0, data.subarray(0, 6 * MiB))
  t.equal(first.status, 204, 'the first PATCH stores a part')
  const offset = Number(first.headers.get('upload-offset'))
  let aborted: Promise<unknown> = Promise.resolve()
  proxy.setRules([
    // The Complete waits 500 ms; meanwhile its multipart upload is aborted.
    {
      match: (r) => {
        if (!isComplete(r)) return false
        aborted = client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: decodeURIComponent(r.path.split('/').slice(2).join('/')), UploadId: r.query.get('uploadId') ?? '' }))
        return true
      },
      fault: { kind: 'delay', ms: 500 },
      times: 1
    },
    { match: (r) => r.method === 'HEAD', fault: { kind: 'status', status: 503, code: 'SlowDown' } }
  ])
  const last = await patchUpload(url, offset, data.subarray(offset))
  await aborted
  proxy.setRules([])
  t.equal(last.status, 502, `the finishing PATCH fails retryably (got ${last.status})`)
  // Its hold (leaseTimeout 1 s) lapses twice over.
  await sleep(2500)
  t.equal((await tusRequest(url, 'HEAD')).status, 404, 'HEAD: 404, the client starts over')
  t.equal((await patchUpload(url, offset, data.subarray(offset))).status, 404, 'and a PATCH too')
  t.same(await listKeys(client, bucket), [], 'its state and tail removed; no object')
  t.same(hooked, [], 'no onUploadComplete')
  await expectNoPendingUploads(t, server, client, bucket)
})
