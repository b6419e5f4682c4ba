// Found in review (of b79d920 + 4bad54d, the same day; failed before its fix): in workers mode a small file's PutObject runs on a thread,
// and its bytes are "shared or copied, never moved". With `workers.sharedBuffers: false` (the
// README's choice "for a process that must shrink when idle") every such file is COPIED into the
// thread by structured clone: a second copy of the file's bytes, outside `maxBufferedBytes`, made
// on the main thread, and freed only by the thread's own next GC. Four concurrent 15 MiB files
// with a 64 MiB budget held 64 MiB in the pool AND 60 MiB of copies in the thread. Before
// (b3693fc) the PUT was sent from the pool's buffer on the main thread: no copy.
// (The same holds in the default shared mode for files held in plain buffers: heads < 64 KiB, parked parts.)
import t from 'tap'
import { BroadcastChannel } from 'node:worker_threads'
import { setTimeout as sleep } from 'node:timers/promises'
import { startApp } from '../support/app.ts'
import { isPutObject, testFaultProxy } from '../support/fault-proxy.ts'
import { freshBucket, needsStrictS3, pluginS3Options, testClient, testS3 } from '../support/s3.ts'
import { streamUpload } from '../support/stream-upload.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

t.test('sharedBuffers: false — a small file\'s bytes are not held twice (pool + a copy in the thread)', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const proxy = await testFaultProxy(t, server.endpoint)
  // S3 takes 2 s per PutObject: the four files are on their way at once.
  proxy.setRules([{ match: isPutObject, fault: { kind: 'delay', ms: 2000 } }])
  const reports: Array<{ shared: boolean, bytes: number, live: number }> = []
  const channel = new BroadcastChannel('put-copies-worker-probe')
  channel.onmessage = (event) => { reports.push((event as MessageEvent).data) }
  t.teardown(() => { channel.close() })
  const budget = 64 * MiB
  const { app, url } = await startApp(t, server, {
    bucket, mode: 'workers', partSize: 16 * MiB, maxBufferedBytes: budget,
    workers: { minThreads: 1, maxThreads: 1, sharedBuffers: false, filename: new URL('./put-copies-worker-probe.mjs', import.meta.url) },
    s3: { ...pluginS3Options(server), endpoint: proxy.endpoint }
  })
  const answers = await Promise.all([1, 2, 3, 4].map(async (seed) => await streamUpload(`${url}/upload`, { seed, size: 15 * MiB, hash: false })))
  await sleep(200)
  const peakPool = app.s3Chunk.stats().peakBufferedBytes
  const copied = reports.filter((r) => !r.shared).reduce((sum, r) => sum + r.bytes, 0)
  const peakThread = Math.max(0, ...reports.map((r) => r.live))
  t.comment(`answers: ${answers.map((a) => a.status).join(', ')}; pool peak ${(peakPool / MiB).toFixed(1)} MiB of ${budget / MiB}; PutObject bodies copied into the thread: ${reports.filter((r) => !r.shared).length} (${(copied / MiB).toFixed(1)} MiB); most copied bytes the thread held at once: ${(peakThread / MiB).toFixed(1)} MiB`)
  t.ok(answers.every((a) => a.status === 200), 'all stored')
  t.ok(peakPool + peakThread <= budget + 4 * MiB, `file bytes held across threads stay within maxBufferedBytes (pool ${(peakPool / MiB).toFixed(1)} + thread ${(peakThread / MiB).toFixed(1)} MiB, budget ${budget / MiB})`)
})
