// Contender (c), "the common way today": Fastify + @fastify/multipart, each
// file piped into @aws-sdk/lib-storage's Upload. Same shape as
// test/support/upload-server.mjs (POST /upload, GET /health, one JSON line
// {"port":N} on stdout, stops on SIGTERM), plain node, so the bench measures
// both the same way. Settings come as JSON in BENCH_SERVER_OPTIONS:
// { bucket, s3: { region, endpoint, credentials }, partSize, queueSize }.
import Fastify from 'fastify'
import multipart from '@fastify/multipart'
import { S3Client } from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import { serveContender } from './serve-contender.mjs'

const options = JSON.parse(process.env.BENCH_SERVER_OPTIONS ?? '{}')
const client = new S3Client({
  region: options.s3.region,
  endpoint: options.s3.endpoint,
  credentials: options.s3.credentials,
  forcePathStyle: true,
  // As the plugin does: CRC32 checksums off, which several S3-compatible stores reject.
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED'
})

const app = Fastify({ logger: { level: process.env.UPLOAD_SERVER_LOG ?? 'silent' } })
// The default fileSize limit (1 MiB) would cut every upload; 5 TiB is S3's own limit.
await app.register(multipart, { limits: { fileSize: 5 * 1024 ** 4, files: 1 } })

let uploadsInFlight = 0
app.post('/upload', async (request, reply) => {
  const file = await request.file()
  if (file === undefined) return await reply.code(400).send({ error: 'no file' })
  uploadsInFlight += 1
  try {
    const upload = new Upload({
      client,
      params: { Bucket: options.bucket, Key: file.filename, Body: file.file, ContentType: file.mimetype },
      queueSize: options.queueSize,
      partSize: options.partSize,
      leavePartsOnError: false
    })
    const result = await upload.done()
    // @fastify/multipart throws on an oversized file by default; this guards the other case.
    if (file.file.truncated) throw new Error('file truncated')
    return { key: file.filename, etag: result.ETag }
  } finally {
    uploadsInFlight -= 1
  }
})

await serveContender(app, () => ({ mode: 'lib-storage', uploadsInFlight }))
