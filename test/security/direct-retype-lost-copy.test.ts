// Found in review (helper-53, 2026-12-07; failed before the fix): a direct multipart upload
// declared generic (application/octet-stream) whose bytes are a PNG is completed, then rewritten
// in place (CopyObject onto itself, pinned with CopySourceIfMatch to the ETag checked) to carry
// image/png. That CopyObject is carried out but its answer is lost: the SDK's retry is pinned to
// an ETag the first attempt changed, and fails 412. The plugin looked for its own copy only after
// a conditional copy (If-None-Match), so the call answered 502 "nothing was committed" — the
// Complete was done: the client's retry was refused (403, the upload is gone), onUploadComplete
// never ran, and the object stayed. ONE lost answer, no second failure. Must hold: the rewrite the
// first attempt made is recognised (the key's object has the checked type, the metadata and the
// size): 200, recorded once, the object served as image/png.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { HeadObjectCommand } from '@aws-sdk/client-s3'
import { api, MiB, multipartSent, startDirect } from './direct-support.ts'
import { testFaultProxy, type FaultRequest } from '../support/fault-proxy.ts'
import { pngBytes } from '../support/samples.ts'
import { freshBucket, listKeys, needsStrictS3, openUploads, pluginS3Options, testClient, testS3 } from '../support/s3.ts'

const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

const isCopyObject = (r: FaultRequest): boolean => r.method === 'PUT' && r.headers['x-amz-copy-source'] !== undefined && !r.query.has('uploadId')

t.test('a direct Complete whose type rewrite loses its answer once is recorded once, as the type its bytes were checked against', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const proxy = await testFaultProxy(t, server.endpoint)
  const { url, stored } = await startDirect(t, server, bucket, { s3: { ...pluginS3Options(server), endpoint: proxy.endpoint } })
  const data = Buffer.concat([pngBytes(9000), randomBytes(6 * MiB - 9000)])
  // Declared application/octet-stream (multipartSent's declaration): the bytes say image/png.
  const { key, uploadId, q, parts } = await multipartSent(url, 'alice', 'photo.bin', data)
  proxy.setRules([{ match: isCopyObject, fault: { kind: 'dropAnswer' }, times: 1 }])
  const answer = await api(`${url}/s3/multipart/${encodeURIComponent(uploadId)}/complete?${q}`, 'alice', 'POST', { parts })
  proxy.setRules([])
  const keys = await listKeys(client, bucket)
  t.comment(`Complete ${answer.status} ${JSON.stringify(answer.json)}; keys ${JSON.stringify(keys)}; onUploadComplete ${stored.length}`)
  t.equal(answer.status, 200, 'the rewrite the first attempt made is recognised: 200')
  t.equal(stored.length, 1, 'recorded once')
  const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))
  t.equal(head.ContentType, 'image/png', 'the object carries the type its bytes were checked against')
  t.equal(head.ContentLength, data.byteLength, 'all of it')
  t.equal(answer.json?.file?.contentType, 'image/png', 'and is answered so')
  t.equal(answer.json?.file?.etag, (head.ETag ?? '').replaceAll('"', ''), 'with the rewritten object\'s ETag')
  t.same(await openUploads(client, bucket), [], 'no upload left open')
})
