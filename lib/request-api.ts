import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { Multipart, MultipartFile } from '@fastify/multipart'
import { DeleteObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import {
  AlreadyConsumedError,
  BadMultipartError,
  BodyAlreadyReadError,
  BodyNotParsedError,
  ClosingError,
  FileTooLargeError,
  InvalidOptionError,
  NoFileError,
  NotMultipartError,
  NotRegisteredError,
  TooManyPartsError,
  UploadHookError
} from './errors.js'
import { SNIFF_BYTES, checkDeclaredType, decideType, sniffType } from './content-types.js'
import { jsonFieldText } from './json-field.js'
import type { Engine } from './engine.js'
import { MAX_ORIGINAL_NAME_BYTES, customKey, makeKey, sanitiseFilename } from './keys.js'
import { objectParamsFor } from './object-params.js'
import { layerRules, type RetryPolicy, type RouteRules, type S3ChunkConfig, type UploadOptions } from './options.js'
import { objectUrl } from './s3-client.js'
import type { S3Fields, S3File } from './types.js'
import { uploadStream, type UploadTarget } from './upload/coordinator.js'
import { IdleWatch } from './upload/idle-watch.js'
import { OutsideParts } from './upload/outside-parts.js'
import { maxPartSize, partSchedule } from './upload/part-schedule.js'
import { ProgressReporter } from './upload/progress.js'
import { isStorageFailure } from './upload/s3-failure.js'
import { failureInfo, withRetries } from './upload/send-part.js'

/** What the request methods of one registration scope need. */
export interface Scope {
  engine: Engine
  /** This registration's rules (layered over an outer registration's, when there is one). */
  config: S3ChunkConfig
  /** Named rule sets (`rules` at register), each layered over the config it was declared with. */
  rules: Readonly<Record<string, S3ChunkConfig>>
}

/** Where a registration keeps its scope on its Fastify instance (inherited by the scopes inside it). */
export const kScope = Symbol('fastify-s3-chunk.scope')

interface RequestState {
  consumed: boolean
  fields: S3Fields
  /** Bytes of the field values kept so far: bounded by maxFieldsSize. */
  fieldBytes: number
  fieldCount: number
}

const states = new WeakMap<FastifyRequest, RequestState>()

function stateOf (request: FastifyRequest): RequestState {
  let state = states.get(request)
  if (state === undefined) {
    state = { consumed: false, fields: Object.create(null) as S3Fields, fieldBytes: 0, fieldCount: 0 }
    states.set(request, state)
  }
  return state
}

/** True once s3File()/s3Files() has started reading this request's body. */
export function bodyConsumed (request: FastifyRequest): boolean {
  return states.get(request)?.consumed === true
}

/** The scope of the route's registration. */
export function scopeOf (request: FastifyRequest): Scope {
  const scope = (request.server as unknown as { [kScope]?: Scope })[kScope]
  if (scope === undefined) throw new NotRegisteredError()
  return scope
}

// A route's `config.s3Chunk` object, layered once per base config.
const routeLayers = new WeakMap<object, { base: S3ChunkConfig, config: S3ChunkConfig }>()

/**
 * The rules one upload runs by: the registration's, then a named rule set
 * (the call's `rules`, or the route's), then the route's own options
 * (`config: { s3Chunk }`), then the call's options.
 */
export function rulesFor (request: FastifyRequest, options: UploadOptions | undefined): { scope: Scope, config: S3ChunkConfig } {
  const scope = scopeOf(request)
  const route = (request.routeOptions.config as { s3Chunk?: RouteRules } | undefined)?.s3Chunk
  const where = `route ${request.routeOptions.method?.toString() ?? ''} ${request.routeOptions.url ?? ''}`
  let config = scope.config
  const setName = options?.rules ?? (typeof route === 'string' ? route : route?.rules)
  if (setName !== undefined) {
    // Own names only: 'constructor' or '__proto__' must not find Object's.
    const named = Object.hasOwn(scope.rules, setName) ? scope.rules[setName] : undefined
    if (named === undefined) throw new InvalidOptionError(`${where}: no rule set named "${setName}" (declare it in the plugin's \`rules\` option)`)
    config = named
  }
  if (route !== undefined && typeof route === 'object') {
    const cached = routeLayers.get(route)
    if (cached?.base === config) {
      config = cached.config
    } else {
      const { rules: _name, ...overrides } = route
      const layered = layerRules(config, overrides, `${where} config.s3Chunk`)
      routeLayers.set(route, { base: config, config: layered })
      config = layered
    }
  }
  if (options !== undefined) {
    const { rules: _name, signal: _signal, ...overrides } = options
    if (Object.keys(overrides).length > 0) config = layerRules(config, overrides, `${where} s3File()/s3Files() options`)
  }
  return { scope, config }
}

/** The request's header says multipart/form-data: told before any parser has run (onRequest), unlike `request.isMultipart()`. */
export function declaresMultipart (request: FastifyRequest): boolean {
  return /^\s*multipart\/form-data\b/i.test(request.headers['content-type'] ?? '')
}

export function createRequestApi (): {
  s3File: (this: FastifyRequest, options?: UploadOptions) => Promise<S3File>
  s3Files: (this: FastifyRequest, options?: UploadOptions) => AsyncGenerator<S3File, void, undefined>
  s3Fields: (this: FastifyRequest) => S3Fields
} {
  function openParts (request: FastifyRequest, config: S3ChunkConfig): AsyncIterableIterator<Multipart> {
    if (!request.isMultipart()) {
      // A multipart request looks like none before Fastify parses it (onRequest, preParsing).
      // Not a GET or HEAD's: Fastify never parses theirs (a client's header is no app mistake: found in review).
      if (request.method !== 'GET' && request.method !== 'HEAD' && declaresMultipart(request)) throw new BodyNotParsedError()
      throw new NotMultipartError()
    }
    const state = stateOf(request)
    if (state.consumed) throw new AlreadyConsumedError()
    // @fastify/multipart's attachFieldsToBody reads the whole body (files in memory) before the
    // handler; request.file()/parts() begin to read it: this call would wait for bytes already taken.
    const raw = request.raw
    if ((request.body !== undefined && request.body !== null) || raw.readableDidRead || raw.readableFlowing === true) throw new BodyAlreadyReadError()
    state.consumed = true
    const options = {
      limits: {
        fileSize: config.maxFileSize,
        files: config.maxFiles,
        // One more than allowed: busboy's fieldsLimit only drops later fields and goes on handing
        // over files (@fastify/multipart reports it at the body's end), so a file after the limit
        // was stored. addField() refuses the field past maxFields where it stands (found in review).
        fields: config.maxFields + 1,
        fieldSize: config.maxFieldSize,
        parts: config.maxFiles + config.maxFields + 1
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
  async function storeFile (request: FastifyRequest, part: MultipartFile, upload: Upload, commitGate?: Promise<void>, onConsumed?: () => void): Promise<S3File> {
    const { engine, watch, signal } = upload
    const originalName = part.filename
    if (Buffer.byteLength(originalName) > MAX_ORIGINAL_NAME_BYTES) {
      throw new BadMultipartError(`a filename is longer than ${MAX_ORIGINAL_NAME_BYTES} bytes`)
    }
    // 400 for a malformed declaration, 415 for a specific one not allowed, before any byte is read.
    const declared = checkDeclaredType(part.mimetype === '' ? undefined : part.mimetype, upload.config.allowedTypes, true)
    const file = {
      fieldName: part.fieldname,
      originalName,
      filename: sanitiseFilename(originalName),
      declaredType: declared,
      fields: { ...stateOf(request).fields },
      request
    }
    // The app's say before anything is stored: refuse (throw), or change the key and object settings.
    const overrides = (await upload.config.onFile?.(file)) ?? undefined
    const config = upload.config
    const key = overrides?.key !== undefined
      ? customKey(config, overrides.key)
      : await makeKey(config, { filename: file.filename, originalName, fieldName: part.fieldname, mimetype: declared ?? 'application/octet-stream', request })
    // The type (and the object settings computed from it) are final once the first bytes are sniffed, before any of them reach S3.
    const target: UploadTarget = { bucket: config.bucket, key, contentType: declared ?? 'application/octet-stream', overwrite: config.overwrite }
    const progress = config.onProgress === undefined
      ? null
      : new ProgressReporter(config.onProgress, { fieldName: part.fieldname, originalName, key, total: declaredLength(request) })
    const telemetry = engine.telemetry.startUpload('streamed', { bucket: config.bucket, key })
    const settle = async (contentType: string): Promise<void> => {
      target.contentType = contentType
      target.objectParams = await objectParamsFor(config, { ...file, contentType }, overrides?.objectParams)
    }
    try {
      // The span is active for the upload's S3 calls from the main thread (children under the SDK's instrumentation).
      const outcome = await telemetry.run(async () => await uploadStream(checkedSource(part, declared, config, watch, settle, progress, onConsumed), target, {
        client: engine.uploadClient,
        retry: engine.config.retry,
        sender: engine.sender,
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
        checksum: engine.config.checksum,
        buffers: engine.buffers,
        counters: engine.counters,
        shutdown: engine.shutdown,
        ...(signal !== undefined ? { signal } : {}),
        ...(progress !== null ? { onStored: (bytes: number, parts: number) => { progress.stored(bytes, parts) } } : {}),
        ...(commitGate !== undefined ? { commitGate } : {}),
        log: request.log,
        telemetry
      }))
      telemetry.stored(outcome)
      const stored: S3File = {
        fieldName: part.fieldname,
        originalName,
        key,
        bucket: config.bucket,
        size: outcome.size,
        contentType: target.contentType,
        etag: outcome.etag,
        location: objectUrl(engine.config.s3, config.bucket, key),
        parts: outcome.parts
      }
      if (outcome.versionId !== undefined) stored.versionId = outcome.versionId
      if (outcome.checksum !== undefined) stored.checksum = outcome.checksum
      progress?.done(outcome.size, outcome.parts)
      return stored
    } catch (error) {
      telemetry.failed(translateError(error, config))
      if (isStorageFailure(error)) {
        request.log.error({ key, s3: error.s3 }, `fastify-s3-chunk: ${error.s3.operation} failed (${error.s3.code ?? error.s3.name}); upload aborted`)
      } else {
        request.log.info({ key, err: error }, 'fastify-s3-chunk: upload aborted')
      }
      throw translateError(error, config)
    }
  }

  /**
   * The app's hook for a stored file; when it throws, the object is deleted so
   * storage and the app's records agree — unless deleting would lose more: with
   * `overwrite` on an unversioned bucket the object replaced is already gone,
   * and deleting the new one would leave nothing (then it stays, and the log says so).
   */
  async function record (request: FastifyRequest, file: S3File, upload: Upload): Promise<void> {
    try {
      await upload.config.onUploadComplete?.(file, request)
    } catch (error) {
      if (upload.config.overwrite && file.versionId === undefined) {
        request.log.error({ key: file.key, err: error }, 'fastify-s3-chunk: onUploadComplete threw; the object stays stored (overwrite is on: deleting it would lose the object it replaced)')
      } else {
        request.log.error({ key: file.key, err: error }, 'fastify-s3-chunk: onUploadComplete threw; deleting the stored object')
        await discard(upload.engine.uploadClient, upload.engine.config.retry, file, request.log)
      }
      throw new UploadHookError()
    }
  }

  /**
   * Opens one call's upload: `parts` is the body's parts under its idle watch and the cap on
   * bytes outside them; `end()` stops both, once the call is done with the body.
   */
  function begin (request: FastifyRequest, options: UploadOptions | undefined): { upload: Upload, parts: AsyncIterable<Multipart>, end: () => void } {
    const { scope, config } = rulesFor(request, options)
    // Closing: a new upload is refused before any byte of it is read (503, Retry-After).
    scope.engine.assertOpen()
    const parts = openParts(request, config)
    scope.engine.holdRequest(request.raw)
    const watch = new IdleWatch(config.bodyTimeout)
    const upload: Upload = { engine: scope.engine, config, watch, outside: new OutsideParts(request.raw, config.maxFieldSize, (error) => { watch.fail(error) }), signal: options?.signal }
    // Once the close grace is over, a request still reading its body — between files, in its
    // fields, or reading past s3File()'s file — is failed like the uploads (503), whatever its
    // client's pace: only the uploads in flight would be told otherwise.
    // (Not for a request already closed — its client left before this call: nothing would end the subscription.)
    if (request.raw.closed !== true && !request.raw.destroyed) {
      const unsubscribe = scope.engine.shutdown.subscribe((reason) => { upload.watch.fail(reason instanceof Error ? reason : new ClosingError()) })
      request.raw.once('close', unsubscribe)
    }
    const end = (): void => {
      upload.watch.stop()
      upload.outside.stop()
    }
    return { upload, parts: upload.outside.around(upload.watch.iterate(parts)), end }
  }

  /**
   * Each file is stored, recorded (onUploadComplete) and yielded as it
   * arrives; a file yielded stays stored whatever happens later in the body.
   * When a later part fails, the error's message lists the keys that stay.
   */
  async function * s3Files (this: FastifyRequest, options?: UploadOptions): AsyncGenerator<S3File, void, undefined> {
    const request = this
    const { upload, parts, end } = begin(request, options)
    const state = stateOf(request)
    const stored: S3File[] = []
    try {
      for await (const part of parts) {
        if (part.type === 'field') {
          addField(state, part, upload.config)
          continue
        }
        const file = await storeFile(request, part, upload)
        await record(request, file, upload)
        stored.push(file)
        yield file
      }
    } catch (error) {
      throw withStoredKeys(translateError(error, upload.config), stored)
    } finally {
      end()
    }
  }

  /**
   * The first file, committed and recorded only once the whole body was read:
   * its parts go to S3 as they arrive, but the commit (the single PutObject,
   * or CompleteMultipartUpload) waits for the end of the body. When anything
   * after the file fails (a bad field, a limit, the client leaving), the
   * upload is aborted — nothing was committed, nothing replaced — and the
   * hook never runs.
   */
  async function s3File (this: FastifyRequest, options?: UploadOptions): Promise<S3File> {
    const request = this
    const { upload, parts, end } = begin(request, options)
    const state = stateOf(request)
    const gate = commitGate()
    let pending: Promise<S3File> | undefined
    try {
      for await (const part of parts) {
        if (part.type === 'field') {
          addField(state, part, upload.config)
        } else if (pending === undefined) {
          // The file's parts go out as it arrives; its commit waits for the gate.
          const consumed = deferred()
          pending = storeFile(request, part, upload, gate.promise, consumed.resolve)
          pending.catch(() => {})
          // On to the rest of the body once the file is read through (or at once when its upload failed).
          await Promise.race([consumed.promise, pending])
        } else {
          // Only the first file is stored; later ones are read through so the fields after them arrive.
          request.log.debug({ field: part.fieldname }, 'fastify-s3-chunk: s3File() ignores files after the first')
          await drain(part.file, upload.watch, upload.config)
        }
      }
    } catch (error) {
      gate.reject(error)
      // The upload ends without committing (or failed already: its own error is then the cause).
      const own = await pending?.then(() => undefined, (failure: unknown) => failure)
      throw translateError(own ?? error, upload.config)
    } finally {
      end()
    }
    if (pending === undefined) throw new NoFileError()
    gate.resolve()
    let first: S3File
    try {
      first = await pending
    } catch (error) {
      throw translateError(error, upload.config)
    }
    await record(request, first, upload)
    return first
  }

  function s3Fields (this: FastifyRequest): S3Fields {
    return { ...stateOf(this).fields }
  }

  return { s3File, s3Files, s3Fields }
}

/** A promise with its resolve and reject. */
function deferred (): { promise: Promise<void>, resolve: () => void, reject: (error: unknown) => void } {
  let resolve: () => void = () => {}
  let reject: (error: unknown) => void = () => {}
  const promise = new Promise<void>((ok, fail) => { resolve = ok; reject = fail })
  return { promise, resolve, reject }
}

/** The gate a file's commit waits for (see UploadDeps.commitGate). */
function commitGate (): ReturnType<typeof deferred> {
  const gate = deferred()
  // Observed by the upload; unobserved when the body had no file.
  gate.promise.catch(() => {})
  return gate
}

/** One call of s3File()/s3Files(): the rules it runs by and what it draws on. */
interface Upload {
  engine: Engine
  config: S3ChunkConfig
  watch: IdleWatch
  /** Bounds the body's bytes outside its parts (the epilogue above all). */
  outside: OutsideParts
  signal: AbortSignal | undefined
}

/** Deletes a stored object (that exact version, when the bucket keeps versions); a failure is logged, never thrown over the cause. */
async function discard (client: S3Client, retry: RetryPolicy, file: S3File, log: FastifyBaseLogger): Promise<void> {
  try {
    await withRetries('DeleteObject', retry, async () => await client.send(new DeleteObjectCommand({
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

/** maxFieldsSize, or by default maxFieldSize (at least 1 MiB): one field as large as allowed always fits. */
function fieldsSizeLimit (config: S3ChunkConfig): number {
  return config.maxFieldsSize ?? Math.max(config.maxFieldSize, 1024 * 1024)
}

/** busboy's own default for a field name (`limits.fieldNameSize`), which @fastify/busboy does not enforce. */
const MAX_FIELD_NAME_BYTES = 100

function addField (state: RequestState, part: { fieldname: string, value: unknown, valueTruncated?: boolean, fieldnameTruncated?: boolean }, config: S3ChunkConfig): void {
  // busboy cuts an over-long value (or name) and carries on; a cut value is not what the client sent.
  if (part.valueTruncated === true) throw new TooManyPartsError(`a field is larger than ${config.maxFieldSize} bytes`)
  // @fastify/busboy never cuts a name (nor says so): one as long as a part's header (80 KiB) came
  // through, outside every bound (found by an attack run). Names are bounded here.
  if (part.fieldnameTruncated === true || Buffer.byteLength(part.fieldname) > MAX_FIELD_NAME_BYTES) throw new TooManyPartsError(`a field name is longer than ${MAX_FIELD_NAME_BYTES} bytes`)
  if (++state.fieldCount > config.maxFields) throw new TooManyPartsError(`more than ${config.maxFields} fields`)
  const text = typeof part.value === 'string' ? part.value : jsonFieldText(part.value)
  // @fastify/multipart keeps each field's part (this object) in its request body until the
  // request ends: a parsed JSON value held there is ~20 times its text (8 open requests of one
  // 1 MiB field held 177 MiB), so the part keeps the text the fields' bound counts instead.
  part.value = text
  // Fields are kept in memory until the request ends, outside maxBufferedBytes: their total is
  // bounded too (names are: 100 bytes each, maxFields of them).
  const limit = fieldsSizeLimit(config)
  state.fieldBytes += Buffer.byteLength(text)
  if (state.fieldBytes > limit) throw new TooManyPartsError(`the fields total more than ${limit} bytes`)
  const fields = state.fields
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
function checkedSource (
  part: MultipartFile,
  declared: string | undefined,
  config: S3ChunkConfig,
  watch: IdleWatch,
  settle: (contentType: string) => Promise<void>,
  progress: ProgressReporter | null,
  onConsumed?: () => void
): AsyncIterable<Uint8Array> & { destroy: (error?: Error) => void } {
  const file = part.file
  return {
    async * [Symbol.asyncIterator] () {
      let head: Buffer[] | null = []
      let headBytes = 0
      const decide = async (): Promise<Buffer> => {
        const bytes = Buffer.concat(head ?? [])
        await settle(decideType(declared, await sniffType(bytes), config.allowedTypes, true))
        head = null
        return bytes
      }
      const stopWatching = failPastLimit(file, config)
      try {
        for await (const chunk of watch.iterate(file as AsyncIterable<Buffer>)) {
          progress?.received(chunk.byteLength)
          if (head === null) {
            yield chunk
            continue
          }
          head.push(chunk)
          headBytes += chunk.byteLength
          if (headBytes >= SNIFF_BYTES) yield await decide()
        }
      } finally {
        stopWatching()
      }
      if (head !== null) {
        const bytes = await decide()
        if (bytes.byteLength > 0) yield bytes
      }
      if (file.truncated) throw new FileTooLargeError(config.maxFileSize)
      onConsumed?.()
    },
    destroy: (error?: Error) => { file.destroy(error) }
  }
}

/** Reads a file s3File() does not store through to its end; past maxFileSize it is 413 at once, as a stored one is. */
async function drain (file: MultipartFile['file'], watch: IdleWatch, config: S3ChunkConfig): Promise<void> {
  const stopWatching = failPastLimit(file, config)
  try {
    // eslint-disable-next-line @typescript-eslint/no-unused-vars
    for await (const _ of watch.iterate(file as AsyncIterable<unknown>)) { /* discard */ }
  } finally {
    stopWatching()
  }
}

/**
 * Fails the file with a 413 as it passes maxFileSize; returns what stops watching. busboy cuts
 * the file there and then drops the rest of it silently: without this the limit showed only at
 * the file's end — a 400 MiB file read whole before its 413, one that never ends read and
 * discarded until bodyTimeout (found by an attack run).
 */
function failPastLimit (file: MultipartFile['file'], config: S3ChunkConfig): () => void {
  const overLimit = (): void => { file.destroy(new FileTooLargeError(config.maxFileSize)) }
  file.once('limit', overLimit)
  // Cut already, before anyone listened (a small limit, passed in the chunk that began the part: found in review).
  if (file.truncated) overLimit()
  return () => { file.off('limit', overLimit) }
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
  // streamsearch's words for a boundary over 256 bytes (RFC 2046 allows 70 characters): the client's
  // mistake, not a 500 with a library's message (found by an attack run).
  if (typeof message === 'string' && /needle cannot have a length/i.test(message)) return new BadMultipartError('the multipart boundary is too long (RFC 2046: 70 characters at most)')
  return error
}
