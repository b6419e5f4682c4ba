// Part sizes adapt so large files fit the store's part limit: chosen up front
// when the length is declared, grown as parts go when it is not.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { startApp } from '../support/app.ts'
import { boundary, multipartChunks, postMultipart, postRaw, type RawResponse } from '../support/multipart.ts'
import { expectNoPendingUploads, freshBucket, objectDigest, sha256, testClient, testS3 } from '../support/s3.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const data = randomBytes(256 * MiB)
const digest = sha256(data)

/** POSTs with chunked transfer encoding, 1 MiB at a time: the server cannot know the length up front. */
async function postChunked (url: string, bytes: Uint8Array): Promise<RawResponse> {
  const separator = boundary()
  const pieces = multipartChunks([{ name: 'file', filename: 'stream.bin', data: bytes }], separator).flatMap((chunk) =>
    Array.from({ length: Math.ceil(chunk.byteLength / MiB) }, (_, i) => chunk.subarray(i * MiB, (i + 1) * MiB)))
  return await postRaw(url, pieces, { 'content-type': `multipart/form-data; boundary=${separator}`, 'transfer-encoding': 'chunked' })
}

for (const mode of ['workers', 'inline'] as const) {
  t.test(`mode ${mode}: unknown length, maxParts 20 → part sizes grow; 256 MiB stored intact`, async (t) => {
    const bucket = await freshBucket(t, server, client)
    // Parts are at most a quarter of the budget: at 1 GiB they may reach 256 MiB, so growth can wait.
    const { url } = await startApp(t, server, { bucket, mode, maxParts: 20, maxFileSize: 1024 * MiB, maxBufferedBytes: 1024 * MiB })
    const response = await postChunked(`${url}/upload`, data)
    t.equal(response.status, 200, response.body.slice(0, 300))
    const file = response.json()
    t.ok(file.parts <= 20 && file.parts > 256 / 20, `${file.parts} parts (at 5 MiB it would take 52)`)
    const stored = await objectDigest(client, bucket, file.key)
    t.equal(stored.sha256, digest, 'byte-identical')
    await expectNoPendingUploads(t, server, client, bucket)
  })

  t.test(`mode ${mode}: declared length, maxParts 20 → 13 MiB parts chosen up front`, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const { url } = await startApp(t, server, { bucket, mode, maxParts: 20 })
    const response = await postMultipart(`${url}/upload`, [{ name: 'file', filename: 'sized.bin', data }])
    t.equal(response.status, 200, response.body.slice(0, 300))
    const file = response.json()
    t.equal(file.parts, 20, '256 MiB + form overhead in 20 parts of 13 MiB')
    t.equal((await objectDigest(client, bucket, file.key)).sha256, digest)
    await expectNoPendingUploads(t, server, client, bucket)
  })
}

t.test('a file that needs more than maxParts parts is refused with 413 and aborted', async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { url } = await startApp(t, server, { bucket, mode: 'workers', maxParts: 3, equalParts: true })
  const response = await postChunked(`${url}/upload`, data.subarray(0, 30 * MiB))
  t.equal(response.status, 413)
  t.match(response.json(), { code: 'FST_S3CHUNK_PART_LIMIT' })
  await expectNoPendingUploads(t, server, client, bucket)
})
