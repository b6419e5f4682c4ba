// `npm start`: a minimal upload server. It uses the S3 named by the
// environment (S3_ENDPOINT, S3_BUCKET, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY,
// S3_REGION) or else starts an embedded one (MinIO when it can be built here,
// s3rver otherwise), then serves http://127.0.0.1:3000 (PORT overrides).
//
//   curl -F file=@big.bin http://127.0.0.1:3000/upload
import Fastify from 'fastify'
import { CreateBucketCommand } from '@aws-sdk/client-s3'
import s3Chunk, { type S3File } from 'fastify-s3-chunk'
import { startS3 } from '../../test/support/s3-server.ts'

const port = Number(process.env.PORT ?? 3000)
const bucket = process.env.S3_BUCKET ?? 'uploads'

const s3 = await startS3({ quiet: true, log: (line) => console.log(line) })
console.log(`S3: ${s3.description}, bucket "${bucket}"`)

const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info' } })
await app.register(s3Chunk, {
  bucket,
  keyPrefix: 'media',
  s3: {
    region: s3.region,
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey }
  }
})

await app.s3Chunk.client.send(new CreateBucketCommand({ Bucket: bucket })).catch((error: { name?: string }) => {
  // Already there is fine; anything else means the S3 is not usable.
  if (error.name !== 'BucketAlreadyOwnedByYou' && error.name !== 'BucketAlreadyExists') throw error
})

app.get('/', async (_request, reply) => {
  return await reply.type('text/html').send(`<!doctype html>
<meta charset="utf-8"><title>fastify-s3-chunk demo</title>
<h1>fastify-s3-chunk</h1>
<p>Files go through this server straight into S3 bucket <code>${bucket}</code>, in parts, nothing on disk.</p>
<form method="post" action="/files" enctype="multipart/form-data">
  <input type="file" name="file" multiple required> <button>Upload</button>
</form>
<p>Or: <code>curl -F file=@big.bin http://127.0.0.1:${port}/upload</code></p>`)
})

app.post('/upload', async (request) => await request.s3File())

app.post('/files', async (request) => {
  const files: S3File[] = []
  for await (const file of request.s3Files()) files.push(file)
  return { files, fields: request.s3Fields() }
})

app.get('/health', async () => ({ ok: true, ...app.s3Chunk.stats() }))

let closing = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (closing) return
    closing = true
    console.log(`\n${signal}: stopping`)
    void app.close().finally(() => s3.stop()).finally(() => process.exit(0))
  })
}

await app.listen({ port, host: '127.0.0.1' })
console.log(`Demo: http://127.0.0.1:${port}/  —  try: curl -F file=@big.bin http://127.0.0.1:${port}/upload`)
