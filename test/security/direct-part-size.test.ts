// Regression (issue 10, item 5): a direct multipart upload had no size cap
// until it completed — the part URLs carried no length, so a signed-in client
// could park far more than maxFileSize in S3, or leave it there by never
// completing. Now the create route takes the file's size, and every part URL
// signs its exact Content-Length from Uppy's part plan: MinIO (strict, like
// AWS) refuses a body of any other length.
import t, { type Test } from 'tap'
import type { FastifyRequest } from 'fastify'
import { randomBytes } from 'node:crypto'
import type { DirectUser, S3ChunkOptions } from 'fastify-s3-chunk'
import { startDirect } from './direct-support.ts'
import { expectNoPendingUploads, freshBucket, needsStrictS3, objectDigest, sha256, testClient, testS3 } from '../support/s3.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

/** The shared starter with Alice signed in by a bearer-like header. */
async function start (t: { teardown: (fn: () => unknown) => void }, bucket: string, direct: Partial<NonNullable<S3ChunkOptions['direct']>> = {}): Promise<string> {
  const authorize = (request: FastifyRequest): DirectUser | null => request.headers.authorization === 'token-alice' ? { userId: 'alice' } : null
  return (await startDirect(t, server, bucket, {}, { authorize, ...direct })).url
}

async function api (url: string, method = 'GET', body?: unknown): Promise<{ status: number, json: any }> {
  const headers: Record<string, string> = { authorization: 'token-alice' }
  if (body !== undefined) headers['content-type'] = 'application/json'
  const response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await response.text()
  return { status: response.status, json: text === '' ? null : JSON.parse(text) }
}

async function put (url: string, body: Uint8Array): Promise<{ status: number, etag: string | null, text: string }> {
  const response = await fetch(url, { method: 'PUT', body })
  return { status: response.status, etag: response.headers.get('etag'), text: await response.text() }
}

/**
 * A PUT the store must refuse. Stores refuse a body whose length the URL did
 * not sign in two ways: 403 (MinIO, AWS: SignatureDoesNotMatch / AccessDenied),
 * or — versitygw — a 403 sent from the headers alone, the connection then
 * closed under the body still being written, so the client meets ECONNRESET /
 * EPIPE before it can read the answer. Either way nothing is stored (the test
 * checks ListParts after). Returns the answer's text, or '' after a reset.
 */
async function refusedPut (t: Test, url: string, body: Uint8Array, label: string): Promise<string> {
  try {
    const answer = await put(url, body)
    t.equal(answer.status, 403, `${label}: refused by S3 (403)`)
    return answer.text
  } catch (error) {
    const code = (error as { cause?: { code?: string } }).cause?.code
    t.ok(code === 'ECONNRESET' || code === 'EPIPE', `${label}: refused by S3 (connection closed before the body was read: ${code ?? String(error)})`)
    return ''
  }
}

t.test('create: the size is required (400) and bounded by maxFileSize (413)', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const url = await start(t, bucket)
  const missing = await api(`${url}/s3/multipart`, 'POST', { filename: 'a.bin', type: 'application/octet-stream', metadata: {} })
  t.equal(missing.status, 400, 'no size: refused')
  t.match(missing.json, { code: 'FST_S3CHUNK_BAD_REQUEST', message: /size/ })
  const tooBig = await api(`${url}/s3/multipart`, 'POST', { filename: 'a.bin', type: 'application/octet-stream', size: 20 * MiB + 1 })
  t.equal(tooBig.status, 413, 'over maxFileSize: refused')
  t.match(tooBig.json, { code: 'FST_S3CHUNK_FILE_TOO_LARGE' })
  for (const size of [-1, 1.5, 'ten', true, 2 ** 60]) {
    const bad = await api(`${url}/s3/multipart`, 'POST', { filename: 'a.bin', type: 'application/octet-stream', size })
    t.ok(bad.status === 400 || bad.status === 413, `size ${JSON.stringify(size)}: ${bad.status}`)
  }
  t.equal((await api(`${url}/s3/multipart`, 'POST', { filename: 'a.bin', type: 'application/octet-stream', metadata: { size: 6 * MiB } })).status, 200, "the size in Uppy's metadata counts")
})

