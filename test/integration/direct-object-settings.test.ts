// Object settings reach direct uploads too (issue 11): a POST upload's
// promoted object and a multipart upload's object carry the rule's
// objectParams, and a direct route can run by a named rule set.
import t from 'tap'
import { HeadObjectCommand } from '@aws-sdk/client-s3'
import { pngBytes } from '../support/samples.ts'
import { expectNoPendingUploads, freshBucket, needsStrictS3, testClient, testS3 } from '../support/s3.ts'
import { api, params, postToS3, startDirect } from '../security/direct-support.ts'

const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

t.test('the promoted object and a multipart object carry the rule set\'s objectParams', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { url, stored } = await startDirect(t, server, bucket, {
    rules: {
      photos: {
        allowedTypes: ['image/*'],
        objectParams: (file) => ({ CacheControl: 'public, max-age=600', Metadata: { kind: file.contentType.split('/')[0] ?? '' } })
      }
    }
  }, { rules: 'photos' })

  const image = pngBytes(5000)
  const post = (await params(url, 'alice', 'cat.png', 'image/png')).json
  t.equal((await postToS3(post, image)).status, 204)
  const done = await api(`${url}/s3/complete`, 'alice', 'POST', { key: post.key })
  t.equal(done.status, 200, JSON.stringify(done.json))
  const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: done.json.key }))
  t.equal(head.CacheControl, 'public, max-age=600', 'the rule set\'s settings on the promoted object')
  t.equal(head.Metadata?.kind, 'image', 'computed from the checked type')
  t.equal(head.ContentType, 'image/png')

  const created = (await api(`${url}/s3/multipart`, 'alice', 'POST', { filename: 'big.png', type: 'image/png', size: image.byteLength })).json
  const q = `key=${encodeURIComponent(created.key)}`
  const signed = (await api(`${url}/s3/multipart/${created.uploadId}/1?${q}`, 'alice')).json
  const put = await fetch(signed.url, { method: 'PUT', body: image })
  const completed = await api(`${url}/s3/multipart/${created.uploadId}/complete?${q}`, 'alice', 'POST', { parts: [{ PartNumber: 1, ETag: put.headers.get('etag') }] })
  t.equal(completed.status, 200, JSON.stringify(completed.json))
  const multipartHead = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: created.key }))
  t.equal(multipartHead.CacheControl, 'public, max-age=600', 'set at the multipart create')
  t.equal(stored.length, 2)
  await expectNoPendingUploads(t, server, client, bucket)
})
