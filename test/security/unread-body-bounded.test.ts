// Found by an attack run (helper-44, 2026-12-07; failed before the fix): bodies nobody reads,
// answered without closing the connection, were read for as long as the client sent. (1) The tus
// scope's body parser reads nothing, so Fastify's bodyLimit (1 MiB, 413) does not apply, and an
// OPTIONS or DELETE answered 204 kept the connection: Node read and discarded the rest of the
// body to keep it alive — a chunked body that never ends, unauthenticated for OPTIONS. (2) The
// same for an upload route refused before its handler calls s3File() (a preHandler 401, as in
// the README demo). ~1 GiB/s per connection on the main thread, without bound; now the lingering
// close's (5 s, about 64 MiB).
import t from 'tap'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { freshBucket, needsStrictS3, testClient, testS3 } from '../support/s3.ts'
import { createUpload, startTus } from '../support/tus.ts'
import { startApp } from '../support/app.ts'
import { floodChunked } from '../support/chunked-flood.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

t.test('tus: a body nobody reads is not read without bound after the answer', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { endpoint } = await startTus(t, server, bucket)
  const path = new URL(endpoint).pathname
  const location = new URL(await createUpload(endpoint, 1000)).pathname
  for (const [method, target] of [['OPTIONS', path], ['DELETE', location]] as const) {
    const result = await floodChunked(endpoint, { method, path: target, headers: { 'tus-resumable': '1.0.0', 'content-type': 'application/octet-stream' } }, { seconds: 6 })
    t.comment(`${method}: ${JSON.stringify(result)}`)
    t.ok(result.sentMiB < 256, `${method}: the server stopped reading (answered ${JSON.stringify(result.answer)}, then took ${result.sentMiB} MiB in ${result.ms} ms)`)
  }
})

// The same for an upload route refused before its handler (the README demo's pattern: a preHandler
// that throws 401 for a request without credentials): the plugin's multipart parser reads nothing,
// the body is not "consumed", so no lingering close — Node reads an anonymous body for ever.
// Found in review (helper-46): refused in an onRequest hook instead (@fastify/jwt's and
// @fastify/auth's usual `onRequest: [app.authenticate]`), the route answers before any body
// parser runs, so the first fix, which asked @fastify/multipart whether the request was
// multipart, missed it (9 GiB read in 6 s). The Content-Type header tells.
for (const hook of ['preHandler', 'onRequest'] as const) {
  t.test(`an upload refused by ${hook === 'preHandler' ? 'a preHandler' : 'an onRequest hook'} (401) is not read without bound after the answer`, { skip }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const { url } = await startApp(t, server, { bucket, mode: 'inline', maxFileSize: MiB }, (app) => {
      app.post('/guarded', { [hook]: async (_request: FastifyRequest, reply: FastifyReply) => { await reply.code(401).send({ error: 'sign in' }) } }, async (request) => await request.s3File())
    })
    const result = await floodChunked(url, { method: 'POST', path: '/guarded', headers: { 'content-type': 'multipart/form-data; boundary=----x' } }, { seconds: 6 })
    t.comment(JSON.stringify(result))
    t.ok(result.sentMiB < 256, `the server stopped reading (answered ${JSON.stringify(result.answer)}, then took ${result.sentMiB} MiB in ${result.ms} ms)`)
  })
}
