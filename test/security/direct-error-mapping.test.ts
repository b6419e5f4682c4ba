// Client mistakes used to be answered as server failures: a forged ETag or a
// part never uploaded (S3's InvalidPart) → 502, a `type` with CR/LF at
// multipart create → 502, `authorize()` returning false → 500. Now each says
// whose fault it is.
import t from 'tap'
import { expectNoPendingUploads, freshBucket, needsStrictS3, testClient, testS3 } from '../support/s3.ts'
import { api, MiB, params, startDirect } from './direct-support.ts'

const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

async function putParts (url: string, user: string, key: string, uploadId: string, bodies: Buffer[]): Promise<Array<{ PartNumber: number, ETag: string }>> {
  const q = `key=${encodeURIComponent(key)}`
  const parts = []
  for (const [i, body] of bodies.entries()) {
    const signed = (await api(`${url}/s3/multipart/${uploadId}/${i + 1}?${q}`, user)).json
    const response = await fetch(signed.url, { method: 'PUT', body })
    parts.push({ PartNumber: i + 1, ETag: response.headers.get('etag') as string })
  }
  return parts
}

t.test('Complete with parts S3 refuses: 400 with a safe message, the upload left for a retry', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  // Parts of any length, to meet each of S3's refusals: without a declared size
  // (direct-part-size tests that parts must then match the plan).
  const { url, stored } = await startDirect(t, server, bucket, {}, { requireSize: false })
  const created = (await api(`${url}/s3/multipart`, 'alice', 'POST', { filename: 'f.bin', type: 'application/octet-stream', metadata: {} })).json
  const q = `key=${encodeURIComponent(created.key)}`
  const complete = async (parts: unknown): Promise<{ status: number, json: any }> => await api(`${url}/s3/multipart/${created.uploadId}/complete?${q}`, 'alice', 'POST', { parts })
  const parts = await putParts(url, 'alice', created.key, created.uploadId, [Buffer.alloc(1024, 1), Buffer.alloc(1024, 2)])

  const forged = await complete([{ PartNumber: 1, ETag: '"0123456789abcdef0123456789abcdef"' }])
  t.equal(forged.status, 400, 'a forged ETag')
  t.match(forged.json, { code: 'FST_S3CHUNK_INVALID_PARTS', message: /never uploaded|does not match/ })
  t.notMatch(JSON.stringify(forged.json), /MinIO|minio|RequestId|127\.0\.0\.1/, 'nothing of the store in the message')

  const never = await complete([{ PartNumber: 1, ETag: parts[0]?.ETag }, { PartNumber: 3, ETag: parts[1]?.ETag }])
  t.equal(never.status, 400, 'a part never uploaded')
  t.match(never.json, { code: 'FST_S3CHUNK_INVALID_PARTS' })

  const small = await complete(parts)
  t.equal(small.status, 400, 'a first part under 5 MiB')
  t.match(small.json, { code: 'FST_S3CHUNK_INVALID_PARTS', message: /5 MiB/ })

  // The upload is still there: a correct Complete works.
  const good = await putParts(url, 'alice', created.key, created.uploadId, [Buffer.alloc(5 * MiB, 1), Buffer.alloc(10, 2)])
  const done = await complete(good)
  t.equal(done.status, 200, JSON.stringify(done.json))
  t.equal(stored.length, 1)
  // Completing it again: the upload is gone. S3 cannot tell "gone" from "never of this key": 403.
  t.equal((await complete(good)).status, 403)
  await expectNoPendingUploads(t, server, client, bucket)
})

t.test('a malformed type or filename is 400 on every route that takes one', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { url } = await startDirect(t, server, bucket)
  // (A trailing newline alone is trimmed away: the parsed type is what S3 gets.)
  for (const type of ['image/png\r\nx: y', 'text/plain\nx', 'a/b/c']) {
    t.equal((await api(`${url}/s3/multipart`, 'alice', 'POST', { filename: 'a.png', type, size: 1024 })).status, 400, `multipart type ${JSON.stringify(type)}`)
    t.equal((await params(url, 'alice', 'a.png', type)).status, 400, `params type ${JSON.stringify(type)}`)
  }
  for (const filename of ['a\uD800.png', 42, '', 'x'.repeat(5000)]) {
    const body = `{"filename":${typeof filename === 'string' ? JSON.stringify(filename) : filename},"type":"image/png","size":1024}`
    t.equal((await api(`${url}/s3/multipart`, 'alice', 'POST', body)).status, 400, `multipart filename ${JSON.stringify(filename).slice(0, 20)}`)
  }
  t.equal((await api(`${url}/s3/multipart`, 'alice', 'POST', { filename: 'a.png', type: 'image/png', size: 1024, metadata: 'x' })).status, 400, 'metadata not an object')
  await expectNoPendingUploads(t, server, client, bucket)
})

t.test('any falsy authorize() result is 401 on every route', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  for (const falsy of [false, 0, '', null, undefined]) {
    const { url } = await startDirect(t, server, bucket, {}, { authorize: () => falsy as unknown as null })
    for (const [method, path, body] of [
      ['GET', '/s3/params?filename=a.png&type=image/png'],
      ['POST', '/s3/complete', { key: 'media/.staging/alice/x/a.png' }],
      ['POST', '/s3/multipart', { filename: 'a.png', type: 'image/png' }],
      ['GET', '/s3/multipart/u1?key=media/alice/x/a.png'],
      ['GET', '/s3/multipart/u1/1?key=media/alice/x/a.png'],
      ['POST', '/s3/multipart/u1/complete?key=media/alice/x/a.png', { parts: [{ PartNumber: 1, ETag: '"x"' }] }],
      ['DELETE', '/s3/multipart/u1?key=media/alice/x/a.png']
    ] as Array<[string, string, unknown?]>) {
      const response = await api(`${url}${path}`, null, method, body)
      t.equal(response.status, 401, `authorize() → ${JSON.stringify(falsy)}: ${method} ${path.split('?')[0]}`)
    }
  }
})
