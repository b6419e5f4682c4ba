// Attack (helper-30, 2026-12-06; failed before the fix): pin the memory budget for
// free with s3File()'s commit gate. A file smaller than one part went out as one
// PutObject once the whole body was read — and its buffer stayed reserved until
// then. A client sends one just-under-a-part file at full speed, then starts a
// second file (which s3File() reads through and discards) and drips a byte a
// second into it: every byte is a read, so bodyTimeout never fires, and the
// sealed buffer counted as on its way to S3, out of reach of the pool's relief.
// Three such clients held 15 of a 16 MiB budget and an honest upload got no
// answer for as long as they dripped (52 do it at the default 256 MiB). Now a
// one-part file whose gate is still shut a second later goes as the only part
// of a multipart upload, and its buffer comes back at once.
import t, { type Test } from 'tap'
import { connect, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { startApp } from '../support/app.ts'
import { freshBucket, needsStrictS3, pendingUploads, testClient, testS3 } from '../support/s3.ts'
import { streamUpload, type StreamedUpload } from '../support/stream-upload.ts'

const KiB = 1024
const MiB = 1024 * KiB
const PART = 5 * MiB
const BUDGET = 16 * MiB
const ATTACKERS = 3
const VICTIM_BOUND_MS = 20_000
// One file's bytes, shared by every attacker (their keys are random anyway).
const file = randomBytes(PART - 4 * KiB)

const server = await testS3()
const client = testClient(server)

interface Attacker { socket: Socket, answer: () => string, stop: () => void }

/** A file of PART - 4 KiB at full speed, then a second file started and dripped one byte per second. */
async function openAttacker (url: URL, n: number): Promise<Attacker> {
  const sep = `----pin-${randomBytes(8).toString('hex')}`
  const body = Buffer.concat([
    Buffer.from(`--${sep}\r\nContent-Disposition: form-data; name="file"; filename="pin-${n}.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`),
    file,
    Buffer.from(`\r\n--${sep}\r\nContent-Disposition: form-data; name="pad"; filename="pad.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`)
  ])
  const socket = connect({ host: url.hostname, port: Number(url.port) })
  socket.on('error', () => {})
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  let answer = ''
  socket.on('data', (chunk: Buffer) => { answer += chunk.toString('latin1') })
  socket.write(`POST /upload HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: multipart/form-data; boundary=${sep}\r\nContent-Length: ${body.byteLength + 64 * KiB}\r\n\r\n`)
  socket.write(body)
  const drip = setInterval(() => { if (!socket.destroyed) socket.write('x') }, 1000)
  return { socket, answer: () => answer, stop: () => { clearInterval(drip); socket.destroy() } }
}

async function scenario (t: Test, budget: number, attackerCount: number, bodyTimeout: number, boundMs: number): Promise<void> {
  const bucket = await freshBucket(t, server, client)
  const { app, url } = await startApp(t, server, { bucket, mode: 'inline', partSize: PART, ...(budget !== 256 * MiB ? { maxBufferedBytes: budget } : {}), bodyTimeout })
  const base = new URL(url)
  const attackers: Attacker[] = []
  t.teardown(() => { for (const a of attackers) a.stop() })
  for (let i = 0; i < attackerCount; i++) attackers.push(await openAttacker(base, i))
  // Let their files arrive and their parts seal.
  for (let i = 0; i < 100 && app.s3Chunk.stats().bufferedBytes < attackerCount * PART; i++) await sleep(100)
  await sleep(1500)
  const pinned = app.s3Chunk.stats().bufferedBytes
  t.comment(`${attackerCount} attackers (each ${((PART - 4 * KiB) / MiB).toFixed(2)} MiB sent once, then 1 B/s) hold ${(pinned / MiB).toFixed(1)} MiB of the ${budget / MiB} MiB budget`)

  const started = Date.now()
  const victim = streamUpload(`${url}/upload`, { seed: 7, size: 12 * MiB, filename: 'honest.bin' })
  const result = await Promise.race([victim, sleep(boundMs, null, { ref: false })]) as StreamedUpload | null
  const stats = app.s3Chunk.stats()
  t.comment(`after ${Date.now() - started} ms: stats ${JSON.stringify({ bufferedBytes: stats.bufferedBytes, partsWaitingForMemory: stats.partsWaitingForMemory, uploadsInFlight: stats.uploadsInFlight })}`)
  t.equal(result?.status, 200, `the honest 12 MiB upload is stored within ${boundMs / 1000} s while the attackers drip`)
  t.ok(pinned < PART, `clients sending ~1 B/s hold no part buffer while they drip (${(pinned / MiB).toFixed(1)} MiB held)`)
  for (const a of attackers) a.stop()
  // Their multipart uploads, whose Complete waited for bodies that never ended, are aborted when they leave.
  let open: unknown[] = []
  for (let i = 0; i < 100; i++) {
    open = await pendingUploads(client, bucket)
    if (open.length === 0) break
    await sleep(100)
  }
  t.same(open, [], 'no multipart upload left open once they are gone')
}

t.test(`${ATTACKERS} clients that sent one small file and then drip 1 B/s hold no memory and cannot hold an honest upload back (16 MiB budget)`, { skip: needsStrictS3(server) }, async (t) => {
  await scenario(t, BUDGET, ATTACKERS, 5_000, VICTIM_BOUND_MS)
})
