// Found by an attack run (helper-35, 2026-12-06; failed before the fix): a PATCH without a body
// took the hold and ran the whole write — the stored tail (up to a part) read from S3 and written
// back as a new generation — so a client could make the server move ~10 MiB per 250-byte request.
// Now such a PATCH is answered from the state; one that declares a deferred length records it.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { testFaultProxy } from '../support/fault-proxy.ts'
import { freshBucket, needsStrictS3, pluginS3Options, testClient, testS3 } from '../support/s3.ts'
import { createUpload, expectOnlyObject, patchUpload, startTus, tusRequest } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

t.test('empty PATCHes do not move the stored tail', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const proxy = await testFaultProxy(t, server.endpoint)
  const tailCalls: string[] = []
  proxy.setRules([{ match: (request) => { if (request.path.includes('.tail.')) tailCalls.push(request.method); return false }, fault: { kind: 'delay', ms: 0 } }])
  const { endpoint } = await startTus(t, server, bucket, { s3: { ...pluginS3Options(server), endpoint: proxy.endpoint } })
  const data = randomBytes(8 * MiB)
  const url = await createUpload(endpoint, data.byteLength)
  const tail = 5 * MiB - 1
  t.equal((await patchUpload(url, 0, data.subarray(0, tail))).status, 204, 'a tail of 5 MiB - 1 is stored')
  tailCalls.length = 0
  for (let i = 0; i < 10; i++) {
    const answer = await patchUpload(url, tail, new Uint8Array(0))
    t.equal(answer.status, 204, `empty PATCH ${i}: 204`)
    t.equal(answer.headers.get('upload-offset'), String(tail), 'at the same offset')
  }
  // With a checksum of no bytes (found in review, helper-37: it made the PATCH a write again).
  const emptySha1 = createHash('sha1').digest('base64')
  const checked = await patchUpload(url, tail, new Uint8Array(0), { 'upload-checksum': `sha1 ${emptySha1}` })
  t.equal(checked.status, 204, 'an empty PATCH with the checksum of no bytes: 204')
  const wrong = await patchUpload(url, tail, new Uint8Array(0), { 'upload-checksum': `sha1 ${createHash('sha1').update('x').digest('base64')}` })
  t.equal(wrong.status, 460, 'one with another checksum: 460')
  t.same(tailCalls, [], 'the tail was neither read nor written')
  t.equal((await patchUpload(url, tail + 1, new Uint8Array(0))).status, 409, 'a wrong offset is still 409')
  t.equal((await patchUpload(url, tail, data.subarray(tail))).status, 204, 'the rest finishes the upload')
  await expectOnlyObject(t, client, bucket, data)
})

t.test('an empty PATCH declaring a deferred length records it; one that makes the upload whole finishes it', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { endpoint } = await startTus(t, server, bucket)
  const data = randomBytes(3 * MiB)
  const url = await createUpload(endpoint, null)
  t.equal((await patchUpload(url, 0, data.subarray(0, MiB))).status, 204, 'the first MiB, length deferred')
  const declared = await patchUpload(url, MiB, new Uint8Array(0), { 'upload-length': String(data.byteLength) })
  t.equal(declared.status, 204, 'an empty PATCH declares the length')
  const head = await tusRequest(url, 'HEAD')
  t.equal(head.headers.get('upload-length'), String(data.byteLength), 'HEAD tells the declared length')
  t.equal(head.headers.get('upload-defer-length'), null, 'and no longer a deferred one')
  t.equal((await patchUpload(url, MiB, data.subarray(MiB))).status, 204, 'the rest finishes the upload')
  await expectOnlyObject(t, client, bucket, data)

  const bucket2 = await freshBucket(t, server, client)
  const second = await startTus(t, server, bucket2)
  const whole = await createUpload(second.endpoint, null)
  t.equal((await patchUpload(whole, 0, data)).status, 204, 'all of it, length deferred')
  const finishing = await patchUpload(whole, data.byteLength, new Uint8Array(0), { 'upload-length': String(data.byteLength) })
  t.equal(finishing.status, 204, 'the empty PATCH declaring length = offset finishes the upload')
  await expectOnlyObject(t, client, bucket2, data)
})
