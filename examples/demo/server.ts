// `npm start`: the demo on http://127.0.0.1:3000 (PORT overrides). It uses the
// S3 named by S3_ENDPOINT (+ S3_BUCKET, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY,
// S3_REGION) or else starts an embedded one: MinIO when it can be built here,
// s3rver otherwise. Ctrl-C stops everything it started.
import { startS3 } from '../../test/support/s3-server.ts'
import { buildDemo } from './app.ts'

const port = Number(process.env.PORT ?? 3000)
const bucket = process.env.S3_BUCKET ?? 'uploads'

const s3 = await startS3({ quiet: true, log: (line) => console.log(line) })
console.log(`S3: ${s3.description}, bucket "${bucket}"`)
if (s3.kind === 's3rver') console.log('Note: s3rver has no CORS for browsers by default; the "direct to S3" panel needs MinIO or a real S3.')

let app
try {
  app = await buildDemo({ s3, bucket, logLevel: process.env.LOG_LEVEL ?? 'info' })
  await app.listen({ port, host: '127.0.0.1' })
} catch (error) {
  console.error(`The demo could not start: ${(error as Error).message}`)
  await s3.stop()
  process.exit(1)
}
console.log(`Demo: http://127.0.0.1:${port}/  (try: curl -H 'authorization: Bearer demo-alice' -F file=@photo.jpg http://127.0.0.1:${port}/api/upload)`)

let closing = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (closing) return
    closing = true
    console.log(`\n${signal}: stopping`)
    void app.close().finally(() => s3.stop()).finally(() => process.exit(0))
  })
}
