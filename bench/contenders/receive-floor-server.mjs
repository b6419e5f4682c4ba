// Contender (r), "the receive floor": what a Fastify server spends on its main
// thread to take in a multipart upload before any S3 work — Node's HTTP server,
// @fastify/multipart (busboy) and one copy of every byte into a shared part
// buffer, as the plugin's workers mode makes — and nothing sent anywhere. It
// stores nothing: the bench checks the bytes it counted instead of the bucket.
// Its main-thread CPU per GiB is the floor under (a)'s; same shape as the other
// Node contenders (serve-contender.mjs).
import Fastify from 'fastify'
import multipart from '@fastify/multipart'
import { serveContender } from './serve-contender.mjs'

const PART_SIZE = 5 * 1024 * 1024

const app = Fastify({ logger: { level: process.env.UPLOAD_SERVER_LOG ?? 'silent' } })
await app.register(multipart, { limits: { fileSize: 5 * 1024 ** 4, files: 1 } })

let uploadsInFlight = 0
let bytesReceived = 0
let filesReceived = 0
app.post('/upload', async (request, reply) => {
  const file = await request.file()
  if (file === undefined) return await reply.code(400).send({ error: 'no file' })
  uploadsInFlight += 1
  try {
    // One part buffer per upload, refilled: the copy the plugin makes, without its budget or senders.
    const part = Buffer.from(new SharedArrayBuffer(PART_SIZE))
    let filled = 0
    let size = 0
    for await (const chunk of file.file) {
      let offset = 0
      while (offset < chunk.byteLength) {
        if (filled === PART_SIZE) filled = 0
        const take = Math.min(PART_SIZE - filled, chunk.byteLength - offset)
        // Buffer#fill with a value as long as the range: one memcpy into shared memory (see part-buffer-pool.ts).
        part.fill(chunk.subarray(offset, offset + take), filled, filled + take)
        filled += take
        offset += take
      }
      size += chunk.byteLength
    }
    if (file.file.truncated) throw new Error('file truncated')
    bytesReceived += size
    filesReceived += 1
    return { key: file.filename, size }
  } finally {
    uploadsInFlight -= 1
  }
})

await serveContender(app, () => ({ mode: 'receive-floor', uploadsInFlight, bytesReceived, filesReceived }))
