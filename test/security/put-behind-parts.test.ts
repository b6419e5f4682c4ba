// Found in review (of b79d920, the same day; failed before its fix): a small file's single PutObject now waits for a worker slot behind
// every other upload's parts (Piscina's queue is FIFO, parts and PUTs alike). With the defaults
// (16 tasks per thread) and four large uploads whose parts S3 is slow to take, a 100 KiB upload
// waits for a slot as long as a 5 MiB part takes S3 — here it was answered only after the large
// uploads themselves. Before (b3693fc) the PUT went from the main thread at once. (Ordering, not a
// time bound: the small file must not wait for other uploads' parts.)
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { startApp } from '../support/app.ts'
import { isUploadPart, testFaultProxy } from '../support/fault-proxy.ts'
import { postMultipart } from '../support/multipart.ts'
import { freshBucket, needsStrictS3, pluginS3Options, testClient, testS3 } from '../support/s3.ts'
import { streamUpload } from '../support/stream-upload.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

t.test('a small upload is not queued behind other uploads\' parts', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const proxy = await testFaultProxy(t, server.endpoint)
  let firstPart = 0
  proxy.setRules([{ match: (r) => { const hit = isUploadPart(r); if (hit && firstPart === 0) firstPart = Date.now(); return hit }, fault: { kind: 'delay', ms: 5000 } }])
  const { url } = await startApp(t, server, {
    bucket, mode: 'workers', partSize: 5 * MiB,
    // One thread taking 4 tasks at once: the slots two large uploads' parts fill (the defaults, 16 per thread, fill the same way under more load).
    workers: { minThreads: 1, maxThreads: 1, concurrentTasksPerWorker: 4 },
    s3: { ...pluginS3Options(server), endpoint: proxy.endpoint }
  })
  const order: string[] = []
  const big = [1, 2].map(async (seed) => {
    const answer = await streamUpload(`${url}/upload`, { seed, size: 20 * MiB + 1, hash: false })
    order.push(`big${seed}:${answer.status}`)
  })
  await sleep(1500)
  const started = Date.now()
  const small = postMultipart(`${url}/upload`, [{ name: 'file', filename: 'small.bin', data: randomBytes(100 * 1024) }]).then((answer) => {
    order.push(`small:${answer.status}`)
    return { took: Date.now() - started, at: Date.now() }
  })
  const { took, at } = await small
  await Promise.all(big)
  t.comment(`answers in order: ${order.join(', ')}; the small upload took ${took} ms`)
  t.equal(order[0], 'small:200', 'the small upload is answered before the large ones')
  t.ok(at < firstPart + 5000, `and before S3 has answered any of their parts (answered ${at - firstPart} ms after the first part went to S3, which holds each 5000 ms)`)
})
