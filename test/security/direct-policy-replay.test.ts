// Attack: a presigned POST policy stays valid until it expires. Posted again
// after /s3/complete checked the object, it used to replace the checked image
// with HTML (204), and the record onUploadComplete made then pointed at
// unchecked bytes. Now the policy only ever reaches staging: the recorded
// object stays byte-identical, and completing again is refused.
import t from 'tap'
import { GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3'
import { copyChecked } from '../../lib/direct/promote.ts'
import { pngBytes } from '../support/samples.ts'
import { expectNoPendingUploads, freshBucket, listKeys, needsStrictS3, objectDigest, objectExists, sha256, testClient, testS3 } from '../support/s3.ts'
import { api, finalOf, params, postToS3, startDirect } from './direct-support.ts'

const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

const html = Buffer.from('<!doctype html><title>owned</title><script>alert(document.domain)</script>')

for (const allowedTypes of [['image/*'], undefined]) {
  t.test(`re-posting a completed upload's policy never changes the recorded object (allowedTypes ${JSON.stringify(allowedTypes)})`, { skip }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const { url, stored } = await startDirect(t, server, bucket, allowedTypes === undefined ? {} : { allowedTypes })
    const png = pngBytes(50_000)
    const post = (await params(url, 'alice', 'cat.png', 'image/png')).json
    t.equal((await postToS3(post, png)).status, 204)
    const done = await api(`${url}/s3/complete`, 'alice', 'POST', { key: post.key })
    t.equal(done.status, 200, JSON.stringify(done.json))
    const final = done.json.file.key
    t.equal(final, finalOf(post.key), 'recorded at the final key')

    // The replay: S3 still takes the policy, but it can only write to staging.
    const replay = await postToS3(post, html)
    t.equal(replay.status, 204, 'S3 accepts the old policy (it has not expired)')
    t.equal((await objectDigest(client, bucket, final)).sha256, sha256(png), 'the recorded object is byte-identical')
    t.equal((await client.send(new HeadObjectCommand({ Bucket: bucket, Key: final }))).ContentType, 'image/png')

    // Completing the replay: refused, and the staged bytes deleted.
    const again = await api(`${url}/s3/complete`, 'alice', 'POST', { key: post.key })
    t.ok(again.status === 409 || again.status === 422, `completing the replay is refused (${again.status} ${again.json?.code})`)
    t.notOk(await objectExists(client, bucket, post.key), 'the staged replay was deleted')

    // A replay with another valid image: refused too, never replaces.
    t.equal((await postToS3(post, pngBytes(60_000))).status, 204)
    const third = await api(`${url}/s3/complete`, 'alice', 'POST', { key: post.key })
    t.equal(third.status, 409, 'the final key is taken')
    t.match(third.json, { code: 'FST_S3CHUNK_KEY_EXISTS' })
    t.equal((await objectDigest(client, bucket, final)).sha256, sha256(png), 'still byte-identical')
    t.same(await listKeys(client, bucket), [final], 'nothing left in staging')
    t.equal(stored.length, 1, 'onUploadComplete fired once')
    await expectNoPendingUploads(t, server, client, bucket)
  })
}

// The window between the check and the copy: a staged object replaced after it
// was checked is never copied (the copy is pinned to the checked ETag).
t.test('a staged object replaced after its check is not promoted', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { url } = await startDirect(t, server, bucket, { allowedTypes: ['image/*'] })
  const post = (await params(url, 'alice', 'cat.png', 'image/png')).json
  await postToS3(post, pngBytes(5000))
  const checkedEtag = (await client.send(new HeadObjectCommand({ Bucket: bucket, Key: post.key }))).ETag as string
  await postToS3(post, html) // the swap, between check and copy
  const final = finalOf(post.key)
  await t.rejects(copyChecked({
    bucket, source: post.key, sourceEtag: checkedEtag, size: 5000, key: final, contentType: 'image/png', metadata: {}, ifNoneMatch: true
  }, { client, retry: { attempts: 1, baseDelayMs: 0, maxDelayMs: 0 } }), { code: 'FST_S3CHUNK_STORAGE', s3: { operation: 'CopyObject', status: 412 } })
  t.notOk(await objectExists(client, bucket, final), 'nothing reached the final key')
  // The multipart copy (objects over 5 GiB) is pinned the same way, part by part.
  await t.rejects(copyChecked({
    bucket, source: post.key, sourceEtag: checkedEtag, size: html.byteLength, key: final, contentType: 'image/png', metadata: {}, ifNoneMatch: true
  }, { client, retry: { attempts: 1, baseDelayMs: 0, maxDelayMs: 0 }, copyLimit: 10, partSize: 5 * 1024 * 1024 }), { code: 'FST_S3CHUNK_STORAGE', s3: { operation: 'UploadPartCopy', status: 412 } })
  t.notOk(await objectExists(client, bucket, final), 'nothing reached the final key')
  await expectNoPendingUploads(t, server, client, bucket)
})

