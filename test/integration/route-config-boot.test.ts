// A route's `config.s3Chunk` is checked at boot: a bad option or a rule set that does not exist
// fails ready()/listen(), naming the route (it was a 500 at each of the route's uploads, its
// message sent to the client — found in a new user's review, helper-48). Checked once every
// registration has run, not as the route is added: a child scope that registers the plugin
// (not awaited, Fastify's usual style) and then declares a route naming its own rule set is
// valid, and the first form of this check refused it (found in review, helper-50).
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import s3Chunk from 'fastify-s3-chunk'
import { CreateMultipartUploadCommand } from '@aws-sdk/client-s3'
import { randomBytes } from 'node:crypto'
import { postMultipart } from '../support/multipart.ts'
import { freshBucket, listKeys, needsStrictS3, pendingUploads, pluginS3Options, testClient, testS3 } from '../support/s3.ts'

const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

async function bootError (app: FastifyInstance): Promise<{ code?: string, message?: string } | undefined> {
  return await app.ready().then(() => undefined, (error: unknown) => error as { code?: string, message?: string })
}

const refused: Array<[string, unknown, RegExp]> = [
  ['a bad option', { maxFileSize: -1 }, /route POST \/bad config\.s3Chunk: "maxFileSize"/],
  ['a rule set that does not exist', 'nope', /route POST \/bad: no rule set named "nope"/],
  ['a rule set that does not exist, in the object form', { rules: 'nope', maxFileSize: 10 }, /route POST \/bad: no rule set named "nope"/],
  ['an unknown option', { maxFileSise: 10 }, /route POST \/bad config\.s3Chunk/]
]
for (const [label, s3ChunkConfig, message] of refused) {
  t.test(`${label}: boot fails, naming the route`, async (t) => {
    const app = Fastify()
    t.teardown(async () => { await app.close() })
    await app.register(s3Chunk, { s3: pluginS3Options(server), bucket: 'uploads', mode: 'inline', rules: { avatars: { keyPrefix: 'avatars' } } })
    app.post('/bad', { config: { s3Chunk: s3ChunkConfig as never } }, async (request) => await request.s3File())
    t.match(await bootError(app), { code: 'FST_S3CHUNK_INVALID_OPTION', message })
  })
}

t.test('a child that registers the plugin (not awaited) with a rule set, and a route naming it: boots and uploads by it', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await app.register(s3Chunk, { s3: pluginS3Options(server), bucket, mode: 'inline', appendTimestamp: false })
  app.register(async (child) => {
    // Not awaited: Fastify's usual style (avvio runs it in order, after this function).
    child.register(s3Chunk, { rules: { avatars: { keyPrefix: 'avatars', maxFileSize: 1024 * 1024 } } })
    child.post('/avatar', { config: { s3Chunk: 'avatars' } }, async (request) => await request.s3File())
    child.post('/small', { config: { s3Chunk: { rules: 'avatars', maxFileSize: 50 } } }, async (request) => await request.s3File())
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const answer = await postMultipart(`${url}/avatar`, [{ name: 'file', filename: 'a.bin', data: randomBytes(100) }])
  t.equal(answer.status, 200, answer.body.slice(0, 300))
  t.equal((await postMultipart(`${url}/small`, [{ name: 'file', filename: 'b.bin', data: randomBytes(100) }])).status, 413, 'the route\'s own maxFileSize over the child\'s set')
  t.same(await listKeys(client, bucket), ['avatars/a.bin'])
})

// The first form of the boot check recorded a route's own bucket only at onReady: a sweep at
// start-up, before listen(), missed it (found in review, helper-51).
t.test('a start-up sweep before listen() covers a route\'s own bucket and keyPrefix', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const other = await freshBucket(t, server, client)
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await app.register(s3Chunk, { s3: pluginS3Options(server), bucket, mode: 'inline', keyPrefix: 'media' })
  app.post('/other', { config: { s3Chunk: { bucket: other, keyPrefix: 'docs' } } }, async (request) => await request.s3File())
  await client.send(new CreateMultipartUploadCommand({ Bucket: other, Key: 'docs/orphan.bin' }))
  await new Promise((resolve) => setTimeout(resolve, 1100))
  const swept = await app.s3Chunk.abortStaleUploads({ olderThan: 1 })
  t.same(swept.aborted.map((upload) => upload.key), ['docs/orphan.bin'], 'the orphan under the route\'s own bucket is aborted before listen()')
  t.same(await pendingUploads(client, other), [], 'nothing left there')
})
