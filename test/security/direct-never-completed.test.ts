// Attack: skip the check by never calling /s3/complete. HTML posted as
// image/png used to stay in the bucket at its final key (the demo listed it
// with a download link), and nothing reclaimed it. Now a POST only reaches
// staging, which nothing lists as a file and the sweep deletes.
import t from 'tap'
import { HeadObjectCommand } from '@aws-sdk/client-s3'
import { expectNoPendingUploads, freshBucket, listKeys, needsStrictS3, objectExists, testClient, testS3 } from '../support/s3.ts'
import { finalOf, params, postToS3, startDirect } from './direct-support.ts'

const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

t.test('a POST never completed is at no final key, and the sweep deletes it once it is old enough', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { app, url, stored } = await startDirect(t, server, bucket, { allowedTypes: ['image/*'] })
  const post = (await params(url, 'alice', 'cat.png', 'image/png')).json
  const posted = await postToS3(post, Buffer.from('<!doctype html><script>alert(1)</script>'))
  t.equal(posted.status, 204, 'S3 took the bytes')
  t.match(post.key, /^media\/\.staging\/alice\//, 'into staging')
  t.notOk(await objectExists(client, bucket, finalOf(post.key)), 'nothing at the final key')
  t.same(await listKeys(client, bucket), [post.key], 'the only object is the staged one')
  t.same(stored, [], 'nothing recorded')

  // An object outside staging is never touched by the sweep.
  await client.send(new HeadObjectCommand({ Bucket: bucket, Key: post.key }))
  const young = await app.s3Chunk.abortStaleUploads({ olderThan: 3600_000 })
  t.same(young.deleted, [], 'a staged object younger than olderThan is left alone')
  t.ok(await objectExists(client, bucket, post.key))
  const swept = await app.s3Chunk.abortStaleUploads({ olderThan: 0 })
  t.same(swept.deleted.map((object) => object.key), [post.key], 'the sweep deletes it')
  t.same(await listKeys(client, bucket), [], 'the bucket is empty')
  await expectNoPendingUploads(t, server, client, bucket)
})

t.test('the sweep leaves completed uploads alone', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { app, url } = await startDirect(t, server, bucket)
  const post = (await params(url, 'alice', 'notes.txt', 'text/plain')).json
  await postToS3(post, Buffer.from('hello'))
  const done = await fetch(`${url}/s3/complete`, { method: 'POST', headers: { 'x-user': 'alice', 'content-type': 'application/json' }, body: JSON.stringify({ key: post.key }) })
  t.equal(done.status, 200)
  const swept = await app.s3Chunk.abortStaleUploads({ olderThan: 0 })
  t.same(swept.deleted, [])
  t.same(await listKeys(client, bucket), [finalOf(post.key)])
})
