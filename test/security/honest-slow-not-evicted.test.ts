// Found in review (of 3f414f0, the same day; failed before its fix): #evictStalled now fails any holder whose client sent < 64 KiB in 2 s
// while anyone waits for memory — before the deadlock check, "whatever other uploads do". So an
// honest upload is 503'd under ordinary load even when nothing is stuck: the budget is full of
// parts on their way to S3 (S3 a little slow), memory comes back by itself within seconds, and the
// waiter would have been served anyway. Before (b3693fc) such clients were parked, never failed,
// as long as anything was in flight. Two honest clients:
//  - `steady`: a 192 kbit/s uplink (24 KiB/s, steady), a 160 KiB file;
//  - `pause`: a fast client whose connection stalls once for 3 s (a Wi-Fi handover), a 3 MiB file.
// Both must be stored.
import t from 'tap'
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { startApp } from '../support/app.ts'
import { isUploadPart, testFaultProxy } from '../support/fault-proxy.ts'
import { freshBucket, needsStrictS3, pluginS3Options, testClient, testS3 } from '../support/s3.ts'
import { streamUpload } from '../support/stream-upload.ts'

const KiB = 1024
const MiB = 1024 * KiB
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

/** A well-formed upload whose file bytes are sent by `pace` (an async function writing through `send`); resolves with the status. */
async function pacedUpload (baseUrl: string, size: number, pace: (send: (bytes: number) => Promise<void>) => Promise<void>): Promise<{ status: number | null, body: string }> {
  const url = new URL('/upload', baseUrl)
  const separator = '----paced' + Math.random().toString(16).slice(2)
  const head = `--${separator}\r\nContent-Disposition: form-data; name="file"; filename="paced.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`
  const tail = `\r\n--${separator}--\r\n`
  const socket = connect({ host: url.hostname, port: Number(url.port) })
  socket.setNoDelay(true)
  let answer = ''
  let closed = false
  socket.on('data', (chunk: Buffer) => { answer += chunk.toString('latin1') })
  socket.on('error', () => {})
  const done = new Promise<void>((resolve) => { socket.on('close', () => { closed = true; resolve() }) })
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
  socket.write(`POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\nContent-Type: multipart/form-data; boundary=${separator}\r\nContent-Length: ${Buffer.byteLength(head) + size + Buffer.byteLength(tail)}\r\n\r\n${head}`)
  let sent = 0
  await pace(async (bytes) => {
    if (closed || answer !== '') return
    const n = Math.min(bytes, size - sent)
    if (n <= 0) return
    sent += n
    socket.write(Buffer.alloc(n, 0x41))
  })
  if (!closed && answer === '') socket.write(tail)
  await Promise.race([done, sleep(30_000)])
  socket.destroy()
  const match = /^HTTP\/1\.1 (\d{3})/.exec(answer)
  return { status: match === null ? null : Number(match[1]), body: answer.split('\r\n\r\n').slice(1).join('') }
}

t.test('honest clients are not failed while memory is merely on its way back from S3', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const proxy = await testFaultProxy(t, server.endpoint)
  // S3 takes 4 s per part: the budget fills with parts in flight, and comes back by itself.
  proxy.setRules([{ match: isUploadPart, fault: { kind: 'delay', ms: 4000 } }])
  const { app, url } = await startApp(t, server, {
    bucket, mode: 'inline', partSize: 5 * MiB, maxBufferedBytes: 16 * MiB, bodyTimeout: 30_000,
    s3: { ...pluginS3Options(server), endpoint: proxy.endpoint }
  })

  // 24 KiB/s, steadily: 3 KiB every 125 ms.
  const steady = pacedUpload(url, 160 * KiB, async (send) => {
    for (let i = 0; i < 160 / 3 + 1; i++) { await send(3 * KiB); await sleep(125) }
  })
  // Fast, but one 3 s stall after 2 MiB, once the budget is busy.
  const pause = pacedUpload(url, 3 * MiB, async (send) => {
    for (let i = 0; i < 8; i++) { await send(256 * KiB); await sleep(20) }
    await sleep(3000)
    for (let i = 0; i < 4; i++) { await send(256 * KiB); await sleep(20) }
  })
  await sleep(400)
  // Ordinary load: three 10 MiB uploads at full speed.
  const big = [1, 2, 3].map(async (seed) => await streamUpload(`${url}/upload`, { seed, size: 10 * MiB, hash: false }))
  let maxWaiting = 0
  const sampler = setInterval(() => { maxWaiting = Math.max(maxWaiting, app.s3Chunk.stats().partsWaitingForMemory) }, 50)
  const [s, p, ...b] = await Promise.all([steady, pause, ...big])
  clearInterval(sampler)
  t.comment(`steady: ${s.status} ${s.body.slice(0, 120)}`)
  t.comment(`pause: ${p.status} ${p.body.slice(0, 120)}`)
  t.comment(`big: ${b.map((x) => x.status).join(', ')}; most parts waiting for memory at once: ${maxWaiting}`)
  t.ok(b.every((x) => x.status === 200), 'the load itself is stored (no deadlock to break)')
  t.equal(s.status, 200, 'a steady 24 KiB/s client is stored, not 503')
  t.equal(p.status, 200, 'a client that stalls once for 3 s is stored, not 503')
})
