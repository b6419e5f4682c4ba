// Contender (f), the tus peer: Fastify + @tus/server with @tus/s3-store, wired
// the way @tus/server's README integrates it into Fastify. Same shape as
// lib-storage-server.mjs (GET /health, one JSON line {"port":N} on stdout,
// stops on SIGTERM); the tus endpoint is /files. Settings come as JSON in
// BENCH_SERVER_OPTIONS: { bucket, s3: { region, endpoint, credentials }, partSize }.
//
// @tus/s3-store writes every part to a file in os.tmpdir() before sending it
// (that is what the bench's disk column shows): the bench points TMPDIR at a
// directory of its own for each run and removes it once this process is gone.
import Fastify from 'fastify'
import { Server } from '@tus/server'
import { S3Store } from '@tus/s3-store'
import { serveContender } from './serve-contender.mjs'

const options = JSON.parse(process.env.BENCH_SERVER_OPTIONS ?? '{}')
const store = new S3Store({
  // The bench's part size; @tus/s3-store's own default is 8 MiB. Its parts in
  // flight are one limit for the whole process (maxConcurrentPartUploads,
  // default 60), not per upload: left at the default, at least as many as any
  // other contender has in any scenario.
  partSize: options.partSize,
  s3ClientConfig: {
    bucket: options.bucket,
    region: options.s3.region,
    endpoint: options.s3.endpoint,
    credentials: options.s3.credentials,
    forcePathStyle: true,
    // As the plugin does: CRC32 checksums off, which several S3-compatible stores reject.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED'
  }
})

const tus = new Server({ path: '/files', datastore: store })

const app = Fastify({ logger: { level: process.env.UPLOAD_SERVER_LOG ?? 'silent', stream: process.stderr } })
// The body goes to @tus/server untouched (its README's Fastify integration).
app.addContentTypeParser('application/offset+octet-stream', (_request, _payload, done) => done(null))
app.all('/files', (request, reply) => { void tus.handle(request.raw, reply.raw) })
app.all('/files/*', (request, reply) => { void tus.handle(request.raw, reply.raw) })

await serveContender(app, () => ({ mode: '@tus/s3-store' }))
