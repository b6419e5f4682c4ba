// The app of "Upload routes" in the README: avatars and videos, two kinds of
// upload with their own rules, drawing on one worker pool and one memory budget.
//
//   avatars — images only, ≤ 5 MiB, under avatars/, cached by a CDN for a year
//   videos  — video only, ≤ 20 GiB, under videos/, encrypted with SSE-KMS,
//             with the form's title and the user as metadata, downloaded as an attachment
import Fastify, { type FastifyInstance } from 'fastify'
import s3Chunk, { attachment, type S3ChunkOptions, type UploadProgress } from 'fastify-s3-chunk'

const MiB = 1024 * 1024
const GiB = 1024 * MiB

export interface RoutesAppOptions {
  bucket: string
  s3: S3ChunkOptions['s3']
  /** The KMS key videos are encrypted with (SSE-KMS). */
  kmsKeyId: string
  /** Called with every progress report (the app logs them; tests collect them). */
  onProgress?: (progress: UploadProgress) => void
  logLevel?: string
}

export async function buildRoutesApp (options: RoutesAppOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: { level: options.logLevel ?? 'info' } })

  await app.register(s3Chunk, {
    // Engine: one pool, one budget, one set of S3 clients for every route.
    bucket: options.bucket,
    s3: options.s3,
    maxBufferedBytes: 256 * MiB,
    // Rules every route shares…
    onProgress: (progress) => {
      options.onProgress?.(progress)
      if (progress.done) app.log.info({ key: progress.key, bytes: progress.bytesStored }, 'stored')
    },
    // …and the two kinds of upload.
    rules: {
      avatars: {
        keyPrefix: 'avatars',
        maxFileSize: 5 * MiB,
        allowedTypes: ['image/*'],
        objectParams: { CacheControl: 'public, max-age=31536000, immutable' }
      },
      videos: {
        keyPrefix: 'videos',
        maxFileSize: 20 * GiB,
        allowedTypes: ['video/*'],
        // Computed per file: the form's fields sent before the file are there.
        objectParams: (file) => ({
          ServerSideEncryption: 'aws:kms',
          SSEKMSKeyId: options.kmsKeyId,
          Metadata: { title: String(file.fields.title ?? ''), user: userOf(file.request.headers) },
          ContentDisposition: attachment(file.originalName)
        })
      }
    }
  })

  app.post('/avatars', { config: { s3Chunk: 'avatars' } }, async (request) => await request.s3File())
  app.post('/videos', { config: { s3Chunk: 'videos' } }, async (request) => await request.s3File())
  // One budget, one pool, whichever route the uploads came through.
  app.get('/stats', async () => app.s3Chunk.stats())
  return app
}

// Stands in for the app's own authentication.
function userOf (headers: Record<string, string | string[] | undefined>): string {
  const user = headers['x-user']
  return typeof user === 'string' && /^[a-z0-9-]{1,64}$/.test(user) ? user : 'anonymous'
}
