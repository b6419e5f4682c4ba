// `tsx bench/sign-batches.ts`: the signing routes under load. Ten clients each
// ask for one maximal batch of part URLs at once, again and again for a few
// seconds, while a worker thread GETs /health every ~10 ms; prints the health
// latencies (p50/p99/max) and the signing rate. The server runs in this
// process (as in production, signing shares its event loop with every route);
// the pinger's own thread keeps its timing free of the server's load.
import Fastify from 'fastify'
import { CreateBucketCommand } from '@aws-sdk/client-s3'
import s3Chunk from 'fastify-s3-chunk'
import { startPinger } from '../test/support/health-pinger.ts'
import { startS3 } from '../test/support/s3-server.ts'

const BATCH = Number(process.env.BATCH ?? 100)
const CLIENTS = Number(process.env.CLIENTS ?? 10)
const SECONDS = Number(process.env.SECONDS ?? 5)
const SIZE = Number(process.env.SIZE ?? 5 * 1024 ** 4)

const s3 = await startS3({ quiet: true })
const app = Fastify()
try {
  await app.register(s3Chunk, {
    bucket: 'sign-bench',
    keyPrefix: 'media',
    mode: 'inline',
    s3: { region: s3.region, endpoint: s3.endpoint, forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } },
    // maxBatchParts is new: the baseline (before the cap) ignores it... and refuses unknown options, hence only when set.
    direct: { authorize: () => ({ userId: 'bench' }), ...(process.env.MAX_BATCH === undefined ? {} : { maxBatchParts: Number(process.env.MAX_BATCH) }) }
  })
  app.get('/health', async () => ({ ok: true }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  await app.s3Chunk.client.send(new CreateBucketCommand({ Bucket: 'sign-bench' })).catch(() => {})
  const address = app.server.address()
  const url = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
  const created = await (await fetch(`${url}/s3/multipart`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ filename: 'big.bin', type: 'application/octet-stream', size: SIZE }) })).json() as { key: string, uploadId: string }
  if (typeof created.uploadId !== 'string') throw new Error(`create failed: ${JSON.stringify(created)}`)
  const numbers = Array.from({ length: BATCH }, (_, i) => i + 1).join(',')
  const batchUrl = `${url}/s3/multipart/${encodeURIComponent(created.uploadId)}/batch?key=${encodeURIComponent(created.key)}&partNumbers=${numbers}`
  const first = await fetch(batchUrl)
  if (first.status !== 200) throw new Error(`batch of ${BATCH}: HTTP ${first.status} ${await first.text()}`)
  await first.arrayBuffer()

  const pinger = startPinger(`${url}/health`, { intervalMs: 10, maxMs: (SECONDS + 30) * 1000 })
  await new Promise((resolve) => setTimeout(resolve, 300))
  const deadline = Date.now() + SECONDS * 1000
  let batches = 0
  let failures = 0
  await Promise.all(Array.from({ length: CLIENTS }, async () => {
    for (let round = 0; round < 100_000 && Date.now() < deadline; round++) {
      const response = await fetch(batchUrl)
      await response.arrayBuffer()
      if (response.status === 200) batches++
      else failures++
    }
  }))
  const health = await pinger.stop()
  const at = (q: number): number => health.latencies[Math.min(health.latencies.length - 1, Math.floor(health.latencies.length * q))] ?? 0
  console.log(JSON.stringify({
    clients: CLIENTS,
    batch: BATCH,
    seconds: SECONDS,
    batches,
    failures,
    urlsPerSecond: Math.round(batches * BATCH / SECONDS),
    health: { samples: health.latencies.length, errors: health.errors, p50: +at(0.5).toFixed(1), p99: +at(0.99).toFixed(1), max: +health.max.toFixed(1) }
  }))
} finally {
  await app.close()
  await s3.stop()
}
