// Found by an attack run: fill the budget with part heads (64 KiB each: a connection that sent 8 KiB of a
// file and went silent). Heads cannot be parked; the relief frees one holder per 250 ms tick, so
// an honest part of 5 MiB waits for ~80 evictions (~20 s) before it can fill.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { startApp } from '../support/app.ts'
import { freshBucket, needsStrictS3, testClient, testS3 } from '../support/s3.ts'
import { openSlowClient, type SlowClient } from '../support/slow-client.ts'
import { streamUpload } from '../support/stream-upload.ts'

const KiB = 1024
const MiB = 1024 * KiB
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)
const CLIENTS = 256

t.test(`${CLIENTS} silent heads do not hold an honest upload back for long`, { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { app, url } = await startApp(t, server, { bucket, mode: 'inline', partSize: 5 * MiB, maxBufferedBytes: 16 * MiB, bodyTimeout: 60_000 })
  const silent: SlowClient[] = []
  t.teardown(() => { for (const one of silent) one.close() })
  for (let i = 0; i < CLIENTS; i++) silent.push(await openSlowClient(url, { declaredLength: 64 * MiB, initialBytes: 8 * KiB, filename: `head-${i}.bin` }))
  await sleep(1500)
  t.comment(`held: ${(app.s3Chunk.stats().bufferedBytes / MiB).toFixed(2)} MiB of 16`)
  const started = Date.now()
  const honest = await streamUpload(`${url}/upload`, { seed: 7, size: 12 * MiB, hash: false })
  const took = Date.now() - started
  const refused = silent.filter((one) => one.status() === 503).length
  t.comment(`honest upload: ${honest.status} after ${took} ms; ${refused} heads evicted (503)`)
  t.equal(honest.status, 200, 'the honest upload is stored')
  t.ok(took < 15_000, `within 15 s: the heads stalled 8 s go at once, not one per 250 ms (20 s) (${took} ms)`)
})

// The same over ONE HTTP/2 connection (Node's default maxConcurrentStreams is 2^32 - 1): a
// per-connection limit (the README's answer: a proxy's limit_conn) does not bound it when the
// app serves HTTP/2 itself.
t.test(`${CLIENTS} silent heads on one HTTP/2 connection`, { skip }, async (t) => {
  const { connect: connectHttp2 } = await import('node:http2')
  const Fastify = (await import('fastify')).default
  const s3Chunk = (await import('fastify-s3-chunk')).default
  const { pluginS3Options } = await import('../support/s3.ts')
  const bucket = await freshBucket(t, server, client)
  const app = Fastify({ http2: true })
  await app.register(s3Chunk, { s3: pluginS3Options(server), bucket, mode: 'inline', partSize: 5 * MiB, maxBufferedBytes: 16 * MiB, bodyTimeout: 60_000 })
  app.post('/upload', async (request) => await request.s3File())
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { await app.close() })
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const session = connectHttp2(base)
  session.on('error', () => {})
  t.teardown(() => { session.destroy() })
  const statuses: number[] = []
  const separator = '----h2flood'
  for (let i = 0; i < CLIENTS; i++) {
    const stream = session.request({ ':method': 'POST', ':path': '/upload', 'content-type': `multipart/form-data; boundary=${separator}` })
    stream.on('response', (head) => { statuses.push(Number(head[':status'])) })
    stream.on('error', () => {})
    stream.on('data', () => {})
    stream.write(`--${separator}\r\nContent-Disposition: form-data; name="file"; filename="h-${i}.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`)
    stream.write(Buffer.alloc(8 * KiB, 1))
  }
  await sleep(2000)
  t.comment(`one connection, ${CLIENTS} streams: held ${(app.s3Chunk.stats().bufferedBytes / MiB).toFixed(2)} MiB of 16`)
  const started = Date.now()
  const honest = await new Promise<number>((resolve) => {
    const other = connectHttp2(base)
    other.on('error', () => { resolve(0) })
    const stream = other.request({ ':method': 'POST', ':path': '/upload', 'content-type': `multipart/form-data; boundary=${separator}` })
    stream.on('response', (head) => { resolve(Number(head[':status'])); other.close() })
    stream.on('error', () => { resolve(0) })
    stream.on('data', () => {})
    void (async () => {
      stream.write(`--${separator}\r\nContent-Disposition: form-data; name="file"; filename="honest.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`)
      const block = Buffer.alloc(MiB, 3)
      for (let i = 0; i < 12; i++) if (!stream.write(block)) await new Promise((r) => stream.once('drain', r))
      stream.end(`\r\n--${separator}--\r\n`)
    })()
  })
  const took = Date.now() - started
  t.comment(`honest upload: ${honest} after ${took} ms; ${statuses.filter((s) => s === 503).length} streams evicted (503)`)
  t.equal(honest, 200, 'the honest upload is stored')
  t.ok(took < 15_000, `within 15 s: the heads stalled 8 s go at once, not one per 250 ms (20 s) (${took} ms)`)
})

