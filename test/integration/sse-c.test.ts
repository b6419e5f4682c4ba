// SSE-C on streamed uploads (issue 11, item 2), against the test bed's MinIO
// over TLS (MinIO refuses SSE-C over plain HTTP): the key goes on the
// PutObject, the CreateMultipartUpload and every UploadPart — in `workers`
// mode those are sent from the worker threads — and never into a response or
// a log line.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { startApp } from '../support/app.ts'
import { postMultipart } from '../support/multipart.ts'
import { bareEtag, digest, failureStatus, head, s3FileWith, withObjectParams, type SseC } from '../support/object-settings.ts'
import { expectNoPendingUploads, freshBucket, listKeys, sha256, testClient, testTlsS3 } from '../support/s3.ts'

const MiB = 1024 * 1024
const P = 5 * MiB
const tls = await testTlsS3()
const client = tls.server !== null ? testClient(tls.server) : null
const sizes = [
  { label: 'small', size: 256 * 1024, parts: 0 },
  { label: 'multipart', size: 11 * MiB, parts: 3 }
] as const

/** A fresh SSE-C key as the SDK takes it: base64 of 32 bytes, or (`raw`) a 32-character string used as the bytes. */
function sseKey (form: 'base64' | 'raw' = 'base64'): SseC {
  return {
    SSECustomerAlgorithm: 'AES256',
    // 32 characters of [0-9a-f] are not base64 of 32 bytes, so the SDK sends them as the key itself.
    SSECustomerKey: form === 'base64' ? randomBytes(32).toString('base64') : randomBytes(16).toString('hex')
  }
}

/** The key's bytes, as S3 uses them (the SDK's rule: base64 of 32 bytes, else the string's UTF-8). */
function keyBytes (sse: SseC): Buffer {
  const decoded = Buffer.from(sse.SSECustomerKey, 'base64')
  return decoded.byteLength === 32 && decoded.toString('base64') === sse.SSECustomerKey ? decoded : Buffer.from(sse.SSECustomerKey, 'utf8')
}

for (const mode of ['workers', 'inline'] as const) {
  t.test(`mode ${mode}: SSE-C from the registered objectParams, PutObject and multipart alike`, { skip: tls.skip }, async (t) => {
    if (tls.server === null || client === null) return
    const server = tls.server
    const bucket = await freshBucket(t, server, client)
    const sse = sseKey()
    const logLines: Array<Record<string, unknown>> = []
    const { url } = await startApp(t, server, withObjectParams({ bucket, mode, partSize: P, objectParams: sse }), undefined, logLines)
    for (const { label, size, parts } of sizes) {
      const data = randomBytes(size)
      const response = await postMultipart(`${url}/upload`, [{ name: 'upload', filename: `sse-c-${label}.bin`, contentType: 'application/x-test', data }])
      t.equal(response.status, 200, `${label}: HTTP 200 ${response.status === 200 ? '' : response.body}`)
      t.notOk(response.body.includes(sse.SSECustomerKey), `${label}: the key is not in the response`)
      if (response.status !== 200) continue
      const file = response.json()
      t.equal(file.parts, parts, `${label}: ${parts === 0 ? 'a single PutObject' : `${parts} parts`}`)
      t.equal(await failureStatus(head(client, bucket, file.key)), 400, `${label}: HeadObject without the key is refused (400)`)
      const h = await head(client, bucket, file.key, sse)
      t.equal(h.SSECustomerAlgorithm, 'AES256', `${label}: stored with SSE-C`)
      t.equal(h.SSECustomerKeyMD5, createHash('md5').update(keyBytes(sse)).digest('base64'), `${label}: with this key`)
      t.equal(file.etag, bareEtag(h.ETag), `${label}: S3File.etag is the object's ETag (not an MD5 under SSE-C)`)
      const stored = await digest(client, bucket, file.key, sse)
      t.equal(stored.size, size, `${label}: stored size`)
      t.equal(stored.sha256, sha256(data), `${label}: GetObject with the key returns identical bytes`)
    }
    t.notOk(JSON.stringify(logLines).includes(sse.SSECustomerKey), 'the key is in no log line (debug level)')
    await expectNoPendingUploads(t, server, client, bucket)
  })
}

t.test('mode workers: a key per call (each user their own), one raw 32-character key, never mixed up between uploads', { skip: tls.skip }, async (t) => {
  if (tls.server === null || client === null) return
  const server = tls.server
  const bucket = await freshBucket(t, server, client)
  const { url } = await startApp(t, server, { bucket, mode: 'workers', partSize: P }, (app) => {
    app.post('/custom', async (request) => await s3FileWith(request, {
      objectParams: { SSECustomerAlgorithm: 'AES256', SSECustomerKey: String(request.headers['x-test-sse-key']) }
    }))
  })
  const uploads = [sseKey(), sseKey(), sseKey('raw')]
  // Sent concurrently, so the worker threads carry parts of all three at once.
  const results = await Promise.all(uploads.map(async (sse, index) => {
    const data = randomBytes(11 * MiB)
    const response = await postMultipart(`${url}/custom`, [{ name: 'upload', filename: `per-call-${index}.bin`, contentType: 'application/x-test', data }], {
      headers: { 'x-test-sse-key': sse.SSECustomerKey }
    })
    return { sse, data, response }
  }))
  for (const [index, { sse, data, response }] of results.entries()) {
    t.equal(response.status, 200, `upload ${index}: HTTP 200 ${response.status === 200 ? '' : response.body}`)
    if (response.status !== 200) continue
    const file = response.json()
    t.equal(file.parts, 3, `upload ${index}: multipart`)
    t.equal(await failureStatus(head(client, bucket, file.key)), 400, `upload ${index}: HeadObject without a key is refused (400)`)
    const other = uploads[(index + 1) % uploads.length] as SseC
    const refused = await failureStatus(head(client, bucket, file.key, other))
    t.ok(typeof refused === 'number' && refused >= 400 && refused < 500, `upload ${index}: another upload's key is refused (${refused})`)
    if (await failureStatus(head(client, bucket, file.key, sse)) !== 'resolved') {
      t.fail(`upload ${index}: its own key does not open it`)
      continue
    }
    t.equal((await head(client, bucket, file.key, sse)).SSECustomerAlgorithm, 'AES256', `upload ${index}: its own key opens it`)
    t.equal((await digest(client, bucket, file.key, sse)).sha256, sha256(data), `upload ${index}: identical bytes`)
  }
  t.equal((await listKeys(client, bucket)).length, uploads.length, 'one object per upload')
  await expectNoPendingUploads(t, server, client, bucket)
})