t.test('the multipart copy (over 5 GiB in production) promotes byte-identical, with the checked type, conditionally', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { url } = await startDirect(t, server, bucket)
  const MiB = 1024 * 1024
  const data = Buffer.concat([pngBytes(1000), Buffer.alloc(12 * MiB - 1000, 7)])
  const post = (await params(url, 'alice', 'big.png', 'image/png')).json
  t.equal((await postToS3(post, data)).status, 204)
  const etag = (await client.send(new HeadObjectCommand({ Bucket: bucket, Key: post.key }))).ETag as string
  const final = finalOf(post.key)
  const job = { bucket, source: post.key, sourceEtag: etag, size: data.byteLength, key: final, contentType: 'image/png', metadata: { 'original-name': 'big.png' }, ifNoneMatch: true }
  const options = { client, retry: { attempts: 2, baseDelayMs: 0, maxDelayMs: 0 }, copyLimit: 5 * MiB, partSize: 5 * MiB, concurrency: 2 }
  const copied = await copyChecked(job, options)
  t.equal(copied.parts, 3, 'three UploadPartCopy parts')
  const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: final }))
  t.equal(object.ContentType, 'image/png')
  t.same(object.Metadata, { 'original-name': 'big.png' })
  await object.Body?.transformToByteArray()
  t.equal((await objectDigest(client, bucket, final)).sha256, sha256(data), 'byte-identical')
  await t.rejects(copyChecked(job, options), { code: 'FST_S3CHUNK_STORAGE', s3: { operation: 'CompleteMultipartUpload', status: 412 } }, 'a second copy to the taken key fails (If-None-Match on Complete)')
  // In place (a multipart upload's type rewritten after its check): the same bytes, the new type.
  const finalEtag = (await client.send(new HeadObjectCommand({ Bucket: bucket, Key: final }))).ETag as string
  const rewritten = await copyChecked({ ...job, source: final, sourceEtag: finalEtag, key: final, contentType: 'application/octet-stream', ifNoneMatch: false }, options)
  t.equal(rewritten.parts, 3)
  t.equal((await client.send(new HeadObjectCommand({ Bucket: bucket, Key: final }))).ContentType, 'application/octet-stream')
  t.equal((await objectDigest(client, bucket, final)).sha256, sha256(data), 'byte-identical after an in-place multipart copy')
  await expectNoPendingUploads(t, server, client, bucket)
})

t.test('overwrite: true drops the condition: a re-completed policy replaces the object with another checked one, never unchecked bytes', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { url, stored } = await startDirect(t, server, bucket, { allowedTypes: ['image/*'], overwrite: true })
  const post = (await params(url, 'alice', 'cat.png', 'image/png')).json
  await postToS3(post, pngBytes(5000))
  t.equal((await api(`${url}/s3/complete`, 'alice', 'POST', { key: post.key })).status, 200)
  const second = pngBytes(7000)
  await postToS3(post, second)
  t.equal((await api(`${url}/s3/complete`, 'alice', 'POST', { key: post.key })).status, 200, 'replaced: what overwrite means')
  t.equal((await objectDigest(client, bucket, finalOf(post.key))).sha256, sha256(second))
  await postToS3(post, html)
  t.equal((await api(`${url}/s3/complete`, 'alice', 'POST', { key: post.key })).status, 422, 'unchecked bytes never reach the final key')
  t.equal((await objectDigest(client, bucket, finalOf(post.key))).sha256, sha256(second))
  t.equal(stored.length, 2, 'the hook fired for each checked object')
})
