// Found in review (of b79d920 + 4bad54d, the same day; failed before its fix): a small file's PutObject now waits in Piscina's queue behind
// other uploads' parts. app.close() (closeGracePeriod 0) does not stop it: the coordinator does not
// race the put with the shutdown, Piscina's close() waits only for the tasks threads run and then
// rejects the queued ones ('Terminating worker thread'), which put() takes for a thread that died
// and sends again from the main thread (putAgainHere) — while engine.close() destroys the clients.
// The promise (README, Reliability): uploads still in flight when the grace ends are aborted, 503 +
// Retry-After, nothing committed; close resolves. Before (b3693fc) the small file's PUT went from
// the main thread at once and was answered 200 in milliseconds.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { S3File } from 'fastify-s3-chunk'
import { startApp } from '../support/app.ts'
import { isPutObject, isUploadPart, testFaultProxy } from '../support/fault-proxy.ts'
import { postMultipart } from '../support/multipart.ts'
import { freshBucket, listKeys, needsStrictS3, pluginS3Options, testClient, testS3 } from '../support/s3.ts'
import { streamUpload } from '../support/stream-upload.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

t.test('a small file queued behind slow parts when app.close() runs: 200 before close, or 503 and nothing stored', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const proxy = await testFaultProxy(t, server.endpoint)
  // S3 is slow on parts (12 s each): the pool's one slot is busy.
  proxy.setRules([{ match: isUploadPart, fault: { kind: 'delay', ms: 12_000 } }])
  const recorded: Array<{ key: string, at: number }> = []
  const putsSeen: number[] = []
  const { app, url } = await startApp(t, server, {
    bucket, mode: 'workers', partSize: 5 * MiB,
    workers: { minThreads: 1, maxThreads: 1, concurrentTasksPerWorker: 1 },
    s3: { ...pluginS3Options(server), endpoint: proxy.endpoint },
    onUploadComplete: (file: S3File) => { recorded.push({ key: file.key, at: Date.now() }) }
  })
  proxy.setRules([
    { match: isUploadPart, fault: { kind: 'delay', ms: 12_000 } },
    { match: (r) => { if (isPutObject(r)) putsSeen.push(Date.now()); return false }, fault: { kind: 'delay', ms: 0 } }
  ])
  const big = streamUpload(`${url}/upload`, { seed: 1, size: 6 * MiB, hash: false })
  await sleep(1000)
  const smallStarted = Date.now()
  const small = postMultipart(`${url}/upload`, [{ name: 'file', filename: 'small.bin', data: randomBytes(100 * 1024) }]).catch((error: unknown) => ({ status: null, body: String(error) }))
  const early = await Promise.race([small.then((a) => a.status), sleep(1500).then(() => null)])
  t.comment(`small upload after 1.5 s: ${early ?? 'no answer yet (its PutObject waits in the pool queue behind a part)'}`)
  const closeStarted = Date.now()
  await app.close()
  const closedAt = Date.now()
  t.comment(`app.close() took ${closedAt - closeStarted} ms`)
  const answer = await Promise.race([small, sleep(15_000).then(() => ({ status: null, body: 'no answer' }))])
  await big.catch(() => {})
  await sleep(2000)
  const keys = await listKeys(client, bucket)
  t.comment(`small: ${answer.status} after ${Date.now() - smallStarted} ms: ${String(answer.body).slice(0, 160)}`)
  t.comment(`keys: ${JSON.stringify(keys)}; PutObjects reaching S3 at +${putsSeen.map((at) => at - closeStarted).join(', +')} ms from close; recorded: ${JSON.stringify(recorded.map((r) => ({ key: r.key, afterClose: r.at - closedAt })))}`)
  const stored = keys.some((key) => key.startsWith('small'))
  if (early !== null) {
    t.equal(early, 200, 'answered before the close began: stored')
  } else {
    // Still running when the grace (0) ended: README "at the end of the grace the uploads still running are aborted … 503 FST_S3CHUNK_CLOSING, nothing stored".
    t.equal(answer.status, 503, `an upload still running at the end of the grace is answered 503 (got ${answer.status})`)
    t.notOk(stored, 'and nothing of it is stored')
    t.equal(recorded.length, 0, 'and onUploadComplete does not run for it')
  }
})
