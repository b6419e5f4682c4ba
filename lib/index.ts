import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import fastifyMultipart from '@fastify/multipart'
import { AlreadyRegisteredError, ClosingError } from './errors.js'
import { parseOptions, type S3ChunkOptions } from './options.js'
import { bodyConsumed, createRequestApi, maxPartSize, type Runtime } from './request-api.js'
import { directRoutes } from './direct/routes.js'
import { abortStaleUploads, ensureCors, ensureLifecycleRule } from './maintenance.js'
import { createPartClient, createS3Client } from './s3-client.js'
import type { S3ChunkDecorator } from './types.js'
import { PartBufferPool } from './upload/part-buffer-pool.js'
import { scheduleCapacity } from './upload/part-schedule.js'
import { createInlineSender } from './upload/part-sender.js'
import { Shutdown } from './upload/shutdown.js'
import { createWorkerPoolSender } from './upload/worker-pool-sender.js'

const s3Chunk: FastifyPluginAsync<S3ChunkOptions> = async function s3Chunk (fastify: FastifyInstance, options: S3ChunkOptions) {
  if (fastify.hasDecorator('s3Chunk')) throw new AlreadyRegisteredError()
  const config = parseOptions(options)

  // @fastify/multipart parses the body; reuse it when the app registered it already.
  if (!fastify.hasRequestDecorator('parts')) await fastify.register(fastifyMultipart)

  // Only when the app asked for more: the default maxFileSize is S3's own ceiling.
  const capacity = scheduleCapacity({ ...config, maxPartSize: maxPartSize(config) })
  if (options.maxFileSize !== undefined && capacity < config.maxFileSize) {
    fastify.log.warn(`fastify-s3-chunk: ${config.maxParts} parts of at most ${maxPartSize(config)} bytes (a quarter of maxBufferedBytes) hold at most ${capacity} bytes; larger files fail with FST_S3CHUNK_PART_LIMIT (raise maxBufferedBytes or lower maxFileSize)`)
  }

  const client = createS3Client(config.s3)
  // One attempt per call: a streamed upload's calls (parts, PUTs, create, complete, abort) are retried by the plugin's own policy.
  const uploadClient = createPartClient(config.s3)
  const policy = { checksum: config.checksum, retry: config.retry }
  const sender = config.mode === 'workers' ? createWorkerPoolSender(config) : createInlineSender(uploadClient, policy)
  const shutdown = new Shutdown()
  const runtime: Runtime = {
    config,
    uploadClient,
    sender,
    buffers: new PartBufferPool(config.maxBufferedBytes),
    counters: { uploadsInFlight: 0, partsInFlight: 0 },
    shutdown,
    // One hook for both paths: where the app records the file.
    onStored: async (file, request) => { await config.onUploadComplete?.(file, request) }
  }

  const decorator: S3ChunkDecorator = {
    client,
    bucket: config.bucket,
    stats: () => ({
      mode: config.mode,
      uploadsInFlight: runtime.counters.uploadsInFlight,
      partsInFlight: runtime.counters.partsInFlight,
      bufferedBytes: runtime.buffers.used,
      peakBufferedBytes: runtime.buffers.peak,
      freeBufferBytes: runtime.buffers.free,
      maxBufferedBytes: runtime.buffers.limit,
      partsWaitingForMemory: runtime.buffers.waiting,
      pool: sender.stats()
    }),
    abortStaleUploads: async ({ olderThan = 24 * 3600 * 1000 } = {}) => await abortStaleUploads(client, config.bucket, config.keyPrefix, olderThan),
    ensureLifecycleRule: async ({ days = 1 } = {}) => await ensureLifecycleRule(client, config.bucket, config.keyPrefix, days),
    ensureCors: async ({ origins }) => await ensureCors(client, config.bucket, origins)
  }
  fastify.decorate('s3Chunk', decorator)

  const api = createRequestApi(runtime)

  if (config.direct !== undefined) {
    await fastify.register(directRoutes, { prefix: config.direct.prefix, config, direct: config.direct, client, onStored: runtime.onStored })
  }
  fastify.decorateRequest('s3File', api.s3File)
  fastify.decorateRequest('s3Files', api.s3Files)
  fastify.decorateRequest('s3Fields', api.s3Fields)

  // An upload that failed mid-body leaves the rest of it unread: close the
  // connection after the reply instead of reading gigabytes only to discard them.
  fastify.addHook('onSend', async (request, reply) => {
    if (bodyConsumed(request) && !request.raw.complete) reply.header('connection', 'close')
  })

  // A reply sent while the body is still arriving (the handler threw, or an
  // upload failed) leaves the request paused mid-body; Node then never ends
  // or closes it, and the upload would wait for bytes forever. Destroying it
  // fails the upload, which is then aborted.
  fastify.addHook('onResponse', async (request) => {
    if (bodyConsumed(request) && !request.raw.complete && !request.raw.destroyed) request.raw.destroy()
  })

  // Uploads still running at shutdown are aborted (never committed half-done),
  // so close() does not wait on clients that may take hours.
  fastify.addHook('preClose', async () => {
    shutdown.close(new ClosingError())
  })
  fastify.addHook('onClose', async () => {
    await sender.close()
    client.destroy()
    uploadClient.destroy()
  })
}

export default fp(s3Chunk, { fastify: '5.x', name: 'fastify-s3-chunk' })
export { s3Chunk }

export * from './errors.js'
export type { S3ChunkOptions, S3ChunkConfig, KeyContext, KeyFunction } from './options.js'
export { MIN_PART_SIZE, MAX_PART_SIZE, MAX_OBJECT_SIZE } from './options.js'
export type { S3File, S3Fields, S3ChunkStats, S3ChunkDecorator } from './types.js'
export { sanitiseFilename } from './keys.js'
export type {
  AuthorizeFunction,
  ChecksumSetting,
  DirectConfig,
  DirectKeyContext,
  DirectKeyFunction,
  DirectUser,
  RetryPolicy,
  S3Settings,
  UploadCompleteHook
} from './options.js'
export type { S3FailureInfo, StorageFailure } from './upload/s3-failure.js'
export type { BucketCallFailure, StaleObject, StaleUpload } from './maintenance.js'
