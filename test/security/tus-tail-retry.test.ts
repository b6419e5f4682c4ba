// Found by an attack run (helper-45, 2026-12-07; failed before the fix): one throttled answer (503 SlowDown, which every part of the same
// PATCH would retry) to the tail's PutObject — sent through the upload client (maxAttempts 1) and
// not through withRetries — fails the whole PATCH: its whole parts, already in S3, are dropped and
// the upload is put back where it was before the PATCH, so the client sends every byte again.
// Now the tail's PutObject is retried like a part (its name is its writer's alone).
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { testFaultProxy } from '../support/fault-proxy.ts'
import { freshBucket, needsStrictS3, pluginS3Options, testClient, testS3 } from '../support/s3.ts'
import { createUpload, expectOnlyObject, patchUpload, startTus, tusRequest } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

t.test('one SlowDown on the tail PUT does not throw away the PATCH\'s stored parts', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const proxy = await testFaultProxy(t, server.endpoint)
  proxy.setRules([{ match: (request) => request.method === 'PUT' && request.path.includes('.tail.'), fault: { kind: 'status', status: 503, code: 'SlowDown' }, times: 1 }])
  const { endpoint } = await startTus(t, server, bucket, {
    s3: { ...pluginS3Options(server), endpoint: proxy.endpoint },
    retry: { attempts: 3, baseDelayMs: 10, maxDelayMs: 50 }
  })
  const data = randomBytes(24 * MiB)
  const url = await createUpload(endpoint, data.byteLength)
  const first = await patchUpload(url, 0, data.subarray(0, 20 * MiB + 1))
  t.equal(first.status, 204, `the PATCH is answered 204 (got ${first.status})`)
  const offset = Number((await tusRequest(url, 'HEAD')).headers.get('upload-offset'))
  t.ok(offset >= 20 * MiB, `the 4 whole parts it stored count (offset ${offset})`)
  t.equal((await patchUpload(url, offset, data.subarray(offset))).status, 204)
  await expectOnlyObject(t, client, bucket, data)
})
