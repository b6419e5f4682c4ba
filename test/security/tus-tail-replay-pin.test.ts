// Found by an attack run: a tus PATCH reads the upload's stored tail (up to a part) back from S3 into
// the memory budget before its client has sent a byte of its body. So a client that once left a
// tail of just under a part in each of a few uploads can pin the budget again and again with
// PATCHes that send no body byte at all — headers only, then silence — where a streamed client
// must send every byte it pins. Memory is no longer "reserved as the clients' bytes arrive".
// With the eviction of a silent tus PATCH not freeing anything (tus-budget-pin), an honest
// upload waits out bodyTimeout.
import t from 'tap'
import { connect, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { freshBucket, needsStrictS3, testClient, testS3 } from '../support/s3.ts'
import { createUpload, patchUpload, startTus } from '../support/tus.ts'
import { streamUpload } from '../support/stream-upload.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

/** A PATCH on a raw socket declaring `declared` body bytes, and sending none. */
async function emptyHandedPatch (uploadUrl: string, offset: number, declared: number): Promise<{ socket: Socket, status: () => number | null }> {
  const url = new URL(uploadUrl)
  const socket = connect({ host: url.hostname, port: Number(url.port) })
  let answer = ''
  socket.on('data', (chunk: Buffer) => { answer += chunk.toString('latin1') })
  socket.on('error', () => {})
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  socket.write(`PATCH ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: ${offset}\r\nContent-Length: ${declared}\r\n\r\n`)
  return { socket, status: () => { const m = /^HTTP\/1\.1 (\d{3})/.exec(answer); return m === null ? null : Number(m[1]) } }
}

t.test('PATCHes that send no body byte do not pin the memory budget with stored tails', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { app, url, endpoint } = await startTus(t, server, bucket, { mode: 'inline', partSize: 5 * MiB, maxBufferedBytes: 16 * MiB, bodyTimeout: 30_000 })
  // Setup, once: three uploads each left with a tail of a part less one byte.
  const tail = 5 * MiB - 1
  const uploads: string[] = []
  for (let i = 0; i < 3; i++) {
    const upload = await createUpload(endpoint, 64 * MiB)
    const answer = await patchUpload(upload, 0, Buffer.alloc(tail, i + 1))
    t.equal(answer.status, 204, `upload ${i} holds a ${tail}-byte tail`)
    uploads.push(upload)
  }
  t.equal(app.s3Chunk.stats().bufferedBytes, 0, 'nothing held between requests')
  // The attack: headers only.
  const silent: Array<{ socket: Socket, status: () => number | null }> = []
  t.teardown(() => { for (const one of silent) one.socket.destroy() })
  for (const upload of uploads) silent.push(await emptyHandedPatch(upload, tail, MiB))
  await sleep(1500)
  const held = app.s3Chunk.stats().bufferedBytes
  t.comment(`held by 3 PATCHes that sent 0 body bytes: ${(held / MiB).toFixed(1)} MiB of 16`)
  t.ok(held < 2 * MiB, `PATCHes that sent no body byte hold (almost) no part memory (${(held / MiB).toFixed(1)} MiB)`)
  const started = Date.now()
  const honest = await streamUpload(`${url}/upload`, { seed: 7, size: 12 * MiB, hash: false })
  const took = Date.now() - started
  t.comment(`honest upload: ${honest.status} after ${took} ms; silent PATCHes: ${silent.map((one) => one.status()).join(', ')}`)
  t.equal(honest.status, 200, 'the honest upload is stored')
  t.ok(took < 15_000, `without waiting out the silent PATCHes' bodyTimeout (${took} ms)`)
  for (const one of silent) one.socket.destroy()
  await sleep(1000)
})

t.test('at the default budget: five header-only PATCHes pin all of its 256 MiB', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  // Defaults: maxBufferedBytes 256 MiB, partSize 5 MiB, maxFileSize 5 TiB, bodyTimeout 30 s.
  const { app, url, endpoint } = await startTus(t, server, bucket, { mode: 'inline' })
  // A declared length grows the upload's part size (a quarter of the budget is the cap):
  // 550 GiB → 60 MiB parts, 140 GiB → 15 MiB parts. Tails of a part less one byte: 4 × 60 + 15 MiB.
  const plans = [550, 550, 550, 550, 140].map((gib) => ({ length: gib * 1024 * MiB, tail: (gib === 550 ? 60 : 15) * MiB - 1 }))
  const uploads: Array<{ url: string, tail: number }> = []
  for (const [i, plan] of plans.entries()) {
    const upload = await createUpload(endpoint, plan.length)
    const answer = await patchUpload(upload, 0, Buffer.alloc(plan.tail, 9))
    t.equal(answer.status, 204, `upload ${i} holds a ${plan.tail}-byte tail`)
    uploads.push({ url: upload, tail: plan.tail })
  }
  t.equal(app.s3Chunk.stats().bufferedBytes, 0, 'nothing held between requests')
  const silent: Array<{ socket: Socket, status: () => number | null }> = []
  t.teardown(() => { for (const one of silent) one.socket.destroy() })
  for (const upload of uploads) silent.push(await emptyHandedPatch(upload.url, upload.tail, MiB))
  await sleep(3000)
  const held = app.s3Chunk.stats().bufferedBytes
  t.comment(`held by 5 PATCHes that sent 0 body bytes: ${(held / MiB).toFixed(1)} MiB of 256`)
  t.ok(held < 16 * MiB, `PATCHes that sent no body byte hold (almost) no part memory (${(held / MiB).toFixed(1)} MiB)`)
  const started = Date.now()
  const honest = await streamUpload(`${url}/upload`, { seed: 8, size: 12 * MiB, hash: false })
  const took = Date.now() - started
  t.comment(`honest 12 MiB upload: ${honest.status} after ${took} ms; silent PATCHes: ${silent.map((one) => one.status()).join(', ')}`)
  t.ok(took < 15_000, `without waiting out the silent PATCHes' bodyTimeout (${took} ms)`)
  for (const one of silent) one.socket.destroy()
  await sleep(1000)
})
