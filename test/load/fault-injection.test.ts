// The fault-injection suite: 200 uploads through a server (its own process)
// whose every S3 request passes a fault proxy that resets connections, answers
// 500/503, delays, and flips bytes; some clients vanish mid-body. Afterwards:
// no pending multipart upload, no object for a failed upload, every committed
// object byte-identical to what its client sent, the health route answered
// quickly throughout, and the server did not crash.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { isAbort, isComplete, isCreateMultipart, isPutObject, isUploadPart, startFaultProxy, type FaultRule } from '../support/fault-proxy.ts'
import { startPinger } from '../support/health-pinger.ts'
import { seededRandom } from '../support/seeded-random.ts'
import { startServerProcess } from '../support/server-process.ts'
import { expectedSha256, streamUpload, type StreamedUpload } from '../support/stream-upload.ts'
import { freshBucket, listKeys, needsStrictS3, objectDigest, openUploads, pendingUploads, pluginS3Options, testClient, testS3 } from '../support/s3.ts'

const MiB = 1024 * 1024
const UPLOADS = 200
const CONCURRENCY = 4
const DEADLINE_MS = 240_000
const server = await testS3()
const client = testClient(server)

const rules: FaultRule[] = [
  // Parts: every kind of fault. Retries must absorb most; the rest must abort cleanly.
  { match: isUploadPart, fault: { kind: 'status', status: 500 }, probability: 0.04 },
  { match: isUploadPart, fault: { kind: 'status', status: 503 }, probability: 0.04 },
  { match: isUploadPart, fault: { kind: 'reset' }, probability: 0.03 },
  { match: isUploadPart, fault: { kind: 'resetMidBody', afterBytes: MiB }, probability: 0.03 },
  { match: isUploadPart, fault: { kind: 'flip' }, probability: 0.03 },
  { match: isUploadPart, fault: { kind: 'delay', ms: 300 }, probability: 0.05 },
  // Single PUTs of small files.
  { match: isPutObject, fault: { kind: 'status', status: 503 }, probability: 0.05 },
  { match: isPutObject, fault: { kind: 'flip' }, probability: 0.03 },
  { match: isPutObject, fault: { kind: 'reset' }, probability: 0.02 },
  // Control requests.
  { match: isCreateMultipart, fault: { kind: 'status', status: 503 }, probability: 0.05 },
  { match: isComplete, fault: { kind: 'status', status: 500 }, probability: 0.05 },
  // The connection dies once S3 has the whole request: S3 may have completed the
  // upload while the answer is lost; the retry then meets NoSuchUpload.
  { match: isComplete, fault: { kind: 'resetMidBody', afterBytes: Number.MAX_SAFE_INTEGER }, probability: 0.05 },
  { match: isAbort, fault: { kind: 'status', status: 503 }, probability: 0.05 }
]

