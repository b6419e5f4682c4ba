// Each way a request can go wrong answers with the documented error, and leaves nothing behind.
import t from 'tap'
import Fastify from 'fastify'
import { randomBytes } from 'node:crypto'
import s3Chunk from 'fastify-s3-chunk'
import { startApp } from '../support/app.ts'
import { postMultipart, postRaw } from '../support/multipart.ts'
import { expectNoPendingUploads, freshBucket, listKeys, pluginS3Options, testClient, testS3 } from '../support/s3.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)

for (const mode of ['workers', 'inline'] as const) {
  t.test(`mode ${mode}`, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const { url } = await startApp(t, server, { bucket, mode, maxFileSize: 7 * MiB, appendTimestamp: false }, (app) => {
      app.post('/twice', async (request) => {
        await request.s3File()
        return await request.s3File()
      })
    })

    t.test('a JSON body is refused with 415 and says what was expected', async (t) => {
      const response = await postRaw(`${url}/upload`, [Buffer.from('{"a":1}')], { 'content-type': 'application/json' })
      t.equal(response.status, 415)
      t.match(response.json(), { code: 'FST_S3CHUNK_NOT_MULTIPART', message: /multipart\/form-data/ })
    })

    t.test('an unknown content type is refused with 415', async (t) => {
      const response = await postRaw(`${url}/upload`, [Buffer.from('hello')], { 'content-type': 'text/plain' })
      t.equal(response.status, 415)
    })

    t.test('a multipart body with no file is 400', async (t) => {
      const response = await postMultipart(`${url}/upload`, [{ name: 'title', value: 'no file here' }])
      t.equal(response.status, 400)
      t.match(response.json(), { code: 'FST_S3CHUNK_NO_FILE', message: /no file/ })
    })

    t.test('a multipart content type without a boundary is 400', async (t) => {
      const response = await postRaw(`${url}/upload`, [Buffer.from('x')], { 'content-type': 'multipart/form-data' })
      t.equal(response.status, 400)
      t.match(response.json(), { code: 'FST_S3CHUNK_BAD_MULTIPART' })
    })

    t.test('a small file over maxFileSize is 413 and nothing is stored', async (t) => {
      const { url: small } = await startApp(t, server, { bucket, mode, maxFileSize: 1000, appendTimestamp: false })
      const response = await postMultipart(`${small}/upload`, [{ name: 'file', filename: 'small-too-big.bin', data: randomBytes(1001) }])
      t.equal(response.status, 413)
      t.match(response.json(), { code: 'FST_S3CHUNK_FILE_TOO_LARGE', message: /1000 bytes/ })
      t.notOk((await listKeys(client, bucket)).includes('small-too-big.bin'), 'not committed')
    })

    t.test('exactly maxFileSize is accepted', async (t) => {
      const { url: small } = await startApp(t, server, { bucket, mode, maxFileSize: 1000, appendTimestamp: false })
      const response = await postMultipart(`${small}/upload`, [{ name: 'file', filename: 'exact.bin', data: randomBytes(1000) }])
      t.equal(response.status, 200)
    })

    t.test('a multipart file over maxFileSize is 413, aborted, never truncated', async (t) => {
      // The 413 comes as the limit is passed, with 13 MiB still to send: the lingering close lets
      // the client still writing read it (refusal-readable.test.ts), never a reset.
      const response = await postMultipart(`${url}/upload`, [{ name: 'file', filename: 'big-too-big.bin', data: randomBytes(20 * MiB) }])
      t.equal(response.status, 413)
      t.match(response.json(), { code: 'FST_S3CHUNK_FILE_TOO_LARGE' })
      t.equal(response.headers.connection, 'close', 'the unread rest of the body is not waited for')
      t.notOk((await listKeys(client, bucket)).includes('big-too-big.bin'), 'no truncated object committed')
    })

    t.test('calling s3File() twice is a clear error', async (t) => {
      const response = await postMultipart(`${url}/twice`, [{ name: 'file', filename: 'once.bin', data: randomBytes(10) }])
      t.equal(response.status, 500)
      t.match(response.json(), { code: 'FST_S3CHUNK_ALREADY_CONSUMED' })
    })

    t.test('GET on an upload route is 404, not a crash', async (t) => {
      const response = await fetch(`${url}/upload`)
      t.equal(response.status, 404)
    })

    await t.test('all subtests done', async () => {})
    await expectNoPendingUploads(t, server, client, bucket)
  })

  t.test(`mode ${mode}: an S3 failure is 502 with a safe message; the S3 code and request id are logged`, async (t) => {
    const logs: Array<Record<string, unknown>> = []
    const { url } = await startApp(t, server, { bucket: 'no-such-bucket-here', mode }, undefined, logs)
    for (const size of [10, 6 * MiB]) {
      const response = await postMultipart(`${url}/upload`, [{ name: 'file', filename: 'x.bin', data: randomBytes(size) }])
      t.equal(response.status, 502, `${size} bytes: 502`)
      const body = response.json()
      t.match(body, { code: 'FST_S3CHUNK_STORAGE', message: /could not be stored/ })
      t.notMatch(response.body, /NoSuchBucket|no-such-bucket-here/, 'no S3 internals sent to the client')
    }
    const failures = logs.filter((line) => typeof line.s3 === 'object' && line.s3 !== null)
    t.ok(failures.length >= 2, 'each failure logged')
    const operations = failures.map((line) => (line.s3 as { operation: string }).operation)
    t.ok(operations.includes('PutObject') && operations.includes('CreateMultipartUpload'), `operations logged: ${operations.join(', ')}`)
    for (const line of failures) {
      t.match(line.s3, { code: 'NoSuchBucket', status: 404 }, 'S3 code and status in the log')
      // s3rver sends no request id.
      if (server.strict) t.match(line.s3, { requestId: /\S+/ }, 'S3 request id in the log')
    }
  })
}

t.test('registration', async (t) => {
  t.test('a bad option fails boot naming the option', async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(s3Chunk, { bucket: 'uploads', partSize: 1024 }) }, { code: 'FST_S3CHUNK_INVALID_OPTION', message: /partSize/ })
  })

  t.test('registering twice in one scope fails clearly', async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(s3Chunk, { bucket: 'uploads', mode: 'inline', s3: pluginS3Options(server) })
    await t.rejects(async () => { await app.register(s3Chunk, { bucket: 'uploads', mode: 'inline', s3: pluginS3Options(server) }) }, { code: 'FST_S3CHUNK_ALREADY_REGISTERED' })
  })

  t.test('an app that registered @fastify/multipart itself keeps it', async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(import('@fastify/multipart'))
    await app.register(s3Chunk, { bucket: 'uploads', mode: 'inline', s3: pluginS3Options(server) })
    await app.ready()
    t.ok(app.s3Chunk.client, 'registered')
  })

  t.test('close() destroys the worker pool', async (t) => {
    const app = Fastify()
    await app.register(s3Chunk, { bucket: 'uploads', mode: 'workers', workers: { minThreads: 2, maxThreads: 2 }, s3: pluginS3Options(server) })
    await app.ready()
    t.equal(app.s3Chunk.stats().pool?.threads, 2, 'threads started')
    await app.close()
    t.equal(app.s3Chunk.stats().pool?.threads, 0, 'no thread left after close')
  })
})