t.test('each part URL signs its length: MinIO refuses a longer or shorter body; the declared bytes complete', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const url = await start(t, bucket)
  const data = randomBytes(12 * MiB)
  const created = await api(`${url}/s3/multipart`, 'POST', { filename: 'film.bin', type: 'application/octet-stream', size: data.byteLength })
  t.equal(created.status, 200)
  const { key, uploadId } = created.json
  const q = `key=${encodeURIComponent(key)}`
  const sign = async (n: number | string): Promise<{ status: number, json: any }> => await api(`${url}/s3/multipart/${encodeURIComponent(uploadId)}/${n}?${q}`)

  // Uppy's plan for 12 MiB: 5 MiB, 5 MiB, 2 MiB.
  const first = (await sign(1)).json.url as string
  t.match(new URL(first).searchParams.get('X-Amz-SignedHeaders'), /(^|;)content-length(;|$)/, 'content-length is a signed header')
  const longer = await refusedPut(t, first, randomBytes(6 * MiB), 'part 1 with 6 MiB instead of 5')
  if (longer !== '') t.match(longer, /SignatureDoesNotMatch|AccessDenied/)
  await refusedPut(t, first, randomBytes(5 * MiB - 1), 'part 1 one byte short')
  const last = (await sign(3)).json.url as string
  await refusedPut(t, last, randomBytes(5 * MiB), 'the short last part with a full part\'s bytes')
  const beyond = await sign(4)
  t.equal(beyond.status, 400, 'a part the declared size has no room for is not signed')
  t.match(beyond.json, { code: 'FST_S3CHUNK_BAD_REQUEST', message: /beyond/ })
  const beyondBatch = await api(`${url}/s3/multipart/${encodeURIComponent(uploadId)}/batch?${q}&partNumbers=1,2,3,4`)
  t.equal(beyondBatch.status, 400, 'nor in a batch')
  t.same((await api(`${url}/s3/multipart/${encodeURIComponent(uploadId)}?${q}`)).json, [], 'no wrong-length part got in')

  // The bytes the plan expects, through a batch this time: accepted and completed.
  const batch = (await api(`${url}/s3/multipart/${encodeURIComponent(uploadId)}/batch?${q}&partNumbers=1,2,3`)).json.presignedUrls
  const parts = []
  for (const [i, start] of [0, 5 * MiB, 10 * MiB].entries()) {
    const sent = await put(batch[String(i + 1)], data.subarray(start, Math.min(start + 5 * MiB, data.byteLength)))
    t.equal(sent.status, 200, `part ${i + 1} of the right length: stored`)
    parts.push({ PartNumber: i + 1, ETag: sent.etag })
  }
  const done = await api(`${url}/s3/multipart/${encodeURIComponent(uploadId)}/complete?${q}`, 'POST', { parts })
  t.equal(done.status, 200)
  t.equal((await objectDigest(client, bucket, key)).sha256, sha256(data), 'the declared bytes, stored')
  await expectNoPendingUploads(t, server, client, bucket)
})

