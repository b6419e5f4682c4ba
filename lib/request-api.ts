import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { Multipart, MultipartFile } from '@fastify/multipart'
import { DeleteObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import {
  AlreadyConsumedError,
  BadMultipartError,
  FileTooLargeError,
  NoFileError,
  NotMultipartError,
  TooManyPartsError,
  UploadHookError
} from './errors.js'
import { SNIFF_BYTES, checkDeclaredType, decideType, sniffType } from './content-types.js'
import { MAX_ORIGINAL_NAME_BYTES, makeKey, sanitiseFilename } from './keys.js'
import type { S3ChunkConfig } from './options.js'
import { objectUrl } from './s3-client.js'
import type { S3Fields, S3File } from './types.js'
import { uploadStream, type UploadTarget } from './upload/coordinator.js'
import { IdleWatch } from './upload/idle-watch.js'
import type { PartBufferPool } from './upload/part-buffer-pool.js'
import { partSchedule } from './upload/part-schedule.js'
import type { PartSender } from './upload/part-sender.js'
import { isStorageFailure } from './upload/s3-failure.js'
import { failureInfo, withRetries } from './upload/send-part.js'
import type { Shutdown } from './upload/shutdown.js'

/** What the request methods need from the plugin instance. */
export interface Runtime {
  config: S3ChunkConfig
  /** One attempt per call: every S3 call of a streamed upload is retried by the plugin's `retry` policy. */
  uploadClient: S3Client
  sender: PartSender
  buffers: PartBufferPool
  counters: { uploadsInFlight: number, partsInFlight: number }
  /** Closed when the server closes: uploads in flight are aborted, not committed. */
  shutdown: Shutdown
  /** Runs the app's onUploadComplete hook for a stored file. */
  onStored: (file: S3File, request: FastifyRequest) => Promise<void>
}

interface RequestState {
  consumed: boolean
  fields: S3Fields
}

const states = new WeakMap<FastifyRequest, RequestState>()

function stateOf (request: FastifyRequest): RequestState {
  let state = states.get(request)
  if (state === undefined) {
    state = { consumed: false, fields: Object.create(null) as S3Fields }
    states.set(request, state)
  }
  return state
}

/** True once s3File()/s3Files() has started reading this request's body. */
export function bodyConsumed (request: FastifyRequest): boolean {
  return states.get(request)?.consumed === true
}

export function createRequestApi (runtime: Runtime): {
  s3File: (this: FastifyRequest) => Promise<S3File>
  s3Files: (this: FastifyRequest) => AsyncGenerator<S3File, void, undefined>
  s3Fields: (this: FastifyRequest) => S3Fields
} {
  const { config } = runtime

  function openParts (request: FastifyRequest): AsyncIterableIterator<Multipart> {
    if (!request.isMultipart()) throw new NotMultipartError()
    const state = stateOf(request)
    if (state.consumed) throw new AlreadyConsumedError()
    state.consumed = true
    const options = {
      limits: {
        fileSize: config.maxFileSize,
        files: config.maxFiles,
        fields: config.maxFields,
        fieldSize: config.maxFieldSize,
        parts: config.maxFiles + config.maxFields
      },
      // A size limit must fail the upload, never truncate it.
      throwFileSizeLimit: true,
      // Keep the filename exactly as sent (originalName); the key uses a sanitised copy.
      preservePath: true,
      // Only a part with a filename is a file; busboy would also take any
      // application/octet-stream part, leaving the file nameless.
      isPartAFile: (_field: string | undefined, _type: string | undefined, filename: string | undefined) => filename !== undefined
    }
    try {
      return request.parts(options)
    } catch (error) {
      throw translateError(error, config)
    }
  }

  /** Streams one file into S3; resolves once it is committed (the app's hook has not run yet). */
  async function storeFile (request: FastifyRequest, part: MultipartFile, watch: IdleWatch): Promise<S3File> {
    const originalName = part.filename
    if (Buffer.byteLength(originalName) > MAX_ORIGINAL_NAME_BYTES) {
      throw new BadMultipartError(`a filename is longer than ${MAX_ORIGINAL_NAME_BYTES} bytes`)
    }
    // 400 for a malformed declaration, 415 for a specific one not allowed, before any byte is read.
    const declared = checkDeclaredType(part.mimetype === '' ? undefined : part.mimetype, config.allowedTypes)
    const key = await makeKey(config, {
      filename: sanitiseFilename(originalName),
      originalName,
      fieldName: part.fieldname,
      mimetype: declared ?? 'application/octet-stream',
      request
    })
    // The type is final once the first bytes are sniffed, before any of them reach S3.
    const target: UploadTarget = { bucket: config.bucket, key, contentType: declared ?? 'application/octet-stream', overwrite: config.overwrite }
    try {
      const outcome = await uploadStream(checkedSource(part, target, declared, config, watch), target, {
        client: runtime.uploadClient,
        retry: config.retry,
        sender: runtime.sender,
        partSize: partSchedule({
          partSize: config.partSize,
          maxPartSize: maxPartSize(config),
          maxParts: config.maxParts,
          maxFileSize: config.maxFileSize,
          equalParts: config.equalParts,
          // The whole body's length bounds the file's: parts can be sized up front.
          expectedSize: declaredLength(request)
        }),
        partConcurrency: config.partConcurrency,
        maxFileSize: config.maxFileSize,
        maxParts: config.maxParts,
        checksum: config.checksum,
        buffers: runtime.buffers,
        counters: runtime.counters,
        shutdown: runtime.shutdown,
        log: request.log
      })
      const file: S3File = {
        fieldName: part.fieldname,
        originalName,
        key,
        bucket: config.bucket,
        size: outcome.size,
        contentType: target.contentType,
        etag: outcome.etag,
        location: objectUrl(config.s3, config.bucket, key),
        parts: outcome.parts
      }
      if (outcome.versionId !== undefined) file.versionId = outcome.versionId
      if (outcome.checksum !== undefined) file.checksum = outcome.checksum
      return file
    } catch (error) {
      if (isStorageFailure(error)) {
        request.log.error({ key, s3: error.s3 }, `fastify-s3-chunk: ${error.s3.operation} failed (${error.s3.code ?? error.s3.name}); upload aborted`)
      } else {
        request.log.info({ key, err: error }, 'fastify-s3-chunk: upload aborted')
      }
      throw translateError(error, config)
    }
  }

  /** The app's hook for a stored file; when it throws, the object is deleted so storage and the app's records agree. */
  async function record (request: FastifyRequest, file: S3File): Promise<void> {
    try {
      await runtime.onStored(file, request)
    } catch (error) {
      request.log.error({ key: file.key, err: error }, 'fastify-s3-chunk: onUploadComplete threw; deleting the stored object')
      await discard(runtime.uploadClient, config, file, request.log)
      throw new UploadHookError()
    }
  }

  /**
   * Each file is stored, recorded (onUploadComplete) and yielded as it
   * arrives; a file yielded stays stored whatever happens later in the body.
   * When a later part fails, the error's message lists the keys that stay.
   */
  async function * s3Files (this: FastifyRequest): AsyncGenerator<S3File, void, undefined> {
    const request = this
    const parts = openParts(request)
    const { fields } = stateOf(request)
    const watch = new IdleWatch(config.bodyTimeout)
    const stored: S3File[] = []
    try {
      for await (const part of watch.iterate(parts)) {
        if (part.type === 'field') {
          addField(fields, part, config)
          continue
        }
        const file = await storeFile(request, part, watch)
        await record(request, file)
        stored.push(file)
        yield file
      }
    } catch (error) {
      throw withStoredKeys(translateError(error, config), stored)
    } finally {
      watch.stop()
    }
  }

  /**
   * The first file, stored and then recorded only once the whole body was
   * read: when anything after the file fails (a bad field, a limit, the
   * client leaving), the object is deleted and the hook never runs.
   */
  async function s3File (this: FastifyRequest): Promise<S3File> {
    const request = this
    const parts = openParts(request)
    const { fields } = stateOf(request)
    const watch = new IdleWatch(config.bodyTimeout)
    let first: S3File | undefined
    try {
      for await (const part of watch.iterate(parts)) {
        if (part.type === 'field') {
          addField(fields, part, config)
        } else if (first === undefined) {
          first = await storeFile(request, part, watch)
        } else {
          // Only the first file is stored; later ones are read through so the fields after them arrive.
          request.log.debug({ field: part.fieldname }, 'fastify-s3-chunk: s3File() ignores files after the first')
          await drain(part.file, watch)
        }
      }
    } catch (error) {
      if (first !== undefined) {
        request.log.info({ key: first.key, err: error }, 'fastify-s3-chunk: the request failed after its file was stored; deleting it')
        await discard(runtime.uploadClient, config, first, request.log)
      }
      throw translateError(error, config)
    } finally {
      watch.stop()
    }
    if (first === undefined) throw new NoFileError()
    await record(request, first)
    return first
  }

  function s3Fields (this: FastifyRequest): S3Fields {
    return { ...stateOf(this).fields }
  }

  return { s3File, s3Files, s3Fields }
}

/**
 * The largest part the plugin makes: a quarter of the memory budget (or the
 * configured part size, when larger), so one upload's part can never take the
 * whole budget, whatever size a client declares.
 */
export function maxPartSize (config: Pick<S3ChunkConfig, 'partSize' | 'maxBufferedBytes'>): number {
  return Math.max(config.partSize, Math.floor(config.maxBufferedBytes / 4))
}

/** Deletes a stored object (that exact version, when the bucket keeps versions); a failure is logged, never thrown over the cause. */
async function discard (client: S3Client, config: S3ChunkConfig, file: S3File, log: FastifyBaseLogger): Promise<void> {
  try {
    await withRetries('DeleteObject', config.retry, async () => await client.send(new DeleteObjectCommand({
      Bucket: file.bucket,
      Key: file.key,
      ...(file.versionId !== undefined ? { VersionId: file.versionId } : {})
    })))
  } catch (error) {
    log.error({ key: file.key, s3: failureInfo('DeleteObject', error) }, 'fastify-s3-chunk: could not delete an object whose request failed; it stays in the bucket')
  }
}

/** Names, in the error a client gets, the files that stay stored although the request failed. */
function withStoredKeys (error: unknown, stored: S3File[]): unknown {
  if (stored.length === 0 || typeof error !== 'object' || error === null) return error
  const keys = stored.map((file) => file.key)
  const described = error as { message?: unknown, storedKeys?: string[] }
  described.storedKeys = keys
  if (typeof described.message === 'string') described.message += ` (files stored before the failure stay stored: ${keys.join(', ')})`
  return error
}

function declaredLength (request: FastifyRequest): number | undefined {
  const header = request.headers['content-length']
  if (header === undefined || !/^\d+$/.test(header)) return undefined
  return Number(header)
}

function addField (fields: S3Fields, part: { fieldname: string, value: unknown, valueTruncated?: boolean, fieldnameTruncated?: boolean }, config: S3ChunkConfig): void {
  // busboy cuts an over-long value (or name) and carries on; a cut value is not what the client sent.
  if (part.valueTruncated === true) throw new TooManyPartsError(`a field is larger than ${config.maxFieldSize} bytes`)
  if (part.fieldnameTruncated === true) throw new TooManyPartsError('a field name is longer than 100 bytes')
  const text = typeof part.value === 'string' ? part.value : JSON.stringify(part.value)
  const existing = fields[part.fieldname]
  if (existing === undefined) fields[part.fieldname] = text
  else if (Array.isArray(existing)) existing.push(text)
  else fields[part.fieldname] = [existing, text]
}

/**
 * The file stream, checked on the way:
 * - its first bytes are held back and sniffed before any reach S3, and the
 *   type the object is stored with decided from them (`decideType`): with
 *   allowedTypes a file of another type fails before anything is stored;
 * - a client that sends nothing for `bodyTimeout` fails it (IdleWatch);
 * - it fails with FileTooLargeError when busboy's fileSize limit cut it short,
 *   so a truncated file is aborted, never committed.
 * `destroy` lets the coordinator stop reading at once.
 */
function checkedSource (part: MultipartFile, target: UploadTarget, declared: string | undefined, config: S3ChunkConfig, watch: IdleWatch): AsyncIterable<Uint8Array> & { destroy: (error?: Error) => void } {
  const file = part.file
  return {
    async * [Symbol.asyncIterator] () {
      let head: Buffer[] | null = []
      let headBytes = 0
      const decide = async (): Promise<Buffer> => {
        const bytes = Buffer.concat(head ?? [])
        target.contentType = decideType(declared, await sniffType(bytes), config.allowedTypes)
        head = null
        return bytes
      }
      for await (const chunk of watch.iterate(file as AsyncIterable<Buffer>)) {
        if (head === null) {
          yield chunk
          continue
        }
        head.push(chunk)
        headBytes += chunk.byteLength
        if (headBytes >= SNIFF_BYTES) yield await decide()
      }
      if (head !== null) {
        const bytes = await decide()
        if (bytes.byteLength > 0) yield bytes
      }
      if (file.truncated) throw new FileTooLargeError(config.maxFileSize)
    },
    destroy: (error?: Error) => { file.destroy(error) }
  }
}

async function drain (stream: NodeJS.ReadableStream, watch: IdleWatch): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  for await (const _ of watch.iterate(stream as AsyncIterable<unknown>)) { /* discard */ }
}

