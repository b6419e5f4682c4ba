// Found in review: the memory budget's last resort (PartBufferPool #relieve: "fail the holder
// that has gone longest without progress … so the others can go on") through the tus endpoint.
// A streamed upload that is evicted stops at once (the coordinator destroys its source); a tus
// PATCH was only `fail()`ed — its stop signal aborted — and its source looked at that signal only
// when the client's next chunk arrived: a silent client kept its part's reservation until
// bodyTimeout (the honest upload below waited 28.7 s), and the pool kept picking the same
// (already failed) victim. Now the eviction also fails the read waiting on the client. The
// streamed twin of this test is test/security/whole-part-pin.test.ts.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { request as httpRequest, type ClientRequest } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { freshBucket, needsStrictS3, testClient, testS3 } from '../support/s3.ts'
import { streamUpload } from '../support/stream-upload.ts'
import { createUpload, metadataHeader, startTus } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

t.test('three tus PATCHes that go silent one byte short of a part do not hold an honest upload back for bodyTimeout', { skip, timeout: 90_000 }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { app, url, endpoint } = await startTus(t, server, bucket, { mode: 'inline', partSize: 5 * MiB, maxBufferedBytes: 16 * MiB, bodyTimeout: 30_000 })
  const silent: ClientRequest[] = []
  const statuses: Array<number | string> = []
  t.teardown(() => { for (const request of silent) request.destroy() })
  for (let i = 0; i < 3; i++) {
    const upload = await createUpload(endpoint, 64 * MiB, { 'upload-metadata': metadataHeader({ filename: `pin-${i}.bin` }) })
    const request = httpRequest(upload, { method: 'PATCH', agent: false, headers: { 'tus-resumable': '1.0.0', 'content-type': 'application/offset+octet-stream', 'upload-offset': '0', 'content-length': String(64 * MiB) } }, (res) => { statuses[i] = res.statusCode ?? 0; res.resume() })
    request.on('error', () => { statuses[i] ??= 'reset' })
    request.write(randomBytes(5 * MiB - 1))
    silent.push(request)
  }
  await sleep(1500)
  t.comment(`held: ${(app.s3Chunk.stats().bufferedBytes / MiB).toFixed(1)} MiB of 16`)
  const started = Date.now()
  const honest = await streamUpload(`${url}/upload`, { seed: 7, size: 12 * MiB, hash: false })
  const took = Date.now() - started
  t.comment(`honest upload: ${String(honest.status)} after ${took} ms; silent PATCHes answered ${JSON.stringify(statuses)}`)
  t.equal(honest.status, 200, 'the honest upload is stored')
  t.ok(took < 15_000, `without waiting out the silent tus clients' bodyTimeout (${took} ms)`)
})
