// Found in review (of 3f414f0 / 0e63374, the same day; failed before its fix): #evictStalled counts what evicted parts "are still giving
// back" and returns early (no further eviction, no last resort) while that covers the first
// waiter. An evicted part gives its memory back only once its read ends — and a tus PATCH's part
// can be filling from the upload's stored tail, read from S3: eviction fails the PATCH and its
// IdleWatch, but not that S3 read. When the tail's GET stalls (S3 or the network between), the
// evicted part stays in the pool's `filling` set, `evicted`, for as long as the GET hangs (SDK
// requestTimeout, 120 s by default) — and every relief tick returns early: two silent clients
// that hold the rest of the budget are never failed, and an honest upload waits for THEIR
// bodyTimeout instead of < 1 s (whole-part-pin, head-flood-relief).
// Pre-existing: b3693fc fails it too (its last resort picked the same stalest victim every tick);
// 3f414f0's `freeing >= need` keeps the same hole. A tail whose read hangs early is parked down to
// its few bytes and does not block; one that hangs near its end (3.9 of 4 MiB here) does.
import t from 'tap'
import { createServer, request as httpRequest } from 'node:http'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { freshBucket, needsStrictS3, pluginS3Options, testClient, testS3 } from '../support/s3.ts'
import { openSlowClient, type SlowClient } from '../support/slow-client.ts'
import { streamUpload } from '../support/stream-upload.ts'
import { createUpload, patchUpload, startTus } from '../support/tus.ts'

const KiB = 1024
const MiB = 1024 * KiB
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

/** A pass-through proxy to S3 that, once `stall` is set, relays only the first 3.9 MiB of a tail object's GET answer and then nothing. */
async function stallingProxy (t: { teardown: (fn: () => unknown) => void }, target: string): Promise<{ endpoint: string, stall: (on: boolean) => void, stalled: () => number }> {
  const upstream = new URL(target)
  let stall = false
  let stalled = 0
  const held: Array<() => void> = []
  const proxy = createServer((req, res) => {
    const up = httpRequest({ host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      if (stall && req.method === 'GET' && (req.url ?? '').includes('.tail.')) {
        stalled += 1
        let relayed = 0
        answer.on('data', (chunk: Buffer) => {
          if (relayed < 3900 * KiB) { res.write(chunk); relayed += chunk.byteLength } else answer.pause()
        })
        held.push(() => { answer.destroy(); res.destroy() })
      } else {
        answer.pipe(res)
      }
    })
    up.on('error', () => { res.destroy() })
    req.pipe(up)
  })
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { for (const end of held) end(); proxy.closeAllConnections(); await new Promise((resolve) => proxy.close(resolve)) })
  return { endpoint: `http://127.0.0.1:${(proxy.address() as { port: number }).port}`, stall: (on) => { stall = on }, stalled: () => stalled }
}

t.test('an evicted tus PATCH whose tail read hangs does not switch the relief off', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const proxy = await stallingProxy(t, server.endpoint)
  const { app, url, endpoint } = await startTus(t, server, bucket, {
    mode: 'inline', partSize: 5 * MiB, maxBufferedBytes: 16 * MiB, bodyTimeout: 60_000,
    s3: { ...pluginS3Options(server), endpoint: proxy.endpoint }
  })
  const data = randomBytes(20 * MiB)
  const upload = await createUpload(endpoint, data.byteLength)
  const tail = 4 * MiB
  t.equal((await patchUpload(url === '' ? upload : upload, 0, data.subarray(0, tail))).status, 204, 'a 4 MiB tail is stored')
  proxy.stall(true)
  // PATCH 2: its first byte starts the tail read, which hangs after 3.9 MiB of its 4 MiB (too full to park away).
  const patch = httpRequest(upload, { method: 'PATCH', headers: { 'tus-resumable': '1.0.0', 'content-type': 'application/offset+octet-stream', 'upload-offset': String(tail), 'content-length': String(MiB) } })
  patch.on('error', () => {})
  patch.on('response', (response) => { response.resume() })
  patch.write(data.subarray(tail, tail + 1))
  t.teardown(() => { patch.destroy() })
  for (let wait = 0; wait < 40 && proxy.stalled() === 0; wait++) await sleep(50)
  t.equal(proxy.stalled(), 1, 'the tail read hangs')
  await sleep(300)
  // Two silent clients hold the rest of the budget (whole-part-pin's attack).
  const silent: SlowClient[] = []
  t.teardown(() => { for (const one of silent) one.close() })
  for (let i = 0; i < 2; i++) silent.push(await openSlowClient(url, { declaredLength: 64 * MiB, initialBytes: 5 * MiB - 1, filename: `pin-${i}.bin` }))
  await sleep(2500)
  let patchStatus: number | null = null
  patch.on('response', (response) => { patchStatus = response.statusCode ?? null })
  t.comment(`before the honest upload: ${JSON.stringify(app.s3Chunk.stats())}`)
  const started = Date.now()
  const honest = await Promise.race([
    streamUpload(`${url}/upload`, { seed: 7, size: 12 * MiB, hash: false }),
    sleep(20_000).then(() => ({ status: null }))
  ])
  const took = Date.now() - started
  t.comment(`PATCH 2 answered: ${patchStatus}; after: ${JSON.stringify(app.s3Chunk.stats())}`)
  t.comment(`honest upload: ${honest.status} after ${took} ms; silent clients: ${silent.map((one) => one.status()).join(', ')}`)
  t.equal(honest.status, 200, 'the honest upload is stored')
  t.ok(took < 15_000, `without waiting out the silent clients' bodyTimeout or the hung S3 read (${took} ms)`)
})