const busboyMessages = /Unexpected end of|Boundary not found|Malformed|terminated early|Unsupported content type|Missing Content-Type/i

/** Maps @fastify/multipart and busboy errors onto this plugin's errors. */
function translateError (error: unknown, config: S3ChunkConfig): unknown {
  if (typeof error !== 'object' || error === null) return error
  const { code, message } = error as { code?: unknown, message?: unknown }
  switch (code) {
    case 'FST_INVALID_MULTIPART_CONTENT_TYPE': return new NotMultipartError()
    case 'FST_REQ_FILE_TOO_LARGE': return new FileTooLargeError(config.maxFileSize)
    case 'FST_FILES_LIMIT': return new TooManyPartsError(`more than ${config.maxFiles} files`)
    case 'FST_FIELDS_LIMIT': return new TooManyPartsError(`more than ${config.maxFields} fields`)
    case 'FST_PARTS_LIMIT': return new TooManyPartsError(`more than ${config.maxFiles + config.maxFields} parts`)
    case 'FST_PROTO_VIOLATION': return new BadMultipartError('a field name is a reserved property name')
    case 'FST_INVALID_JSON_FIELD_ERROR': return new BadMultipartError('a JSON field is not valid JSON')
    case 'FST_MP_PREMATURE_CLOSE': return new BadMultipartError('the request ended before the body was complete')
  }
  if (typeof code === 'string' && code.startsWith('FST_S3CHUNK_')) return error
  if (typeof message === 'string' && busboyMessages.test(message)) return new BadMultipartError(message)
  return error
}
