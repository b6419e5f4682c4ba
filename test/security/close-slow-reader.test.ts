// Attack (helper-30, 2026-12-06; failed before the fix: close had not resolved after 20 s):
// hold a server's shutdown open with a request that is between files.
// app.close() tells the uploads *in flight* (coordinators) to stop, but a
// request whose body is being read outside a file — a trailing field after
// s3File()'s file (a second file s3File() only reads through), or fields
// before the first file — has no coordinator: it is never told. The client
// keeps the reads coming (one byte a second into the discarded file, or one
// tiny field a second), so bodyTimeout (5 s here) never fires either, and the
// request — and with it app.close() — goes on for as long as it likes.
// README: "app.close() aborts uploads still in flight (503 to their clients)
// and then destroys the pool, so shutdown never waits on a slow client";
// Reliability: "app.close() during uploads → ... the rest are aborted (503 +
// Retry-After), the pool is drained, close resolves".
import t from 'tap'
import { connect, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { startApp } from '../support/app.ts'
import { freshBucket, listKeys, needsStrictS3, testClient, testS3 } from '../support/s3.ts'

const KiB = 1024
const CLOSE_BOUND_MS = 20_000

const server = await testS3()
const client = testClient(server)

interface Dripper { status: () => number | null, closed: () => boolean, stop: () => void }

async function openDripper (url: URL, path: string, mode: 'second-file' | 'fields'): Promise<Dripper> {
  const sep = `----drip-${randomBytes(8).toString('hex')}`
  const body = mode === 'second-file'
    ? Buffer.concat([
      Buffer.from(`--${sep}\r\nContent-Disposition: form-data; name="file"; filename="small.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`),
      randomBytes(2 * KiB),
      Buffer.from(`\r\n--${sep}\r\nContent-Disposition: form-data; name="pad"; filename="pad.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`)
    ])
    : Buffer.alloc(0)
  const socket = connect({ host: url.hostname, port: Number(url.port) })
  socket.on('error', () => {})
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  let answer = ''
  let closed = false
  socket.on('data', (chunk: Buffer) => { answer += chunk.toString('latin1') })
  socket.on('close', () => { closed = true })
  socket.write(`POST ${path} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: multipart/form-data; boundary=${sep}\r\nContent-Length: ${body.byteLength + 64 * KiB}\r\n\r\n`)
  socket.write(body)
  let n = 0
  const drip = setInterval(() => {
    if (socket.destroyed) return
    socket.write(mode === 'second-file' ? 'x' : `--${sep}\r\nContent-Disposition: form-data; name="f${n++}"\r\n\r\nx\r\n`)
  }, 1000)
  return {
    status: () => { const m = /^HTTP\/1\.1 (\d{3})/.exec(answer); return m === null ? null : Number(m[1]) },
    closed: () => closed,
    stop: () => { clearInterval(drip); socket.destroy() }
  }
}

for (const c of [
  { name: 's3File(): a small file, then a second (discarded) file dripped at 1 B/s', path: '/upload', mode: 'second-file' as const },
  { name: 's3Files(): one tiny field a second, no file yet', path: '/many', mode: 'fields' as const }
]) {
  t.test(`${c.name}: app.close() (grace 0) answers it 503 and resolves without waiting for the client`, { skip: needsStrictS3(server) }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const { app, url } = await startApp(t, server, { bucket, mode: 'inline', bodyTimeout: 5_000 })
    const dripper = await openDripper(new URL(url), c.path, c.mode)
    t.teardown(dripper.stop)
    await sleep(1500)
    const started = Date.now()
    const closing = app.close().then(() => Date.now() - started)
    const ms = await Promise.race([closing, sleep(CLOSE_BOUND_MS, null, { ref: false })])
    t.comment(`close: ${ms === null ? `not resolved after ${CLOSE_BOUND_MS} ms` : `resolved in ${ms} ms`}; client: status ${String(dripper.status())}, socket ${dripper.closed() ? 'closed' : 'open'}`)
    t.ok(ms !== null, `app.close() resolved within ${CLOSE_BOUND_MS / 1000} s although a client kept dripping`)
    t.equal(dripper.status(), 503, 'the dripping client is answered 503')
    dripper.stop()
    await closing
    t.same(await listKeys(client, bucket), [], 'nothing stored')
  })
}
