import type { CORSRule, LifecycleRule, S3Client } from '@aws-sdk/client-s3'

/** One file stored in S3 by the plugin. Plain JSON: safe to return from a route. */
export interface S3File {
  /** The multipart field the file came in. */
  fieldName: string
  /** The filename exactly as the client sent it (untrusted; never used in the key as is). */
  originalName: string
  /** The object key. */
  key: string
  bucket: string
  /** Bytes actually stored (counted by the plugin, not declared by the client). */
  size: number
  /** The content type the object was stored with. */
  contentType: string
  /** The object's ETag as S3 returned it (with quotes stripped). */
  etag: string
  /** URL of the object (not presigned). */
  location: string
  /** Set when the bucket has versioning on. */
  versionId?: string
  /** The object's checksum, when a checksum algorithm is configured. */
  checksum?: string
  /** Number of multipart parts; 0 when the file went out as a single PutObject. */
  parts: number
  /** Direct uploads: the Uppy metadata fields kept (`direct.metadataFields`), decoded. */
  metadata?: Record<string, string>
}

/** Non-file form fields seen so far; a repeated name becomes an array. */
export type S3Fields = Record<string, string | string[]>

/** Live figures of the plugin's upload machinery. */
export interface S3ChunkStats {
  mode: 'workers' | 'inline'
  /** Files being uploaded right now. */
  uploadsInFlight: number
  /** Parts being sent right now, over all uploads. */
  partsInFlight: number
  /** Bytes held in part buffers right now, over all uploads. */
  bufferedBytes: number
  /** The most bytes ever held in part buffers at once since the plugin started. */
  peakBufferedBytes: number
  /** Bytes of free part buffers kept for reuse (within the budget; dropped after 30 s idle). */
  freeBufferBytes: number
  /** The memory budget (`maxBufferedBytes`). */
  maxBufferedBytes: number
  /** Parts waiting for room in the budget right now. */
  partsWaitingForMemory: number
  /** Worker pool figures (mode `workers`; null in inline mode). */
  pool: { threads: number, queueSize: number, completed: number } | null
  /** True once `app.close()` began: new uploads are refused (503) while those in flight finish (`closeGracePeriod`). */
  closing: boolean
}

/** `fastify.s3Chunk`: the plugin's instance API. */
export interface S3ChunkDecorator {
  /** The main thread's S3 client, configured like the workers' clients. */
  client: S3Client
  bucket: string
  stats: () => S3ChunkStats
  /**
   * Aborts multipart uploads under keyPrefix started more than `olderThan` ms
   * ago (default 24 h): what a crashed process could not abort. Also deletes
   * staged direct uploads (`<keyPrefix>/.staging/`) posted more than `olderThan`
   * ms ago and never completed (`deleted`), and expired tus uploads. Covers
   * every bucket and keyPrefix the scope stores to: its own, each rule set's,
   * each route's own `config.s3Chunk` (not options given to one s3File() call).
   * A bucket that cannot be swept (deleted, access denied) does not stop the others: every
   * bucket is swept, then the first failure rejects (FST_S3CHUNK_BUCKET_CALL, its `s3`
   * details), with `swept` (what was aborted and deleted elsewhere) and `failedBuckets`
   * (`[{ bucket, error }]`) on it.
   */
  abortStaleUploads: (options?: { olderThan?: number }) => Promise<{
    aborted: Array<{ key: string, uploadId: string, initiated: Date | undefined }>
    deleted: Array<{ key: string, lastModified: Date | undefined }>
  }>
  /**
   * Adds or updates a bucket lifecycle rule that makes S3 abort incomplete
   * multipart uploads under keyPrefix after `days` (default 1), and one that
   * expires staged direct uploads (`<keyPrefix>/.staging/`) after `days`, for
   * every bucket and keyPrefix abortStaleUploads() covers. Other rules are
   * kept. Returns the first rule.
   */
  ensureLifecycleRule: (options?: { days?: number }) => Promise<LifecycleRule>
  /**
   * Sets the bucket's CORS rule so browsers at `origins` can upload directly:
   * PUT/POST allowed, ETag exposed (multipart needs it). Replaces the bucket's CORS rules.
   */
  ensureCors: (options: { origins: string[] }) => Promise<CORSRule>
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The rules this route's uploads run by: a rule set's name, or rule options layered over the registration's. */
    s3Chunk?: import('./options.js').RouteRules
  }
  interface FastifyInstance {
    s3Chunk: S3ChunkDecorator
  }
  interface FastifyRequest {
    /**
     * Streams the body's first file into S3 and resolves to it once the whole body was read;
     * later fields are read, later files discarded. `options`: rule options by their register
     * names (`keyPrefix`, `maxFileSize`, `allowedTypes`, `objectParams`, …), a named rule set
     * (`rules`), and a `signal` that cancels the upload.
     */
    s3File: (options?: import('./options.js').UploadOptions) => Promise<S3File>
    /** Streams each file of the body into S3 as it arrives, yielding each once stored; `options` as for s3File(). */
    s3Files: (options?: import('./options.js').UploadOptions) => AsyncGenerator<S3File, void, undefined>
    /** The non-file fields read so far (all of them once s3File()/s3Files() is done). */
    s3Fields: () => S3Fields
  }
}