t.test('the declared size cannot be changed: a tampered or unsealed upload id is refused', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const url = await start(t, bucket)
  const small = (await api(`${url}/s3/multipart`, 'POST', { filename: 'a.bin', type: 'application/octet-stream', size: 1000 })).json
  const other = (await api(`${url}/s3/multipart`, 'POST', { filename: 'b.bin', type: 'application/octet-stream', size: 20 * MiB })).json
  const q = `key=${encodeURIComponent(small.key)}`
  const [s3Id, size36, partSize36, mac] = (small.uploadId as string).split('~')
  t.equal(Number.parseInt(size36 ?? '', 36), 1000, 'the upload id carries the declared size')
  const forgeries: Record<string, string> = {
    'a bigger size': `${s3Id}~${(20 * MiB).toString(36)}~${partSize36}~${mac}`,
    'a bigger part size': `${s3Id}~${size36}~${(5 * 1024 * MiB).toString(36)}~${mac}`,
    'no seal at all': s3Id ?? '',
    "another upload's seal": `${s3Id}~${(20 * MiB).toString(36)}~${partSize36}~${(other.uploadId as string).split('~')[3]}`
  }
  for (const [name, forged] of Object.entries(forgeries)) {
    const one = await api(`${url}/s3/multipart/${encodeURIComponent(forged)}/1?${q}`)
    t.equal(one.status, 403, `${name}: sign-part refused`)
    const batch = await api(`${url}/s3/multipart/${encodeURIComponent(forged)}/batch?${q}&partNumbers=1,2`)
    t.equal(batch.status, 403, `${name}: batch refused`)
  }
  // The list, complete and abort routes take the sealed id as given too.
  t.equal((await api(`${url}/s3/multipart/${encodeURIComponent(small.uploadId)}?${q}`)).status, 200, 'list with the sealed id')
  for (const upload of [small, other]) {
    t.equal((await api(`${url}/s3/multipart/${encodeURIComponent(upload.uploadId)}?key=${encodeURIComponent(upload.key)}`, 'DELETE')).status, 200, 'abort with the sealed id')
  }
  await expectNoPendingUploads(t, server, client, bucket)
})

t.test('a declared partSize (a custom getChunkSize) signs those lengths', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const url = await start(t, bucket)
  const data = randomBytes(20 * MiB)
  const created = (await api(`${url}/s3/multipart`, 'POST', { filename: 'c.bin', type: 'application/octet-stream', size: data.byteLength, partSize: 8 * MiB })).json
  const q = `key=${encodeURIComponent(created.key)}`
  const urls = (await api(`${url}/s3/multipart/${encodeURIComponent(created.uploadId)}/batch?${q}&partNumbers=1,2,3`)).json.presignedUrls
  await refusedPut(t, urls['1'], data.subarray(0, 5 * MiB), 'a 5 MiB body where 8 MiB was declared')
  const parts = []
  for (const [i, start] of [0, 8 * MiB, 16 * MiB].entries()) {
    const sent = await put(urls[String(i + 1)], data.subarray(start, Math.min(start + 8 * MiB, data.byteLength)))
    t.equal(sent.status, 200, `part ${i + 1}`)
    parts.push({ PartNumber: i + 1, ETag: sent.etag })
  }
  t.equal((await api(`${url}/s3/multipart/${encodeURIComponent(created.uploadId)}/complete?${q}`, 'POST', { parts })).status, 200)
  t.equal((await objectDigest(client, bucket, created.key)).size, data.byteLength)
  const tooMany = await api(`${url}/s3/multipart`, 'POST', { filename: 'c.bin', type: 'application/octet-stream', size: 1000, partSize: 1000 })
  t.equal(tooMany.status, 400, 'a partSize under 5 MiB is refused')
})

t.test('direct.requireSize: false — a create without a size is accepted, its parts unbounded until complete', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const url = await start(t, bucket, { requireSize: false })
  const created = await api(`${url}/s3/multipart`, 'POST', { filename: 'a.bin', type: 'application/octet-stream' })
  t.equal(created.status, 200)
  t.notMatch(created.json.uploadId, /~/, 'no plan sealed into the id')
  const signed = await api(`${url}/s3/multipart/${encodeURIComponent(created.json.uploadId)}/1?key=${encodeURIComponent(created.json.key)}`)
  t.equal(signed.status, 200)
  t.notMatch(new URL(signed.json.url).searchParams.get('X-Amz-SignedHeaders'), /content-length/)
  const sized = await api(`${url}/s3/multipart`, 'POST', { filename: 'b.bin', type: 'application/octet-stream', size: 20 * MiB + 1 })
  t.equal(sized.status, 413, 'a declared size is still checked')
  await api(`${url}/s3/multipart/${encodeURIComponent(created.json.uploadId)}?key=${encodeURIComponent(created.json.key)}`, 'DELETE')
})
