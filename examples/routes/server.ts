// Runs the routes example: `npx tsx examples/routes/server.ts` with S3_ENDPOINT,
// S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, S3_BUCKET (must exist) and S3_KMS_KEY_ID set.
import { buildRoutesApp } from './app.ts'

const required = ['S3_ENDPOINT', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY', 'S3_BUCKET', 'S3_KMS_KEY_ID'] as const
const missing = required.filter((name) => process.env[name] === undefined)
if (missing.length > 0) {
  console.error(`set ${missing.join(', ')}`)
  process.exit(1)
}
const env = process.env as Record<typeof required[number], string>
const app = await buildRoutesApp({
  bucket: env.S3_BUCKET,
  kmsKeyId: env.S3_KMS_KEY_ID,
  s3: {
    region: process.env.S3_REGION ?? 'us-east-1',
    endpoint: env.S3_ENDPOINT,
    forcePathStyle: true,
    credentials: { accessKeyId: env.S3_ACCESS_KEY_ID, secretAccessKey: env.S3_SECRET_ACCESS_KEY }
  }
})
await app.listen({ port: Number(process.env.PORT ?? 3001), host: '127.0.0.1' })
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => { void app.close() })
