// Found in review (of 3f414f0 + 0e63374, the same day; failed before its fix): the tus variant of honest-slow-not-evicted. A tus client
// on a slow uplink (tus-js-client sends the whole file in one PATCH by default) has its PATCH failed
// by the pool's new stalled-holder eviction as soon as another upload waits for memory — although
// nothing is stuck (the budget is parts on their way to a slow S3). Eviction fails the PATCH
// (fail(), not interrupt()), so the upload goes back to its state before the PATCH: the 5 MiB part it
// had already stored does not count, the client must send it again — and under steady load it is
// failed again. Before (b3693fc) the PATCH was parked, never failed, and was stored.
import t from 'tap'
import { request as httpRequest } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { isUploadPart } from '../support/fault-proxy.ts'
import { freshBucket, needsStrictS3, testClient, testS3 } from '../support/s3.ts'
import { streamUpload } from '../support/stream-upload.ts'
import { createUpload, startTusBehindProxy, tusRequest } from '../support/tus.ts'

const KiB = 1024
const MiB = 1024 * KiB
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

/** One PATCH of `fast` bytes at once, then `slow` bytes at 24 KiB/s; resolves with the status. */
async function slowPatch (url: string, fast: number, slow: number): Promise<number | null> {
  return await new Promise((resolve) => {
    let stopped = false
    const request = httpRequest(url, { method: 'PATCH', headers: { 'tus-resumable': '1.0.0', 'content-type': 'application/offset+octet-stream', 'upload-offset': '0', 'content-length': String(fast + slow) } }, (response) => {
      stopped = true
      response.resume()
      response.on('end', () => { resolve(response.statusCode ?? null) })
    })
    request.on('error', () => { stopped = true; resolve(null) })
    request.write(Buffer.alloc(fast, 0x42))
    void (async () => {
      let sent = 0
      while (sent < slow && !stopped) {
        const n = Math.min(3 * KiB, slow - sent)
        request.write(Buffer.alloc(n, 0x43))
        sent += n
        await sleep(125)
      }
      if (!stopped) request.end()
    })()
  })
}

t.test('a slow tus PATCH is not failed (and its stored part not thrown away) while memory is only on its way back', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { url, endpoint, proxy } = await startTusBehindProxy(t, server, bucket, { mode: 'inline', partSize: 5 * MiB, maxBufferedBytes: 16 * MiB, bodyTimeout: 30_000 })
  proxy.setRules([{ match: isUploadPart, fault: { kind: 'delay', ms: 4000 } }])
  const fast = 5 * MiB + 64 * KiB
  const slow = 160 * KiB
  const upload = await createUpload(endpoint, fast + slow)
  const patch = slowPatch(upload, fast, slow)
  await sleep(600)
  const big = [1, 2, 3].map(async (seed) => await streamUpload(`${url}/upload`, { seed, size: 10 * MiB, hash: false }))
  const [status, ...b] = await Promise.all([patch, ...big])
  const head = await tusRequest(upload, 'HEAD')
  t.comment(`PATCH: ${status}; offset after: ${head.headers.get('upload-offset')} of ${fast + slow}; big: ${b.map((x) => x.status).join(', ')}`)
  t.ok(b.every((x) => x.status === 200), 'the load is stored (no deadlock)')
  t.equal(status, 204, 'the slow PATCH is stored, not 503')
  t.ok(Number(head.headers.get('upload-offset')) >= 5 * MiB, 'the part it stored counts')
})
