// Attack: open an upload and go quiet (issue 9). With Fastify's defaults a
// stalled upload was still open after 332 s, holding its memory and its
// multipart upload. `bodyTimeout` is enforced by the plugin itself, whatever
// Fastify's and Node's timeouts are (none is set here): a client that sends
// nothing for that long gets 408 FST_S3CHUNK_BODY_TIMEOUT, the upload is
// aborted, nothing is stored — while a slow but steady client is not cut off.
import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { DeleteObjectCommand } from '@aws-sdk/client-s3'
import { request as httpRequest } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import type { S3File } from 'fastify-s3-chunk'
import { startApp } from '../support/app.ts'
import { boundary, multipartChunks } from '../support/multipart.ts'
import { expectNoPendingUploads, freshBucket, listKeys, needsStrictS3, objectDigest, pendingUploads, sha256, testClient, testS3 } from '../support/s3.ts'
import { openSlowClient } from '../support/slow-client.ts'

const KiB = 1024
const MiB = 1024 * KiB
const BODY_TIMEOUT = 2000
/** Generous: the timeout is 2 s; the answer must come well before this. */
const ANSWER_BOUND_MS = 30_000

const server = await testS3()
const client = testClient(server)

async function expectIdle (t: Test, app: FastifyInstance): Promise<void> {
  for (let i = 0; i < 100 && (app.s3Chunk.stats().uploadsInFlight > 0 || app.s3Chunk.stats().bufferedBytes > 0); i++) await sleep(100)
  t.equal(app.s3Chunk.stats().uploadsInFlight, 0, 'no upload left in flight')
  t.equal(app.s3Chunk.stats().bufferedBytes, 0, 'no part buffer left held')
}

for (const mode of ['workers', 'inline'] as const) {
  t.test(`mode ${mode}, bodyTimeout ${BODY_TIMEOUT} ms`, { skip: needsStrictS3(server) }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const { app, url } = await startApp(t, server, { bucket, mode, bodyTimeout: BODY_TIMEOUT, partSize: 5 * MiB })

    /** Sends `initialBytes` of a file, then nothing; expects 408 within the bound and nothing left behind. */
    async function stall (t: Test, initialBytes: number, beforeWaiting?: () => Promise<void>): Promise<void> {
      const stalled = await openSlowClient(url, { declaredLength: 100 * MiB, filename: `stalled-${initialBytes}.bin`, initialBytes })
      t.teardown(stalled.close)
      if (beforeWaiting !== undefined) await beforeWaiting()
      const started = Date.now()
      const status = await Promise.race([stalled.answered, sleep(ANSWER_BOUND_MS, 'no answer' as const, { ref: false })])
      const took = Date.now() - started
      t.equal(status, 408, `answered 408 within ${ANSWER_BOUND_MS / 1000} s (${String(status)} after ${(took / 1000).toFixed(1)} s)`)
      for (let i = 0; i < 20 && stalled.answerJson() === undefined && !stalled.closed(); i++) await sleep(100)
      t.match(stalled.answerJson(), { statusCode: 408, code: 'FST_S3CHUNK_BODY_TIMEOUT' }, 'the body-timeout error')
      stalled.close()
      await expectIdle(t, app)
      t.same(await listKeys(client, bucket), [], 'nothing stored')
      await expectNoPendingUploads(t, server, client, bucket)
    }

    t.test('1 KiB of the file, then nothing: 408, nothing stored', async (t) => {
      await stall(t, KiB)
    })

    t.test('12 MiB of the file (a multipart upload under way), then nothing: 408, the upload aborted', async (t) => {
      await stall(t, 12 * MiB, async () => {
        let started = 0
        for (let i = 0; i < 100 && started === 0; i++) {
          started = (await pendingUploads(client, bucket)).length
          if (started === 0) await sleep(100)
        }
        t.equal(started, 1, 'a multipart upload was under way when the client went quiet')
      })
    })

    t.test('a slow but steady client (64 KiB every 250 ms for 2.5 s, longer than the timeout) is not timed out', async (t) => {
      const data = randomBytes(640 * KiB)
      const separator = boundary()
      const body = Buffer.concat(multipartChunks([{ name: 'file', filename: 'steady.bin', data }], separator))
      const response = await new Promise<{ status: number, body: string }>((resolve, reject) => {
        const req = httpRequest(`${url}/upload`, {
          method: 'POST',
          agent: false,
          headers: { 'content-type': `multipart/form-data; boundary=${separator}`, 'content-length': String(body.byteLength) }
        }, (res) => {
          const parts: Buffer[] = []
          res.on('data', (chunk: Buffer) => parts.push(chunk))
          res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString('utf8') }) })
        })
        req.on('error', reject)
        req.setTimeout(ANSWER_BOUND_MS, () => { req.destroy(new Error('no answer')) })
        void (async () => {
          for (let at = 0; at < body.byteLength && !req.destroyed; at += 64 * KiB) {
            req.write(body.subarray(at, Math.min(body.byteLength, at + 64 * KiB)))
            // A gap an eighth of the timeout: client and server share this event loop, and after
            // a stall of it (GC, a busy machine) both timers fire in one turn, the server's before
            // the bytes the client just wrote are read — so the margin is the timeout less the gap.
            await sleep(250)
          }
          req.end()
        })()
      })
      t.equal(response.status, 200, `stored (${response.body.slice(0, 200)})`)
      if (response.status === 200) {
        const file = JSON.parse(response.body) as S3File
        t.equal((await objectDigest(client, bucket, file.key)).sha256, sha256(data), 'byte for byte')
        // Leave the bucket as the other cases expect it: empty.
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: file.key }))
      }
      await expectNoPendingUploads(t, server, client, bucket)
    })
  })
}
