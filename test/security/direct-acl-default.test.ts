// Every presigned POST used to pin `acl=private`, which a new AWS bucket (ACLs
// disabled, "bucket owner enforced") refuses with AccessControlListNotSupported
// — MinIO does not, so no test saw it — and direct.acl never reached multipart
// uploads. Now no ACL is sent unless direct.acl is set, and then on every
// write: the POST policy, the promotion copy, the multipart create. What each
// S3 request carried is read at a recording proxy in front of MinIO.
import t from 'tap'
import { HeadObjectCommand } from '@aws-sdk/client-s3'
import { startFaultProxy, type FaultRequest } from '../support/fault-proxy.ts'
import { pngBytes } from '../support/samples.ts'
import { expectNoPendingUploads, freshBucket, needsStrictS3, pluginS3Options, testClient, testS3 } from '../support/s3.ts'
import { api, params, postToS3, startDirect } from './direct-support.ts'

const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

function policyOf (fields: Record<string, string>): { conditions: unknown[] } {
  return JSON.parse(Buffer.from(fields.Policy as string, 'base64').toString('utf8'))
}

const hasAcl = (condition: unknown): boolean => JSON.stringify(condition).includes('acl')

for (const acl of [undefined, 'private'] as const) {
  t.test(`direct.acl ${acl ?? 'unset'}: ${acl === undefined ? 'no ACL anywhere' : 'the ACL on every write'}`, { skip }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const proxy = await startFaultProxy({ target: server.endpoint })
    t.teardown(() => proxy.close())
    const seen: Array<{ method: string, copy: boolean, create: boolean, acl: string | undefined }> = []
    const record = (request: FaultRequest): boolean => {
      const value = request.headers['x-amz-acl']
      seen.push({ method: request.method, copy: request.headers['x-amz-copy-source'] !== undefined, create: request.query.has('uploads'), acl: typeof value === 'string' ? value : undefined })
      return false
    }
    proxy.setRules([{ match: record, fault: { kind: 'delay', ms: 0 } }])
    const { url } = await startDirect(t, server, bucket, { s3: { ...pluginS3Options(server), endpoint: proxy.endpoint } }, acl === undefined ? {} : { acl })

    const post = (await params(url, 'alice', 'cat.png', 'image/png')).json
    const conditions = policyOf(post.fields).conditions
    if (acl === undefined) {
      t.notOk(conditions.some(hasAcl), 'the POST policy has no acl condition')
      t.notOk('acl' in post.fields, 'and no acl field')
    } else {
      t.ok(conditions.some((c) => JSON.stringify(c) === JSON.stringify({ acl })), 'the POST policy pins the acl')
      t.equal(post.fields.acl, acl)
    }
    t.equal((await postToS3(post, pngBytes(2000))).status, 204)
    t.equal((await api(`${url}/s3/complete`, 'alice', 'POST', { key: post.key })).status, 200)
    const created = (await api(`${url}/s3/multipart`, 'alice', 'POST', { filename: 'big.bin', type: 'application/octet-stream', size: 1024 })).json
    t.equal((await api(`${url}/s3/multipart/${created.uploadId}?key=${encodeURIComponent(created.key)}`, 'alice', 'DELETE')).status, 200)

    const copy = seen.filter((request) => request.copy)
    const create = seen.filter((request) => request.create)
    t.equal(copy.length, 1, 'one promotion copy')
    t.equal(create.length, 1, 'one multipart create')
    t.same([...copy, ...create].map((request) => request.acl), [acl, acl], `x-amz-acl: ${acl ?? 'absent'} on the copy and the create`)
    await expectNoPendingUploads(t, server, client, bucket)
  })
}

t.test('Uppy metadata: allowlisted fields stored percent-encoded and pinned in the policy; others dropped; bounded', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { url, stored } = await startDirect(t, server, bucket, {}, { metadataFields: ['caption'] })
  const caption = 'Zoë at the café\r\nx-amz-acl: public-read'
  const post = await params(url, 'alice', 'cat.png', 'image/png', { caption, secret: 'dropped', name: 'cat.png' })
  t.equal(post.status, 200)
  t.equal(post.json.fields['x-amz-meta-caption'], encodeURIComponent(caption), 'percent-encoded: ASCII, no CR/LF')
  t.notOk('x-amz-meta-secret' in post.json.fields, 'a field not in the allowlist is dropped')
  t.ok(policyOf(post.json.fields).conditions.some((c) => JSON.stringify(c) === JSON.stringify(['eq', '$x-amz-meta-caption', encodeURIComponent(caption)])), 'pinned in the policy')
  // Changing the caption at S3 breaks the policy.
  t.equal((await postToS3(post.json, pngBytes(1000), { 'x-amz-meta-caption': 'other' })).status, 403, 'S3 refuses another caption')
  t.equal((await postToS3(post.json, pngBytes(1000))).status, 204)
  const done = await api(`${url}/s3/complete`, 'alice', 'POST', { key: post.json.key })
  t.equal(done.status, 200)
  t.same(done.json.file.metadata, { caption }, 'the recorded file carries the caption, decoded')
  t.same(stored[0]?.metadata, { caption })
  const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: done.json.file.key }))
  t.same(head.Metadata, { 'original-name': 'cat.png', caption: encodeURIComponent(caption) }, 'the final object: the filename and the caption only')

  const multipart = await api(`${url}/s3/multipart`, 'alice', 'POST', { filename: 'big.bin', type: 'application/octet-stream', size: 1024, metadata: { caption: 'hi', other: 'x' } })
  t.equal(multipart.status, 200)
  const q = `key=${encodeURIComponent(multipart.json.key)}`
  t.equal((await api(`${url}/s3/multipart/${multipart.json.uploadId}?${q}`, 'alice', 'DELETE')).status, 200)

  const big = await params(url, 'alice', 'cat.png', 'image/png', { caption: 'x'.repeat(2100) })
  t.equal(big.status, 400, 'over S3\'s 2 KiB of user metadata')
  t.match(big.json, { code: 'FST_S3CHUNK_BAD_REQUEST', message: /2048/ })
  t.equal((await api(`${url}/s3/multipart`, 'alice', 'POST', { filename: 'a.bin', size: 1024, metadata: { caption: { nested: true } } })).status, 400, 'a value that is not a string')
  await expectNoPendingUploads(t, server, client, bucket)
})
