// Found in review (of 6f2aefb, the same day; failed before its fix): a tus PATCH evicted by the pool now ends only through watch.fail(),
// which fails the read waiting on the client. The pool's deadlock way out (#relieve: every byte held
// by parts that all wait for more, nothing in flight) picks its victim among parts that WAIT IN
// grow() — `holders.find((part) => part.canEvict || part.waiting)` — and calls evict() on it. A tus
// part waiting in grow() has no client read pending (the body generator is suspended at its yield),
// so watch.fail() does nothing: the part stays, is marked evicted (skipped from then on), and the
// next one is "evicted" the same way. Before 6f2aefb the callback also called fail(), whose
// stop.abort() rejected the grow() waiter and gave the memory back.
// Here: maxBufferedBytes = partSize (the minimum allowed). A: a PATCH that sent 1 MiB and paused
// (parked to 1 MiB while B waits for a head). B: a PATCH holding a head. A sends on (grows: waits;
// its mark is the oldest, so it is the victim — a no-op), then B fills its head (grows: waits; the
// victim — a no-op). Nothing is in flight, nothing frees: both hang for ever (bodyTimeout does not
// count while we do not read).
import t from 'tap'
import { request as httpRequest } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { freshBucket, needsStrictS3, testClient, testS3 } from '../support/s3.ts'
import { createUpload, startTus } from '../support/tus.ts'

const KiB = 1024
const MiB = 1024 * KiB
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

interface Patch { write: (bytes: number) => void, end: () => void, status: () => number | null, destroy: () => void }
function openPatch (url: string, length: number): Patch {
  let status: number | null = null
  const request = httpRequest(url, { method: 'PATCH', headers: { 'tus-resumable': '1.0.0', 'content-type': 'application/offset+octet-stream', 'upload-offset': '0', 'content-length': String(length) } }, (response) => {
    status = response.statusCode ?? null
    response.resume()
  })
  request.on('error', () => {})
  request.flushHeaders()
  return { write: (bytes) => { request.write(Buffer.alloc(bytes, 0x41)) }, end: () => { request.end() }, status: () => status, destroy: () => { request.destroy() } }
}

t.test('a no-op eviction of a waiting tus PATCH fails a second client (both 503) where one would do', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { app, endpoint } = await startTus(t, server, bucket, { mode: 'inline', partSize: 5 * MiB, maxBufferedBytes: 5 * MiB, bodyTimeout: 60_000 })
  const size = 6 * MiB
  const a = openPatch(await createUpload(endpoint, size), size)
  const urlB = await createUpload(endpoint, size)
  t.teardown(() => { a.destroy(); b.destroy() })
  a.write(MiB)
  await sleep(300)
  const b = openPatch(urlB, size)
  b.write(32 * KiB)
  await sleep(2000)
  a.write(size - MiB); a.end()
  // B only sends on a second later (its read is pending meanwhile: a proper victim).
  await sleep(1000)
  b.write(size - 32 * KiB); b.end()
  const started = Date.now()
  while (Date.now() - started < 15_000 && (a.status() === null || b.status() === null)) await sleep(100)
  t.comment(`A ${a.status()}, B ${b.status()}; ${JSON.stringify(app.s3Chunk.stats())}`)
  t.ok(a.status() === 204 || b.status() === 204, 'one of the two is stored')
})