t.test(`${UPLOADS} uploads under injected S3 faults and client disconnects`, { skip: needsStrictS3(server) }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const proxy = await startFaultProxy({ target: server.endpoint, seed: 7 })
  t.teardown(() => proxy.close())
  const app = await startServerProcess(t, {
    bucket,
    s3: { ...pluginS3Options(server), endpoint: proxy.endpoint, maxAttempts: 3, requestTimeout: 20_000 },
    appendTimestamp: false,
    retry: { attempts: 3, baseDelayMs: 20, maxDelayMs: 200 }
  })
  proxy.setRules(rules)

  const rand = seededRandom(2026)
  const plans = Array.from({ length: UPLOADS }, (_, i) => {
    const size = i % 5 < 3
      ? Math.floor(rand() * 3 * MiB) + 1 // single PUT
      : Math.floor((6 + rand() * 10) * MiB) // multipart: 2-4 parts
    const disconnect = rand() < 0.15 ? Math.floor(size * (0.1 + 0.8 * rand())) : undefined
    return { seed: 10_000 + i, size, disconnect, filename: `u-${i}.bin` }
  })

  // The health route, every 50 ms, for as long as the uploads run.
  const pinger = startPinger(`${app.url}/health`, { intervalMs: 50, maxMs: DEADLINE_MS })

  const started = Date.now()
  const results: Array<StreamedUpload & { plan: typeof plans[number] }> = []
  let next = 0
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < plans.length && Date.now() - started < DEADLINE_MS) {
      const plan = plans[next++] as typeof plans[number]
      // Hashes are computed after the run: hashing 1 GiB here would compete with the server for the CPU.
      const options: Parameters<typeof streamUpload>[1] = { seed: plan.seed, size: plan.size, filename: plan.filename, hash: false }
      if (plan.disconnect !== undefined) options.disconnectAfter = plan.disconnect
      results.push({ ...await streamUpload(`${app.url}/upload`, options), plan })
    }
  }))
  const seconds = (Date.now() - started) / 1000
  const pings = await pinger.stop()
  t.equal(results.length, UPLOADS, 'every planned upload ran before the deadline')

  // The server winds down: every upload seen through, nothing in flight, no buffer held. A
  // client that hung up was done before the server had read what it sent (loopback buffers
  // hold megabytes): the upload may not even have begun when the last client returns.
  const settled = (h: typeof health): boolean => h.uploads !== undefined && h.uploads.openConnections === 0 && h.uploads.handled === h.uploads.received &&
    h.stats.uploadsInFlight === 0 && h.stats.bufferedBytes === 0
  let health = await app.health()
  for (let i = 0; i < 100 && !settled(health); i++) {
    await sleep(100)
    health = await app.health()
  }
  t.ok(settled(health), `the server saw every upload it received through: ${JSON.stringify(health.uploads)}`)
  t.equal(health.stats.uploadsInFlight, 0, 'no upload left running')
  t.equal(health.stats.bufferedBytes, 0, 'no part buffer left held')

  const ok = results.filter((r) => r.status === 200)
  const failed = results.filter((r) => r.status !== 200)
  const stored = new Set(await listKeys(client, bucket))
  const orphans = await openUploads(client, bucket)
  const ghosts = (await pendingUploads(client, bucket)).length - orphans.length
  let corrupted = 0
  for (const result of ok) {
    const key = (JSON.parse(result.body) as { key: string }).key
    if (!stored.has(key)) { t.fail(`${key}: answered 200 but not in the bucket`); continue }
    const digest = await objectDigest(client, bucket, key)
    if (digest.sha256 !== expectedSha256(result.plan.seed, result.plan.size) || digest.size !== result.plan.size) corrupted++
  }
  const committedFailures = failed.filter((r) => stored.has(r.plan.filename))
  const statuses = failed.reduce<Record<string, number>>((counts, r) => {
    const label = r.status === null ? (r.plan.disconnect !== undefined ? 'client disconnected' : `client error: ${r.error?.message ?? '?'}`) : String(r.status)
    counts[label] = (counts[label] ?? 0) + 1
    return counts
  }, {})
  const { p99, max } = pings
  const faults = proxy.stats().faults

  t.comment(`fault injection: ${results.length} uploads in ${seconds.toFixed(1)} s — ${ok.length} stored, ${failed.length} failed ${JSON.stringify(statuses)}`)
  t.comment(`faults injected: ${JSON.stringify(faults)} over ${proxy.stats().requests} S3 requests`)
  for (const r of failed.filter((r) => r.status !== null)) t.comment(`${r.plan.filename} answered ${r.status}: ${r.body.slice(0, 300)}`)
  t.comment(`orphaned multipart uploads: ${orphans.length} (and ${ghosts} listed by MinIO's listing cache only, see openUploads); objects committed for failed uploads: ${committedFailures.length}; corrupted objects: ${corrupted}`)
  t.comment(`health route: ${pings.latencies.length} answers, p99 ${p99.toFixed(1)} ms, max ${max.toFixed(1)} ms, errors ${pings.errors}; server event loop delay p99 ${health.eventLoopDelayMs.p99.toFixed(1)} ms, max ${health.eventLoopDelayMs.max.toFixed(1)} ms; server peak RSS ${(health.maxRss / MiB).toFixed(0)} MiB`)

  // What the client of an orphan saw, should there be one: its plan and its answer.
  for (const orphan of orphans) {
    const result = results.find((r) => r.plan.filename === orphan.key)
    t.comment(`open upload ${orphan.key}: ${result === undefined ? 'no client of that name' : JSON.stringify({ ...result.plan, status: result.status, body: result.body.slice(0, 200), error: result.error?.message })}`)
  }
  t.same(orphans, [], 'zero pending multipart uploads')
  t.same(committedFailures.map((r) => r.plan.filename), [], 'zero committed objects for failed uploads')
  t.equal(corrupted, 0, 'every committed object byte-identical to its source')
  t.equal(stored.size, ok.length, 'exactly the successful uploads are in the bucket')
  t.ok(Object.values(faults).reduce((a, b) => a + b, 0) >= 50, 'faults were really injected')
  t.ok(ok.length >= UPLOADS * 0.5, 'retries absorbed most faults')
  t.ok(failed.every((r) => r.status === null || (r.status >= 400 && r.status < 600)), 'failures are clean HTTP errors or client-side disconnects')
  t.equal(pings.errors, 0, 'the health route always answered')
  // The server stays responsive under faults: no stall of seconds. Bounds are
  // generous on purpose — this 2-core machine is shared (MinIO, the proxy and the
  // clients compete for the cores) and CI's runs on 2026-11-22 saw event-loop
  // maxima of 57–85 ms and health-route maxima of 84–181 ms; a tight bound would
  // fail on scheduling noise, not on the plugin. (A run on Node 24 beside other test runs,
  // 2026-12-06, saw an event-loop maximum of 261 ms, p99 107 ms: hence 500, still far from a stall of seconds.)
  t.ok(health.eventLoopDelayMs.max < 500, `the server's event loop never stalled 500 ms (max ${health.eventLoopDelayMs.max.toFixed(1)} ms)`)
  const p95 = pings.latencies[Math.floor(pings.latencies.length * 0.95)] ?? 0
  t.ok(p95 < 250, `the health route answered within 250 ms 95 % of the time (p95 ${p95.toFixed(1)} ms)`)
  t.ok(max < 1000, `and never slower than 1 s (max ${max.toFixed(1)} ms)`)
})
