// The demo: Fastify with fastify-s3-chunk, its three ways in (streamed through
// the server, direct to S3, resumable through the server with tus), two demo users,
// the seed's allowlist (images, video, audio) enforced by content sniffing,
// and a page to try it all. server.ts runs it; the browser tests build it too.
import { randomBytes } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import s3Chunk, { UnauthorizedError, type S3File } from 'fastify-s3-chunk'
import { bundlePage } from './bundle.ts'

/** Demo sign-in: a bearer token per user, so per-user prefixes are visible. Not for production. */
export const DEMO_USERS: Record<string, string> = { 'demo-alice': 'alice', 'demo-bob': 'bob' }
export const ALLOWED_TYPES = ['image/*', 'video/*', 'audio/*']

export interface DemoOptions {
  /** `kind` 's3rver' (the fallback on a machine without MinIO) turns checksums off: s3rver keeps none. */
  s3: { endpoint: string, region: string, accessKeyId: string, secretAccessKey: string, kind?: string }
  bucket: string
  maxFileSize?: number
  logLevel?: string
  /**
   * More settings for the tus endpoint (at /files). Instances that share an
   * upload (tests resume on a second one) must share its signing secret.
   */
  tus?: Record<string, unknown>
}

function userOf (request: FastifyRequest): string | null {
  const token = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1]
  return token === undefined ? null : DEMO_USERS[token] ?? null
}

export async function buildDemo (options: DemoOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: { level: options.logLevel ?? 'info' } })
  const assets = await bundlePage()
  const maxFileSize = options.maxFileSize ?? 2 * 1024 ** 3

  await app.register(s3Chunk, {
    bucket: options.bucket,
    keyPrefix: 'media',
    s3: {
      region: options.s3.region,
      endpoint: options.s3.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: options.s3.accessKeyId, secretAccessKey: options.s3.secretAccessKey }
    },
    maxFileSize,
    // s3rver ignores checksum headers, and an upload whose checksum S3 did not
    // keep is refused (502) rather than committed unverified.
    ...(options.s3.kind === 's3rver' ? { checksum: 'none' as const } : {}),
    allowedTypes: ALLOWED_TYPES,
    // Streamed uploads go under the user's prefix too: <keyPrefix>/<user>/<random>/<name>.
    key: ({ request, filename }) => `${userOf(request) ?? 'anonymous'}/${randomBytes(9).toString('hex')}/${filename}`,
    onUploadComplete: (file, request) => {
      request.log.info({ user: userOf(request), key: file.key, size: file.size, type: file.contentType }, 'demo: file stored')
    },
    direct: {
      authorize: (request) => {
        const user = userOf(request)
        return user === null ? null : { userId: user }
      }
    },
    // Resumable uploads through the server: Uppy's tus plugin on the page. Each
    // upload belongs to the user who created it: only they can resume or end it.
    // The tus endpoint puts each upload under its user's segment itself (authorize):
    // its keys need no user of their own, or they would read media/alice/alice/….
    rules: {
      resumable: { key: ({ filename }) => `${randomBytes(9).toString('hex')}/${filename}` }
    },
    tus: {
      prefix: '/files',
      rules: 'resumable',
      authorize: (request) => {
        const user = userOf(request)
        return user === null ? null : { userId: user }
      },
      ...options.tus
    }
  })

  // Create the bucket; "already there" is fine, anything else means the S3 is unusable.
  await app.s3Chunk.client.send(new CreateBucketCommand({ Bucket: options.bucket })).catch((error: { name?: string }) => {
    if (error.name !== 'BucketAlreadyOwnedByYou' && error.name !== 'BucketAlreadyExists') throw error
  })

  const requireUser = async (request: FastifyRequest): Promise<void> => {
    if (userOf(request) === null) throw new UnauthorizedError()
  }

  app.get('/', async (_request, reply) => await reply.type('text/html; charset=utf-8').send(assets.html.replace('__MAX_FILE_SIZE__', String(maxFileSize))))
  app.get('/app.js', async (_request, reply) => await reply.type('text/javascript; charset=utf-8').send(assets.script))
  app.get('/app.css', async (_request, reply) => await reply.type('text/css; charset=utf-8').send(assets.css))

  // Through the server: one file per request, so the page has a progress bar per file.
  app.post('/api/upload', { preHandler: requireUser }, async (request) => {
    const files: S3File[] = []
    for await (const file of request.s3Files()) files.push(file)
    return { files }
  })

  // The signed-in user's files, read from S3, each with a presigned download link.
  app.get('/api/files', { preHandler: requireUser }, async (request) => {
    const prefix = `media/${userOf(request) ?? ''}/`
    const listed = await app.s3Chunk.client.send(new ListObjectsV2Command({ Bucket: options.bucket, Prefix: prefix, MaxKeys: 100 }))
    const objects = (listed.Contents ?? []).sort((a, b) => (b.LastModified?.getTime() ?? 0) - (a.LastModified?.getTime() ?? 0))
    return await Promise.all(objects.map(async (object) => {
      const key = object.Key ?? ''
      const head = await app.s3Chunk.client.send(new HeadObjectCommand({ Bucket: options.bucket, Key: key }))
      return {
        key,
        name: key.split('/').pop(),
        size: object.Size ?? 0,
        type: head.ContentType ?? 'application/octet-stream',
        date: object.LastModified?.toISOString(),
        url: await getSignedUrl(app.s3Chunk.client, new GetObjectCommand({ Bucket: options.bucket, Key: key }), { expiresIn: 600 })
      }
    }))
  })

  app.get('/api/me', async (request) => ({ user: userOf(request), users: Object.entries(DEMO_USERS).map(([token, name]) => ({ token, name })), maxFileSize, allowedTypes: ALLOWED_TYPES }))
  app.get('/health', async () => ({ ok: true, ...app.s3Chunk.stats() }))
  return app
}
