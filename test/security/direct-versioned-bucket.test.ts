// Found by an attack run (helper-34, 2026-12-06; failed before the fix): on a versioned bucket a
// plain DeleteObject only adds a delete marker. Bytes direct mode refused ("rejected and
// deleted", 422) stayed stored as a noncurrent version — at the final key for a multipart upload —
// readable by version id, and nothing ever removed them. Now the version that was checked is the
// one deleted (the staged object's after its promotion too).
import t from 'tap'
import { DeleteObjectCommand, ListObjectVersionsCommand, PutBucketVersioningCommand } from '@aws-sdk/client-s3'
import { freshBucket, needsStrictS3, testClient, testS3 } from '../support/s3.ts'
import { pngBytes } from '../support/samples.ts'
import { api, params, postToS3, startDirect } from './direct-support.ts'

const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)
const html = Buffer.from('<!doctype html><title>owned</title><script>alert(document.domain)</script>')

/** Every version and delete marker in the bucket. */
async function versions (bucket: string): Promise<Array<{ key: string, versionId: string, marker: boolean }>> {
  const listed = await client.send(new ListObjectVersionsCommand({ Bucket: bucket }))
  return [
    ...(listed.Versions ?? []).map((v) => ({ key: v.Key as string, versionId: v.VersionId as string, marker: false })),
    ...(listed.DeleteMarkers ?? []).map((v) => ({ key: v.Key as string, versionId: v.VersionId as string, marker: true }))
  ]
}

t.test('versioned bucket: refused bytes leave no version behind, and a promoted upload leaves only its final object', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  await client.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }))
  // freshBucket empties current objects only: the versions go first.
  t.teardown(async () => { for (const v of await versions(bucket)) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: v.key, VersionId: v.versionId })) })
  const d = await startDirect(t, server, bucket, { allowedTypes: ['image/*'] })

  const post = (await params(d.url, 'mallory', 'x.png', 'image/png')).json
  t.equal((await postToS3(post, html)).status, 204, 'HTML posted as image/png')
  t.equal((await api(`${d.url}/s3/complete`, 'mallory', 'POST', { key: post.key })).status, 422, 'refused at /s3/complete')

  const made = (await api(`${d.url}/s3/multipart`, 'mallory', 'POST', { filename: 'y.png', type: 'image/png', size: html.byteLength, metadata: {} })).json
  const signed = (await api(`${d.url}/s3/multipart/${encodeURIComponent(made.uploadId)}/1?key=${encodeURIComponent(made.key)}`, 'mallory')).json
  const part = await fetch(signed.url, { method: 'PUT', body: html })
  const completed = await api(`${d.url}/s3/multipart/${encodeURIComponent(made.uploadId)}/complete?key=${encodeURIComponent(made.key)}`, 'mallory', 'POST', { parts: [{ PartNumber: 1, ETag: part.headers.get('etag') }] })
  t.equal(completed.status, 422, 'refused at the multipart Complete')
  t.same((await versions(bucket)).filter((v) => !v.marker && !v.key.includes('/.claims/')), [], 'no refused bytes remain, in any version')

  const image = pngBytes()
  const good = (await params(d.url, 'alice', 'ok.png', 'image/png')).json
  t.equal((await postToS3(good, image)).status, 204, 'a PNG posted')
  const promoted = await api(`${d.url}/s3/complete`, 'alice', 'POST', { key: good.key })
  t.equal(promoted.status, 200, 'and promoted')
  const left = (await versions(bucket)).filter((v) => !v.marker)
  t.same(left.filter((v) => !v.key.includes('/.claims/')).map((v) => v.key), [promoted.json.key], 'only the final object has a version: the staged one is gone (claims, a few bytes each, are left to the lifecycle rule)')
})
