// A real Fastify server with the plugin, listening on 127.0.0.1:0, closed at teardown.
import Fastify, { type FastifyInstance } from 'fastify'
import s3Chunk, { type S3ChunkOptions, type S3File } from 'fastify-s3-chunk'
import type { S3Server } from './s3-server.ts'
import { pluginS3Options } from './s3.ts'

export interface TestApp {
  app: FastifyInstance
  url: string
}

/** Routes: POST /upload → s3File(); POST /many → { files, fields } from s3Files(). */
export async function startApp (
  t: { teardown: (fn: () => unknown) => void },
  server: S3Server,
  options: Partial<S3ChunkOptions> & { bucket: string },
  setup?: (app: FastifyInstance) => void | Promise<void>,
  logLines?: Array<Record<string, unknown>>
): Promise<TestApp> {
  const logger = logLines !== undefined
    ? { level: 'debug', stream: { write: (line: string) => { logLines.push(JSON.parse(line) as Record<string, unknown>) } } }
    : { level: process.env.TEST_LOG_LEVEL ?? 'silent' }
  const app = Fastify({ logger })
  // s3rver (the fallback without MinIO) keeps no checksums: the CRC32 default would refuse every multipart upload there.
  await app.register(s3Chunk, { s3: pluginS3Options(server), ...(server.kind === 's3rver' ? { checksum: 'none' as const } : {}), ...options })
  app.post('/upload', async (request) => await request.s3File())
  app.post('/many', async (request) => {
    const files: S3File[] = []
    for await (const file of request.s3Files()) files.push(file)
    return { files, fields: request.s3Fields() }
  })
  if (setup !== undefined) await setup(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { await app.close() })
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  return { app, url: `http://127.0.0.1:${port}` }
}
