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
// count while we do not read). With B sending on a second later (its read pending meanwhile, a
// proper victim), the no-op eviction of A failed B as well (both 503) where one would do.
import t, { type Test } from 'tap'
import { request as httpRequest } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { freshBucket, needsStrictS3, testClient, testS3 } from '../support/s3.ts'
import { createUpload, startTus, type TusApp } from '../support/tus.ts'

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

/**
 * Two PATCHes of 6 MiB on a budget of one part: A sent 1 MiB and paused (parked while B waits for
 * a head), B holds a head. Then A sends the rest, and B `bAfterMs` later.
 */
async function parkedThenHead (t: Test, bAfterMs: number): Promise<{ app: TusApp['app'], endpoint: string, a: Patch, b: Patch }> {
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
  t.comment(`A parked, B a head: ${JSON.stringify(app.s3Chunk.stats())}`)
  a.write(size - MiB); a.end()
  await sleep(bAfterMs)
  b.write(size - 32 * KiB); b.end()
  const started = Date.now()
  while (Date.now() - started < 15_000 && (a.status() === null || b.status() === null)) await sleep(100)
  t.comment(`after ${Date.now() - started} ms: A ${a.status()}, B ${b.status()}; ${JSON.stringify(app.s3Chunk.stats())}`)
  return { app, endpoint, a, b }
}

t.test('a deadlock of tus PATCHes waiting to grow is relieved', { skip }, async (t) => {
  const { app, endpoint, a, b } = await parkedThenHead(t, 50)
  t.ok(a.status() !== null && b.status() !== null, 'both PATCHes are answered within 15 s (no deadlock)')
  t.ok(a.status() === 204 || b.status() === 204, 'one of them is stored')
  // Both clients give up: does the server get its budget back?
  a.destroy(); b.destroy()
  await sleep(3000)
  t.comment(`3 s after both clients left: ${JSON.stringify(app.s3Chunk.stats())}`)
  const c = openPatch(await createUpload(endpoint, MiB), MiB)
  c.write(MiB); c.end()
  const cStarted = Date.now()
  while (Date.now() - cStarted < 10_000 && c.status() === null) await sleep(100)
  t.comment(`a new 1 MiB PATCH after the clients left: ${c.status()} after ${Date.now() - cStarted} ms; ${JSON.stringify(app.s3Chunk.stats())}`)
  t.equal(c.status(), 204, 'a new upload is served once the deadlocked clients left')
  c.destroy()
})

t.test('a no-op eviction of a waiting tus PATCH fails a second client (both 503) where one would do', { skip }, async (t) => {
  const { a, b } = await parkedThenHead(t, 1000)
  t.ok(a.status() === 204 || b.status() === 204, 'one of the two is stored')
})
