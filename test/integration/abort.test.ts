// Failures in the middle of a body: the multipart upload is aborted, nothing
// is committed, nothing is left pending, and nothing hangs.
import t from 'tap'
import { request as httpRequest } from 'node:http'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { startApp } from '../support/app.ts'
import { boundary, multipartChunks } from '../support/multipart.ts'
import { expectNoPendingUploads, freshBucket, listKeys, needsStrictS3, pendingUploads, testClient, testS3 } from '../support/s3.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

/** Starts a multipart POST of `total` file bytes, writes only `sendBytes` of it, and returns the request. */
function partialUpload (url: string, total: number, sendBytes: number): { request: ReturnType<typeof httpRequest>, sent: Promise<void>, response: Promise<number | Error> } {
  const separator = boundary()
  const chunks = multipartChunks([{ name: 'file', filename: 'partial.bin', data: randomBytes(total) }], separator)
  const length = chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0)
  const request = httpRequest(`${url}/upload`, {
    method: 'POST',
    agent: false,
    headers: { 'content-type': `multipart/form-data; boundary=${separator}`, 'content-length': String(length) }
  })
  const response = new Promise<number | Error>((resolve) => {
    request.on('response', (res) => { res.resume(); resolve(res.statusCode ?? 0) })
    request.on('error', resolve)
  })
  const sent = (async () => {
    let written = 0
    for (const chunk of chunks) {
      const piece = chunk.subarray(0, Math.max(0, sendBytes - written))
      if (piece.byteLength === 0) break
      written += piece.byteLength
      if (!request.write(piece)) await new Promise((resolve) => request.once('drain', resolve))
    }
  })()
  return { request, sent, response }
}

async function waitIdle (app: FastifyInstance): Promise<void> {
  for (let i = 0; i < 100 && app.s3Chunk.stats().uploadsInFlight > 0; i++) await sleep(100)
}

for (const mode of ['workers', 'inline'] as const) {
  t.test(`mode ${mode}: a client that disconnects mid-body leaves no upload and no object`, { skip }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const { app, url } = await startApp(t, server, { bucket, mode })
    const upload = partialUpload(url, 40 * MiB, 17 * MiB)
    await upload.sent
    // Wait until the server has a multipart upload under way, then vanish.
    for (let i = 0; i < 50 && (await pendingUploads(client, bucket)).length === 0; i++) await sleep(100)
    t.equal((await pendingUploads(client, bucket)).length, 1, 'a multipart upload was under way')
    upload.request.destroy()
    await waitIdle(app)
    t.equal(app.s3Chunk.stats().uploadsInFlight, 0, 'the upload ended')
    t.equal(app.s3Chunk.stats().bufferedBytes, 0, 'its buffers were released')
    t.same(await listKeys(client, bucket), [], 'nothing committed')
    await expectNoPendingUploads(t, server, client, bucket)
  })

  t.test(`mode ${mode}: app.close() aborts uploads in flight and resolves`, { skip }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const { app, url } = await startApp(t, server, { bucket, mode })
    const upload = partialUpload(url, 40 * MiB, 12 * MiB)
    await upload.sent
    for (let i = 0; i < 50 && (await pendingUploads(client, bucket)).length === 0; i++) await sleep(100)
    // The client stalls (never sends the rest); close must not wait for it.
    const started = Date.now()
    await app.close()
    t.ok(Date.now() - started < 10_000, `close resolved in ${Date.now() - started} ms`)
    const status = await upload.response
    t.ok(status === 503 || status instanceof Error, `the client got 503 or a closed connection (${String(status)})`)
    upload.request.destroy()
    t.same(await listKeys(client, bucket), [], 'nothing committed')
    await expectNoPendingUploads(t, server, client, bucket)
  })
}
