import type { FastifyRequest } from 'fastify'
import type { Multipart, MultipartFile } from '@fastify/multipart'
import type { S3Client } from '@aws-sdk/client-s3'
import {
  AlreadyConsumedError,
  BadMultipartError,
  FileTooLargeError,
  NoFileError,
  NotMultipartError,
  TooManyPartsError,
  TypeNotAllowedError
} from './errors.js'
import { SNIFF_BYTES, sniffType, typeAllowed } from './content-types.js'
import { MAX_ORIGINAL_NAME_BYTES, makeKey, sanitiseFilename } from './keys.js'
import type { S3ChunkConfig } from './options.js'
import { objectUrl } from './s3-client.js'
import type { S3Fields, S3File } from './types.js'
import { uploadStream } from './upload/coordinator.js'
import type { PartBufferPool } from './upload/part-buffer-pool.js'
import { partSchedule } from './upload/part-schedule.js'
import type { PartSender } from './upload/part-sender.js'
import { isStorageFailure } from './upload/s3-failure.js'

/** What the request methods need from the plugin instance. */
export interface Runtime {
  config: S3ChunkConfig
  /** One attempt per call: every S3 call of a streamed upload is retried by the plugin's `retry` policy. */
  uploadClient: S3Client
  sender: PartSender
  buffers: PartBufferPool
  counters: { uploadsInFlight: number, partsInFlight: number }
  /** Aborted when the server closes: uploads in flight are aborted, not committed. */
  closing: AbortSignal
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

  async function storeFile (request: FastifyRequest, part: MultipartFile): Promise<S3File> {
    const originalName = part.filename
    if (Buffer.byteLength(originalName) > MAX_ORIGINAL_NAME_BYTES) {
      throw new BadMultipartError(`a filename is longer than ${MAX_ORIGINAL_NAME_BYTES} bytes`)
    }
    const contentType = part.mimetype !== '' ? part.mimetype : 'application/octet-stream'
    if (!typeAllowed(contentType, config.allowedTypes)) throw new TypeNotAllowedError(contentType)
    const key = await makeKey(config, {
      filename: sanitiseFilename(originalName),
      originalName,
      fieldName: part.fieldname,
      mimetype: contentType,
      request
    })
    try {
      const outcome = await uploadStream(checkedSource(part, config), { bucket: config.bucket, key, contentType }, {
        client: runtime.uploadClient,
        retry: config.retry,
        sender: runtime.sender,
        partSize: partSchedule({
          partSize: config.partSize,
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
        signal: runtime.closing,
        log: request.log
      })
      const file: S3File = {
        fieldName: part.fieldname,
        originalName,
        key,
        bucket: config.bucket,
        size: outcome.size,
        contentType,
        etag: outcome.etag,
        location: objectUrl(config.s3, config.bucket, key),
        parts: outcome.parts
      }
      if (outcome.versionId !== undefined) file.versionId = outcome.versionId
      if (outcome.checksum !== undefined) file.checksum = outcome.checksum
      await runtime.onStored(file, request)
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

  async function * s3Files (this: FastifyRequest): AsyncGenerator<S3File, void, undefined> {
    const request = this
    const parts = openParts(request)
    const { fields } = stateOf(request)
    try {
      for await (const part of parts) {
        if (part.type === 'field') addField(fields, part.fieldname, part.value)
        else yield await storeFile(request, part)
      }
    } catch (error) {
      throw translateError(error, config)
    }
  }

  async function s3File (this: FastifyRequest): Promise<S3File> {
    const request = this
    const parts = openParts(request)
    const { fields } = stateOf(request)
    let first: S3File | undefined
    try {
      for await (const part of parts) {
        if (part.type === 'field') {
          addField(fields, part.fieldname, part.value)
        } else if (first === undefined) {
          first = await storeFile(request, part)
        } else {
          // Only the first file is stored; later ones are read through so the fields after them arrive.
          request.log.debug({ field: part.fieldname }, 'fastify-s3-chunk: s3File() ignores files after the first')
          await drain(part.file)
        }
      }
    } catch (error) {
      throw translateError(error, config)
    }
    if (first === undefined) throw new NoFileError()
    return first
  }

  function s3Fields (this: FastifyRequest): S3Fields {
    return { ...stateOf(this).fields }
  }

  return { s3File, s3Files, s3Fields }
}

function declaredLength (request: FastifyRequest): number | undefined {
  const header = request.headers['content-length']
  if (header === undefined || !/^\d+$/.test(header)) return undefined
  return Number(header)
}

function addField (fields: S3Fields, name: string, value: unknown): void {
  const text = typeof value === 'string' ? value : JSON.stringify(value)
  const existing = fields[name]
  if (existing === undefined) fields[name] = text
  else if (Array.isArray(existing)) existing.push(text)
  else fields[name] = [existing, text]
}

/**
 * The file stream, checked on the way:
 * - with allowedTypes, its first bytes are held back and sniffed before any
 *   reach S3, so a file of another type fails before anything is stored;
 * - it fails with FileTooLargeError when busboy's fileSize limit cut it short,
 *   so a truncated file is aborted, never committed.
 * `destroy` lets the coordinator stop reading at once.
 */
function checkedSource (part: MultipartFile, config: S3ChunkConfig): AsyncIterable<Uint8Array> & { destroy: (error?: Error) => void } {
  const file = part.file
  const allowed = config.allowedTypes
  return {
    async * [Symbol.asyncIterator] () {
      let head: Buffer[] | null = allowed === undefined ? null : []
      let headBytes = 0
      const checkHead = async (): Promise<Buffer> => {
        const bytes = Buffer.concat(head ?? [])
        const sniffed = await sniffType(bytes)
        if (sniffed === undefined || !typeAllowed(sniffed, allowed)) throw new TypeNotAllowedError(sniffed ?? 'unrecognised content')
        head = null
        return bytes
      }
      for await (const chunk of file) {
        if (head === null) {
          yield chunk as Uint8Array
          continue
        }
        head.push(chunk as Buffer)
        headBytes += (chunk as Buffer).byteLength
        if (headBytes >= SNIFF_BYTES) yield await checkHead()
      }
      if (head !== null) yield await checkHead()
      if (file.truncated) throw new FileTooLargeError(config.maxFileSize)
    },
    destroy: (error?: Error) => { file.destroy(error) }
  }
}

async function drain (stream: NodeJS.ReadableStream): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  for await (const _ of stream) { /* discard */ }
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
