// Found by an attack run (helper-44, 2026-12-07; failed before the fix): bodies nobody reads,
// answered without closing the connection, were read for as long as the client sent. (1) The tus
// scope's body parser reads nothing, so Fastify's bodyLimit (1 MiB, 413) does not apply, and an
// OPTIONS or DELETE answered 204 kept the connection: Node read and discarded the rest of the
// body to keep it alive — a chunked body that never ends, unauthenticated for OPTIONS. (2) The
// same for an upload route refused before its handler calls s3File() (a preHandler 401, as in
// the README demo). ~1 GiB/s per connection on the main thread, without bound; now the lingering
// close's (5 s, about 64 MiB).
import t from 'tap'
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { freshBucket, needsStrictS3, testClient, testS3 } from '../support/s3.ts'
import { createUpload, startTus } from '../support/tus.ts'
import { startApp } from '../support/app.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

async function flood (url: string, method: string, path: string, seconds: number, type = 'application/octet-stream'): Promise<{ sentMiB: number, answer: string, closed: boolean, ms: number }> {
  const target = new URL(url)
  const socket = connect({ host: target.hostname, port: Number(target.port), allowHalfOpen: true })
  socket.on('error', () => {})
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => { chunks.push(chunk) })
  let closed = false
  socket.once('close', () => { closed = true })
  await new Promise<void>((resolve) => socket.once('connect', resolve))
  socket.write(`${method} ${path} HTTP/1.1\r\nhost: ${target.host}\r\ntus-resumable: 1.0.0\r\ncontent-type: ${type}\r\ntransfer-encoding: chunked\r\n\r\n`)
  const filler = Buffer.alloc(256 * 1024, 'x')
  const framed = Buffer.concat([Buffer.from(`${filler.byteLength.toString(16)}\r\n`), filler, Buffer.from('\r\n')])
  const started = Date.now()
  let sent = 0
  while (!closed && Date.now() - started < seconds * 1000) {
    sent += filler.byteLength
    if (!socket.write(framed)) await Promise.race([new Promise((resolve) => { socket.once('drain', resolve); socket.once('close', resolve) }), sleep(1_000)])
  }
  socket.destroy()
  return { sentMiB: Math.round(sent / MiB), answer: Buffer.concat(chunks).toString('latin1').split('\r\n')[0] ?? '', closed, ms: Date.now() - started }
}

t.test('tus: a body nobody reads is not read without bound after the answer', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { endpoint } = await startTus(t, server, bucket)
  const path = new URL(endpoint).pathname
  const location = new URL(await createUpload(endpoint, 1000)).pathname
  for (const [method, target] of [['OPTIONS', path], ['DELETE', location]] as const) {
    const result = await flood(endpoint, method, target, 6)
    t.comment(`${method}: ${JSON.stringify(result)}`)
    t.ok(result.sentMiB < 256, `${method}: the server stopped reading (answered ${JSON.stringify(result.answer)}, then took ${result.sentMiB} MiB in ${result.ms} ms)`)
  }
})

// The same for an upload route refused before its handler (the README demo's pattern: a preHandler
// that throws 401 for a request without credentials): the plugin's multipart parser reads nothing,
// the body is not "consumed", so no lingering close — Node reads an anonymous body for ever.
t.test('an upload refused by a preHandler (401) is not read without bound after the answer', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { url } = await startApp(t, server, { bucket, mode: 'inline', maxFileSize: MiB }, (app) => {
    app.post('/guarded', { preHandler: async (_request, reply) => { await reply.code(401).send({ error: 'sign in' }) } }, async (request) => await request.s3File())
  })
  const result = await flood(url, 'POST', '/guarded', 6, 'multipart/form-data; boundary=----x')
  t.comment(JSON.stringify(result))
  t.ok(result.sentMiB < 256, `the server stopped reading (answered ${JSON.stringify(result.answer)}, then took ${result.sentMiB} MiB in ${result.ms} ms)`)
})
