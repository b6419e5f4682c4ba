// Found by an attack run: the budget's relief (park the slow, then evict the stalest holder) never evicts
// while any part in the pool fills "at a healthy pace" (≥ 64 KiB/s). One attacker connection
// trickling at ~80 KiB/s is enough to switch the eviction off for everyone: two silent clients
// each holding a part (whole-part-pin's attack, fixed to 0.3 s) then hold an honest upload back
// for their whole bodyTimeout again.
import t from 'tap'
import { connect } from 'node:net'
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

/** A multipart upload that sends `first` bytes of its file, then `perTick` bytes every 100 ms. */
async function trickler (baseUrl: string, first: number, perTick: number): Promise<{ stop: () => void, sent: () => number }> {
  const url = new URL('/upload', baseUrl)
  const separator = '----trickle'
  const socket = connect({ host: url.hostname, port: Number(url.port) })
  socket.on('error', () => {})
  socket.on('data', () => {})
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  socket.write(`POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: multipart/form-data; boundary=${separator}\r\nContent-Length: ${1024 * MiB}\r\n\r\n`)
  socket.write(`--${separator}\r\nContent-Disposition: form-data; name="file"; filename="trickle.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`)
  let sent = first
  socket.write(Buffer.alloc(first, 5))
  const timer = setInterval(() => { socket.write(Buffer.alloc(perTick, 5)); sent += perTick }, 100)
  return { stop: () => { clearInterval(timer); socket.destroy() }, sent: () => sent }
}

t.test('two silent part holders and one trickler do not hold an honest upload back', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { app, url } = await startApp(t, server, { bucket, mode: 'inline', partSize: 5 * MiB, maxBufferedBytes: 16 * MiB, bodyTimeout: 30_000 })
  const silent: SlowClient[] = []
  t.teardown(() => { for (const one of silent) one.close() })
  for (let i = 0; i < 2; i++) silent.push(await openSlowClient(url, { declaredLength: 64 * MiB, initialBytes: 5 * MiB - 1, filename: `pin-${i}.bin` }))
  // 128 KiB now (past the sniffed head and the 64 KiB part head: a whole part reserved), then ~80 KiB/s.
  const slow = await trickler(url, 128 * KiB, 8 * KiB)
  t.teardown(slow.stop)
  await sleep(1500)
  t.comment(`held: ${(app.s3Chunk.stats().bufferedBytes / MiB).toFixed(1)} MiB of 16`)
  const started = Date.now()
  const honest = await streamUpload(`${url}/upload`, { seed: 7, size: 12 * MiB, hash: false })
  const took = Date.now() - started
  t.comment(`honest upload: ${honest.status} after ${took} ms; silent: ${silent.map((one) => one.status()).join(', ')}; trickler sent ${(slow.sent() / KiB).toFixed(0)} KiB`)
  t.equal(honest.status, 200, 'the honest upload is stored')
  t.ok(took < 15_000, `without waiting out the silent clients' bodyTimeout (${took} ms; 0.3 s without the trickler: whole-part-pin)`)
  slow.stop()
})
