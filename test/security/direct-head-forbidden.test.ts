// Found in a new user's review (helper-48, 2026-12-07; 502 before the fix): credentials without
// s3:ListBucket — the direct-mode IAM policy the README gives — are answered 403, not 404, by
// AWS for a HeadObject of a key with no object. The look before the promotion copy (for stores
// that ignore If-None-Match on CopyObject, as MinIO does) took that 403 for a storage failure,
// and every POST upload's /s3/complete with `overwrite: false` was 502. A 403 now says
// "cannot tell": the copy's own If-None-Match decides (AWS enforces it). MinIO answers 404
// whatever the policy, so the 403 is played by the fault proxy.
import t from 'tap'
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { testFaultProxy } from '../support/fault-proxy.ts'
import { pngBytes } from '../support/samples.ts'
import { expectNoPendingUploads, freshBucket, listKeys, needsStrictS3, pluginS3Options, testClient, testS3 } from '../support/s3.ts'
import { api, finalOf, params, postToS3, startDirect } from './direct-support.ts'

const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

t.test('a POST upload completes when S3 answers the look at its final key 403 (no s3:ListBucket)', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const proxy = await testFaultProxy(t, server.endpoint)
  const { url, stored } = await startDirect(t, server, bucket, { s3: { ...pluginS3Options(server), endpoint: proxy.endpoint } })
  const post = await params(url, 'alice', 'cat.png', 'image/png')
  t.equal(post.status, 200)
  t.equal((await postToS3(post.json, pngBytes(2000))).status, 204, 'posted to S3')
  // As AWS answers a key with no object to credentials without s3:ListBucket — the listing refused too.
  proxy.setRules([{ match: (request) => (request.method === 'HEAD' && !request.path.includes('/.staging/')) || request.query.get('list-type') === '2', fault: { kind: 'status', status: 403, code: 'AccessDenied', message: 'Access Denied' } }])
  const done = await api(`${url}/s3/complete`, 'alice', 'POST', { key: post.json.key })
  t.equal(done.status, 200, `completed (got ${done.status}: ${JSON.stringify(done.json).slice(0, 200)})`)
  t.ok(proxy.stats().faults.status >= 1, 'the look at the final key was answered 403')
  t.equal(stored.length, 1, 'recorded once')
  t.ok((await listKeys(client, bucket)).includes(done.json.key as string), 'stored at its final key')
  await expectNoPendingUploads(t, server, client, bucket)
})

// The same 403 for the staged object itself (a /s3/complete before, or without, the POST to S3):
// it was a 502 a client retries for ever; it is the 422 of a missing object, which says
// nothing was deleted.
t.test('a /s3/complete whose staged object S3 answers 403 (no s3:ListBucket) is 422, not 502', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const proxy = await testFaultProxy(t, server.endpoint)
  const { url, stored } = await startDirect(t, server, bucket, { s3: { ...pluginS3Options(server), endpoint: proxy.endpoint } })
  const post = await params(url, 'alice', 'never-sent.png', 'image/png')
  proxy.setRules([{ match: (request) => request.method === 'HEAD', fault: { kind: 'status', status: 403, code: 'AccessDenied', message: 'Access Denied' } }])
  const done = await api(`${url}/s3/complete`, 'alice', 'POST', { key: post.json.key })
  t.equal(done.status, 422, `422 (got ${done.status}: ${JSON.stringify(done.json).slice(0, 200)})`)
  t.match(done.json, { code: 'FST_S3CHUNK_UPLOAD_REJECTED', message: /there is no object at that key/ })
  t.notMatch(done.json.message, /deleted/, 'it does not say something was deleted')
  t.equal(stored.length, 0, 'nothing recorded')
})

// The first form of the fix took every 403 for "nothing there": on MinIO, which ignores
// If-None-Match on CopyObject, a 403 for a key that holds an object (credentials that may write
// final keys but not read them) let the copy replace it (found in review, helper-50). A listing
// the credentials may make tells.
t.test('overwrite: false; the final key holds an object; the look at it is 403 but a listing is allowed: 409, nothing replaced', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const proxy = await testFaultProxy(t, server.endpoint)
  const { url, stored } = await startDirect(t, server, bucket, { s3: { ...pluginS3Options(server), endpoint: proxy.endpoint } })
  const post = await params(url, 'alice', 'cat.png', 'image/png')
  const final = finalOf(post.json.key as string)
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: final, Body: 'ORIGINAL', ContentType: 'text/plain' }))
  t.equal((await postToS3(post.json, pngBytes(2000))).status, 204, 'posted to S3')
  proxy.setRules([{ match: (request) => request.method === 'HEAD' && !request.path.includes('/.staging/'), fault: { kind: 'status', status: 403, code: 'AccessDenied', message: 'Access Denied' } }])
  const done = await api(`${url}/s3/complete`, 'alice', 'POST', { key: post.json.key })
  t.equal(done.status, 409, `409 key exists (got ${done.status}: ${JSON.stringify(done.json).slice(0, 200)})`)
  t.equal(await (await client.send(new GetObjectCommand({ Bucket: bucket, Key: final }))).Body?.transformToString(), 'ORIGINAL', 'the object at the final key is not replaced')
  t.equal(stored.length, 0, 'nothing recorded')
})
