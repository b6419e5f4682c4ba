import { createHash, randomBytes, type Hash } from 'node:crypto'
import type { Readable } from 'node:stream'
import { crc32 } from '../crc32.js'
import { DeleteObjectCommand, HeadObjectCommand, PutObjectCommand, type CompletedPart, type HeadObjectCommandOutput } from '@aws-sdk/client-s3'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { SNIFF_BYTES, checkDeclaredType, decideType, parseMediaType, sniffType } from '../content-types.js'
import type { Engine } from '../engine.js'
import {
  BadRequestError,
  BodyTimeoutError,
  FileTooLargeError,
  InvalidOptionError,
  PartLimitError,
  StorageError,
  TusChecksumMismatchError,
  TusContentTypeError,
  TusExpiredError,
  TusLockedError,
  TusNotFoundError,
  TusOffsetMismatchError,
  TusTooLargeError,
  TusVersionError,
  UnauthorizedError,
  UploadHookError
} from '../errors.js'
import { MAX_ORIGINAL_NAME_BYTES, customKey, makeKey, sanitiseFilename } from '../keys.js'
import { customerKeyOf, objectParamsFor } from '../object-params.js'
import { MIN_PART_SIZE, type DirectUser, type FileContext, type ObjectParams, type S3ChunkConfig, type TusConfig } from '../options.js'
import { etagParts, objectUrl } from '../s3-client.js'
import type { UploadTelemetry } from '../telemetry.js'
import type { S3File } from '../types.js'
import { isWellFormed, userPrefix } from '../direct/keys.js'
import { IdleWatch } from '../upload/idle-watch.js'
import { abortMultipartUpload, completeMultipartUpload, isOutcomeUnknown, isUploadLeftOpen, conditionalWrite, createMultipartUpload, outcomeOf, uploadState, type MultipartScope, type UploadTarget } from '../upload/multipart-calls.js'
import { cutParts, type Part } from '../upload/part-cutter.js'
import { maxPartSize } from '../upload/part-schedule.js'
import { isStorageFailure, storageFailure } from '../upload/s3-failure.js'
import type { PartMemory } from '../upload/part-buffer-pool.js'
import { failureInfo, withRetries } from '../upload/send-part.js'
import { StateConflict, StateStore, heldAt, type Loaded, type StoredPart, type TusState } from './state.js'
import { UploadTokens } from './token.js'

// The object's own record of the upload it came from: a finished upload is told from an object that merely took its key.
export const UPLOAD_ID_META = 'tus-upload-id'

export const TUS_VERSION = '1.0.0'
export const TUS_EXTENSIONS = 'creation,creation-with-upload,creation-defer-length,termination,expiration,checksum'
export const TUS_CHECKSUMS = 'sha1,md5,crc32,sha256'
const OFFSET_STREAM = 'application/offset+octet-stream'
/** Tries of a DELETE's conditional write against a PATCH's hold renewals before it answers 409. */
const TERMINATE_ATTEMPTS = 3
// Every tus header a browser's script must read (CORS hides the rest).
const EXPOSED = 'Location, Upload-Offset, Upload-Length, Upload-Defer-Length, Upload-Metadata, Upload-Expires, Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm'

interface TusOptions {
  config: S3ChunkConfig
  tus: TusConfig
  engine: Engine
  onStored: (file: S3File, request: FastifyRequest) => Promise<void>
}

/**
 * Whether the request carries body bytes. HTTP/1.1 says so in its headers (Content-Length or
 * Transfer-Encoding); HTTP/2 needs neither for a body, so there the stream tells whether it ended
 * with the headers (a body without Content-Length was taken for none: found in review).
 */
function hasBody (request: FastifyRequest): boolean {
  const length = request.headers['content-length']
  if (length !== undefined) return Number(length) !== 0
  if (request.headers['transfer-encoding'] !== undefined) return true
  const stream = (request.raw as { stream?: { endAfterHeaders?: boolean } }).stream
  return stream !== undefined && stream.endAfterHeaders !== true
}

/**
 * hasBody(), and for an HTTP/2 request that may have one (no Content-Length, the stream open after
 * its headers) the first bytes or the end, waited for (up to `waitMs`) and put back: clients send
 * an empty PATCH as headers and an empty DATA frame (found in review). Nothing for `waitMs` is the
 * body stalling: 408 (going on to the write would wait as long again, found in review).
 */
async function bodyFollows (request: FastifyRequest, waitMs: number): Promise<boolean> {
  const declared = hasBody(request)
  if (!declared || request.headers['content-length'] !== undefined || request.headers['transfer-encoding'] !== undefined) return declared
  const raw = request.raw as unknown as Readable
  const settled = await new Promise<boolean>((resolve) => {
    const done = (ready: boolean): void => { clearTimeout(timer); raw.off('readable', onReadable); raw.off('end', onReadable); raw.off('error', onError); resolve(ready) }
    const onReadable = (): void => { done(true) }
    const onError = (): void => { done(false) }
    const timer = setTimeout(() => { done(false) }, waitMs)
    if (raw.readableLength > 0 || raw.readableEnded) { done(true); return }
    // A stream already at its end says 'end' when a 'readable' listener comes, not 'readable'.
    raw.on('readable', onReadable)
    raw.once('end', onReadable)
    raw.once('error', onError)
  })
  if (!settled) throw new BodyTimeoutError(waitMs)
  // 'readable' with nothing to read is the end: no body.
  const chunk = raw.read() as Buffer | null
  if (chunk === null) return false
  raw.unshift(chunk)
  return true
}

/** How long a PATCH has waited for its client's bytes before another PATCH of its upload stops it. */
const STALLED_MS = 2_000

/**
 * The tus 1.0.0 endpoint (core, creation, creation-with-upload,
 * creation-defer-length, termination, expiration, checksum). Each upload is
 * one S3 multipart upload to its final key; its state lives in S3 (see
 * state.ts) and its URL is sealed (token.ts), so any instance serves any
 * request. PATCH bodies are cut into parts by the same cutter, budget and
 * part senders as streamed uploads; bytes after the last whole part wait in
 * a small tail object in S3 for the next PATCH.
 */
export async function tusRoutes (fastify: FastifyInstance, options: TusOptions): Promise<void> {
  const { config, tus, engine, onStored } = options
  /** The PATCHes running on this instance, by upload id: each stops, as if its client had left, when it is stalled. */
  const running = new Map<string, () => void>()
  const store = new StateStore(engine.uploadClient, config.bucket, config.keyPrefix, { retry: engine.config.retry, checksums: engine.config.checksum !== 'none' })
  const tokens = new UploadTokens(config, tus.secret)
  // A tus.maxSize above the rules' maxFileSize was capped without a word (found in a new user's
  // review): Tus-Max-Size said less than configured. Said at boot instead.
  if (tus.maxSize !== undefined && tus.maxSize > config.maxFileSize) {
    throw new InvalidOptionError(`"tus.maxSize": ${tus.maxSize} is above the maxFileSize its rules allow (${config.maxFileSize}${tus.rules !== undefined ? `, rule set "${tus.rules}"` : ''}); raise that maxFileSize or lower tus.maxSize`)
  }
  const maxSize = tus.maxSize ?? config.maxFileSize
  const leaseMs = tus.leaseTimeout * 1000
  /**
   * A finishing PATCH's mark whose hold lapsed a whole lease ago: its instance is taken as gone.
   * Only lapsed is not enough — a live instance whose renewal is merely slow (a PUT held up, a
   * busy event loop) would have its upload settled under it, and its hook run twice at once.
   */
  const abandoned = (state: TusState): boolean => state.completing === true && (state.lease === undefined || state.lease.until + leaseMs <= Date.now())
  /** A finishing PATCH still within its margin: PATCH and DELETE wait it out (409). */
  const finishingNow = (state: TusState): boolean => state.completing === true && !abandoned(state)
  /** The state held by `holder` for one more lease, marked as finishing (a finishing PATCH's, or a settle's). */
  const finishingHold = (state: TusState, holder: string): TusState => ({ ...state, lease: { holder, until: Date.now() + leaseMs }, completing: true })
  /** How often a hold is renewed: three times a lease, so one late renewal does not lose it. */
  const renewEveryMs = Math.max(250, Math.floor(leaseMs / 3))
  const largestPart = maxPartSize(config)

  // The body of a PATCH (and of a creation with upload) is streamed, never parsed: every
  // type reaches the handler, which refuses (415) all but application/offset+octet-stream.
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('*', (_request, _payload, done) => { done(null) })

  // A body we did not read to its end — a refusal mid-PATCH, or any answer to a request whose
  // body nobody reads (an OPTIONS or DELETE with a chunked body that never ends: the parser above
  // reads nothing, so Fastify's bodyLimit does not apply, and Node read it for ever to keep the
  // connection; an attack run) — closes the connection after the answer, with a lingering close.
  fastify.addHook('onSend', async (request, reply) => {
    if (!request.raw.complete) engine.lingering.closeAfterAnswer(request.raw, reply)
  })

  fastify.addHook('onRequest', async (request, reply) => {
    reply.header('Tus-Resumable', TUS_VERSION)
    reply.header('Access-Control-Expose-Headers', EXPOSED)
    if (request.method === 'OPTIONS') return
    const version = request.headers['tus-resumable']
    if (version !== TUS_VERSION) {
      reply.header('Tus-Version', TUS_VERSION)
      throw new TusVersionError()
    }
  })

  // Errors as the specification's plain-text answers.
  fastify.setErrorHandler(async (error: Error & { statusCode?: number }, request, reply) => {
    let status = error.statusCode ?? 500
    let message = error.message
    if (isStorageFailure(error)) {
      request.log.error({ s3: error.s3 }, `fastify-s3-chunk: tus ${error.s3.operation} failed`)
      const failure = new StorageError()
      status = failure.statusCode
      message = failure.message
    } else if (status >= 500) {
      request.log.error({ err: error }, 'fastify-s3-chunk: tus request failed')
      if (status === 500) message = 'Internal Server Error'
    }
    reply.header('Tus-Resumable', TUS_VERSION)
    await reply.code(status).type('text/plain; charset=utf-8').send(message)
  })

  async function userOf (request: FastifyRequest): Promise<DirectUser | undefined> {
    if (tus.authorize === undefined) return undefined
    const user: DirectUser | null | undefined | false = await tus.authorize(request)
    if (user === null || user === undefined || user === false || !(user as unknown)) throw new UnauthorizedError()
    if (typeof user.userId !== 'string' || user.userId === '') throw new Error('tus.authorize() must return { userId: string } or null')
    return user
  }

  /** The upload at this URL, when the caller may see it: 404 otherwise (forged, someone else's, gone, finished), 410 once expired. */
  async function open (request: FastifyRequest): Promise<Loaded> {
    const found = await lookup(request, { acceptFinished: false })
    if ('finishedSize' in found) throw new TusNotFoundError()
    return found
  }

  /**
   * As open(), and with `acceptFinished`, an upload that is over: its state is gone
   * and its object is at the key its URL seals, carrying its id. A client whose
   * last PATCH went unanswered asks with HEAD; told 404 it would start the file
   * over as a new upload, so it is told the upload's whole length instead.
   */
  async function lookup (request: FastifyRequest, options: { acceptFinished: boolean, forWriting?: boolean }): Promise<Loaded | { finishedSize: number }> {
    const user = await userOf(request)
    const token = tokens.open((request.params as { '*': string })['*'], user?.userId)
    if (token === null) throw new TusNotFoundError()
    let loaded: Loaded | null
    try {
      loaded = await store.load(token.id, { forWriting: options.forWriting })
    } catch (error) {
      // A state whose body and ETag never agreed is being written (a hold taken or given up): 409, as when held.
      throw error instanceof StateConflict ? new TusLockedError() : error
    }
    if (loaded === null) {
      const size = options.acceptFinished && token.key !== undefined ? await finishedSize(token.id, token.key) : null
      if (size === null) throw new TusNotFoundError()
      return { finishedSize: size }
    }
    if (loaded.state.owner !== user?.userId || loaded.state.refused === true || loaded.state.terminated === true) throw new TusNotFoundError()
    // A request holding the upload keeps it alive (its renewals push Upload-Expires on too).
    if (loaded.state.expires <= Date.now() && !heldAt(loaded.state)) throw new TusExpiredError()
    if (abandoned(loaded.state)) {
      const settled = await settleAbandoned(request, loaded)
      if (settled !== null) {
        if (!options.acceptFinished) throw new TusNotFoundError()
        return settled
      }
    }
    return loaded
  }

  /**
   * A finishing PATCH whose hold lapsed: its instance died (or lost S3) after it marked the
   * upload "completing". When the object is stored (carrying the upload's id), its Complete
   * ran, and whether onUploadComplete did is not known: the request that finds it takes the
   * hold, runs onUploadComplete (so the hook runs at least once), and removes the state —
   * the upload answers as finished, or 404 when the app refused the file. Null when the
   * object is not there (the Complete never ran: the upload goes on from the state) or
   * another request took the hold first.
   */
  async function settleAbandoned (request: FastifyRequest, loaded: Loaded): Promise<{ finishedSize: number } | null> {
    const head = await finishedObject(loaded.state.id, loaded.state.key)
    if (head === null) {
      // No object: the Complete never ran, and the upload goes on from the state — unless its
      // multipart upload is gone too (aborted under the Complete, by the lifecycle rule, …): it
      // can never finish then, and is removed (404: the client starts over) rather than
      // answering 200 to HEAD and 502 to every PATCH until it expires (found in review).
      const { uploadId } = loaded.state
      if (uploadId !== undefined && await uploadState(scopeOf(loaded.state, undefined), uploadId) === 'gone') {
        await store.remove(loaded.state).catch((error: unknown) => { request.log.warn({ err: error, key: loaded.state.key }, 'fastify-s3-chunk: could not remove a dead tus upload\'s state; the sweep will') })
        throw new TusNotFoundError()
      }
      return null
    }
    // Read again as a writer does (HEAD's read takes a state whose body and ETag may not yet agree).
    const fresh = await store.load(loaded.state.id).catch(() => null)
    if (fresh === null || !abandoned(fresh.state)) return null
    const { state } = fresh
    const holder = randomBytes(8).toString('hex')
    const held = await store.write(finishingHold(state, holder), fresh.etag)
    if (!held.landed) return null
    let etag = held.etag
    // The hold is renewed while the app's hook runs, as a finishing PATCH's is.
    let renewing: Promise<void> = Promise.resolve()
    const renew = setInterval(() => {
      renewing = renewing.then(async () => { etag = await store.save(finishingHold(state, holder), etag) }).catch(() => {})
    }, renewEveryMs)
    renew.unref()
    const size = head.ContentLength ?? 0
    const parts = etagParts(head.ETag)
    // This request finishes the upload for the app (the finishing request's span, if any, died
    // with its instance): its span says stored, or why not — at least once, as the hook runs.
    const telemetry = engine.telemetry.startUpload('tus', { bucket: config.bucket, key: state.key })
    let verdict: Verdict
    try {
      request.log.warn({ key: state.key }, 'fastify-s3-chunk: a tus upload whose finishing request stopped after its Complete: running onUploadComplete for it')
      // The object is never deleted here, whatever the hook says: the first run may have accepted it.
      verdict = await telemetry.run(async () => await finish(request, state, outcomeOf(head, { size, parts }, engine.config.checksum), { mayDelete: false }))
    } catch (error) {
      telemetry.failed(error)
      throw error
    } finally {
      clearInterval(renew)
      await renewing
    }
    if (verdict === 'accepted') telemetry.stored({ size, parts })
    else telemetry.failed(new UploadHookError())
    if (verdict === 'kept') await markRefused(state, etag, request)
    else await store.remove(state).catch((error: unknown) => { request.log.warn({ err: error, key: state.key }, 'fastify-s3-chunk: could not remove a finished tus upload\'s state; the sweep will') })
    if (verdict !== 'accepted') throw new TusNotFoundError()
    return { finishedSize: size }
  }

  /**
   * The size of the object a finished upload stored, or null: no object there,
   * one another upload put at that key, or one S3 will not describe: any 4xx but throttling and timeouts (429, 408) —
   * an SSE-C object without its key is 400, and a missing key is 403 to
   * credentials without s3:ListBucket (the IAM policy the README gives). S3
   * unreachable (5xx, no answer) is a 502, never a 404, which would make the
   * client start over.
   */
  async function finishedSize (id: string, key: string): Promise<number | null> {
    const head = await finishedObject(id, key)
    return head === null ? null : head.ContentLength ?? 0
  }

  /** finishedSize's HeadObject answer (with the object's checksum when one is configured), or null. */
  async function finishedObject (id: string, key: string): Promise<HeadObjectCommandOutput | null> {
    try {
      const { value } = await withRetries('HeadObject', engine.config.retry, async () => await engine.uploadClient.send(new HeadObjectCommand({
        Bucket: config.bucket,
        Key: key,
        ...(engine.config.checksum !== 'none' ? { ChecksumMode: 'ENABLED' } : {})
      })))
      return value.Metadata?.[UPLOAD_ID_META] === id ? value : null
    } catch (error) {
      const info = failureInfo('HeadObject', error)
      // A 4xx says no such object — but not throttling (429) or a timeout (408), S3's failures,
      // answered as one: a 404 made tus-js-client start the whole file over (an attack run).
      if (info.status !== undefined && info.status >= 400 && info.status < 500 && info.status !== 429 && info.status !== 408 && !info.retryable) return null
      throw storageFailure(info)
    }
  }

  function capabilities (reply: FastifyReply): void {
    reply.header('Tus-Version', TUS_VERSION)
    reply.header('Tus-Extension', TUS_EXTENSIONS)
    reply.header('Tus-Max-Size', String(maxSize))
    reply.header('Tus-Checksum-Algorithm', TUS_CHECKSUMS)
  }

  fastify.options('/', async (_request, reply) => { capabilities(reply); await reply.code(204).send() })
  fastify.options('/*', async (_request, reply) => { capabilities(reply); await reply.code(204).send() })

  fastify.post('/', async (request, reply) => { await create(request, reply) })
  // `/*` rather than `/:token`: a URL that seals a long key outgrows Fastify's 100-character parameters.
  fastify.head('/*', async (request, reply) => { await head(request, reply) })
  fastify.patch('/*', async (request, reply) => { await patch(request, reply) })
  fastify.delete('/*', async (request, reply) => { await terminate(request, reply) })
  // X-HTTP-Method-Override: clients behind proxies that allow only GET and POST.
  fastify.post('/*', async (request, reply) => {
    const method = String(request.headers['x-http-method-override'] ?? '').toUpperCase()
    if (method === 'PATCH') await patch(request, reply)
    else if (method === 'DELETE') await terminate(request, reply)
    else if (method === 'HEAD') await head(request, reply)
    else throw new BadRequestError('POST to an upload needs X-HTTP-Method-Override: PATCH, DELETE or HEAD')
  })

  async function head (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    // HEAD writes nothing: a state read while a write lands (the store's body and ETag not yet
    // of one version) still gives a recent offset — and to tus-js-client any answer but 2xx or
    // 423 to HEAD means "start the file over as a new upload".
    const found = await lookup(request, { acceptFinished: true, forWriting: false })
    reply.header('Cache-Control', 'no-store')
    if ('finishedSize' in found) {
      reply.header('Upload-Offset', String(found.finishedSize))
      reply.header('Upload-Length', String(found.finishedSize))
      await reply.code(200).send()
      return
    }
    const { state } = found
    reply.header('Upload-Offset', String(state.offset))
    if (state.length === undefined) reply.header('Upload-Defer-Length', '1')
    else reply.header('Upload-Length', String(state.length))
    if (state.metadataHeader !== undefined) reply.header('Upload-Metadata', state.metadataHeader)
    reply.header('Upload-Expires', new Date(state.expires).toUTCString())
    await reply.code(200).send()
  }

  /**
   * DELETE: the upload is taken by a conditional write (terminated), so a PATCH holding it
   * fails at its next state write (and aborts a multipart upload it made that no state
   * names) — then its multipart upload is aborted and its objects removed. Refused (409)
   * while a PATCH is finishing the upload: that file is being stored.
   */
  async function terminate (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    let taken: TusState | null = null
    // A PATCH's hold renewals change the ETag every few seconds: a write that lost to one is tried again on the new state.
    for (let attempt = 1; taken === null; attempt++) {
      const { state, etag } = await open(request)
      // (A finishing PATCH abandoned after it stored the object was settled by open(): 404.)
      if (finishingNow(state)) throw new TusLockedError()
      try {
        await store.save({ ...state, terminated: true }, etag)
        taken = state
      } catch (error) {
        if (!(error instanceof StateConflict)) throw error
        if (attempt >= TERMINATE_ATTEMPTS) throw new TusLockedError()
      }
    }
    // Ended by its client, nothing stored: an abort (reason "terminated"), not an error. Once
    // taken it is terminated even if S3 refuses the cleanup below (the sweep finishes it).
    const upload = taken
    const telemetry = engine.telemetry.startUpload('tus', { bucket: config.bucket, key: upload.key })
    try {
      await telemetry.run(async () => {
        if (upload.uploadId !== undefined) {
          telemetry.setUploadId(upload.uploadId)
          await abortMultipartUpload(scopeOf(upload, undefined), upload.uploadId)
        }
        await store.remove(upload)
      })
    } finally {
      telemetry.aborted('terminated')
    }
    await reply.code(204).send()
  }

  async function create (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    // A closing instance takes no new uploads (503 + Retry-After); uploads under way go on.
    engine.assertOpen()
    const user = await userOf(request)
    const lengthHeader = request.headers['upload-length']
    const deferHeader = request.headers['upload-defer-length']
    if ((lengthHeader === undefined) === (deferHeader === undefined)) throw new BadRequestError('send exactly one of Upload-Length and Upload-Defer-Length')
    if (deferHeader !== undefined && deferHeader !== '1') throw new BadRequestError('Upload-Defer-Length must be 1')
    const length = lengthHeader === undefined ? undefined : byteCount(lengthHeader, 'Upload-Length')
    if (length !== undefined && length > maxSize) throw new TusTooLargeError(maxSize)
    const metadataHeader = request.headers['upload-metadata'] as string | undefined
    const metadata = parseMetadata(metadataHeader)
    const originalName = metadata.filename ?? metadata.name ?? 'upload'
    if (Buffer.byteLength(originalName) > MAX_ORIGINAL_NAME_BYTES) throw new BadRequestError(`filename is longer than ${MAX_ORIGINAL_NAME_BYTES} bytes`)
    // 415 before any byte, for a specific declared type not allowed (a generic one waits for the bytes).
    const declaredType = checkDeclaredType(metadata.filetype ?? metadata.type, config.allowedTypes)
    const withBody = request.headers['content-type'] !== undefined && hasBody(request)
    if (withBody && parseMediaType(request.headers['content-type']) !== OFFSET_STREAM) throw new TusContentTypeError()
    const checksum = withBody ? parseChecksum(request.headers['upload-checksum']) : null

    const filename = sanitiseFilename(originalName)
    const overrides = (await config.onFile?.({ fieldName: 'file', originalName, filename, declaredType, fields: { ...metadata }, request })) ?? undefined
    const keyRules = user === undefined ? config : { ...config, keyPrefix: userPrefix(config, user) }
    const key = overrides?.key !== undefined
      ? customKey(keyRules, overrides.key)
      : await makeKey(keyRules, { filename, originalName, fieldName: 'file', mimetype: declaredType ?? 'application/octet-stream', request })

    const { id, token } = tokens.issue(user?.userId, key)
    const state: TusState = {
      v: 1,
      id,
      key,
      ...(user !== undefined ? { owner: user.userId } : {}),
      ...(length !== undefined ? { length } : {}),
      offset: 0,
      ...(metadataHeader !== undefined ? { metadataHeader } : {}),
      metadata,
      originalName,
      ...(declaredType !== undefined ? { declaredType } : {}),
      expires: Date.now() + tus.expiresIn * 1000,
      partSize: partSizeFor(length),
      ...(overrides?.objectParams !== undefined ? { objectParams: storable(overrides.objectParams) } : {}),
      parts: [],
      tail: 0,
      gen: 0
    }
    const location = `${request.protocol}://${request.host}${fastify.prefix}/${token}`
    reply.header('Location', location)
    reply.header('Upload-Expires', new Date(state.expires).toUTCString())

    if (length === 0) {
      // A creation that finishes its upload: one upload span, as a finishing PATCH.
      const telemetry = engine.telemetry.startUpload('tus', { bucket: config.bucket, key })
      try {
        await telemetry.run(async () => {
          // A body's bytes would be more than Upload-Length (413, as for any length), never dropped.
          if (withBody) await refuseAnyBytes(request)
          // Nothing to wait for: the (empty) object is stored now, and no state is kept.
          const verdict = await storeEmpty(state, request, telemetry)
          if (verdict === 'kept') await markRefused(state, null, request)
          if (verdict !== 'accepted') throw new UploadHookError()
        })
        telemetry.stored({ size: 0, parts: 0 })
      } catch (error) {
        telemetry.failed(error)
        throw error
      }
      reply.header('Upload-Offset', '0')
      await reply.code(201).send()
      return
    }
    if (!withBody) {
      await store.save(state, null)
      await reply.code(201).send()
      return
    }
    // creation-with-upload: created already held, then the body is written like a PATCH's
    // (one that fails leaves the upload as created).
    const holder = randomBytes(8).toString('hex')
    const held: TusState = { ...state, lease: { holder, until: Date.now() + leaseMs } }
    const etag = await store.save(held, null)
    const offset = await write(request, { state: held, etag }, holder, checksum, state)
    reply.header('Upload-Offset', String(offset))
    await reply.code(201).send()
  }

  async function patch (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (parseMediaType(request.headers['content-type']) !== OFFSET_STREAM) throw new TusContentTypeError()
    const offset = byteCount(request.headers['upload-offset'], 'Upload-Offset')
    const checksum = parseChecksum(request.headers['upload-checksum'])
    const loaded = await lookup(request, { acceptFinished: true })
    if ('finishedSize' in loaded) {
      // The finishing PATCH sent again after its answer was lost: nothing more to write.
      const size = loaded.finishedSize
      if (offset !== size) throw new TusOffsetMismatchError(size)
      if (await bodyFollows(request, config.bodyTimeout)) throw new BadRequestError('the upload is complete: no more bytes are taken')
      if (request.headers['upload-length'] !== undefined && request.headers['upload-length'] !== String(size)) throw new BadRequestError('Upload-Length cannot change once set')
      reply.header('Upload-Offset', String(size))
      await reply.code(204).send()
      return
    }
    const { state } = loaded
    if (offset !== state.offset) throw new TusOffsetMismatchError(state.offset)
    let length = state.length
    const lengthHeader = request.headers['upload-length']
    if (lengthHeader !== undefined) {
      length = byteCount(lengthHeader, 'Upload-Length')
      if (state.length !== undefined && state.length !== length) throw new BadRequestError('Upload-Length cannot change once set')
      if (length < state.offset) throw new BadRequestError('Upload-Length is less than the bytes already received')
      if (length > maxSize) throw new TusTooLargeError(maxSize)
      if (Math.ceil(length / state.partSize) > config.maxParts) throw new PartLimitError(config.maxParts)
    }
    if (heldAt(state)) {
      // Held by a PATCH on this instance that has waited STALLED_MS for its client's bytes: it
      // stops as if its client had left — what it stored is saved, the hold released — and this
      // client's retry goes on from there. A connection that died without a FIN or RST (a phone
      // changing networks) otherwise held the upload until bodyTimeout, 30 s, beyond
      // tus-js-client's retries (an attack run); tusd stops the holder too. One whose bytes still
      // come keeps its hold (two live clients would otherwise stop each other in turn), as does a
      // PATCH on another instance, until it ends or its hold lapses.
      running.get(state.id)?.()
      throw new TusLockedError()
    }
    // A finishing PATCH may only be late with its renewal: its mark is waited out (see abandoned()).
    if (finishingNow(state)) throw new TusLockedError()
    // What a PATCH that fails leaves: the upload as loaded — not a length it declared, nor a type
    // sniffed from bytes that then did not count (the next PATCH's bytes are sniffed again) — and
    // no mark left by a finishing PATCH that did not finish (its Complete and its cleanup failed,
    // or its instance died): that is not this request's.
    const before: TusState = { ...state }
    delete before.lease
    delete before.completing
    // No body, and nothing to finish: answered from the state. (Written, the stored tail — up
    // to a part — would be read from S3 and written back for no byte: a client could make the
    // server move megabytes per empty request.) A declared deferred length is recorded.
    if (length !== state.offset && !(await bodyFollows(request, config.bodyTimeout))) {
      // A checksum there is of no bytes (a client's checksum of an empty body must not make it a write: found in review).
      if (checksum !== null && checksum.hash.digest('base64') !== checksum.expected) throw new TusChecksumMismatchError()
      if (length !== state.length) await saveOrLocked({ ...before, length }, loaded.etag)
      reply.header('Upload-Offset', String(state.offset))
      reply.header('Upload-Expires', new Date(state.expires).toUTCString())
      await reply.code(204).send()
      return
    }
    const holder = randomBytes(8).toString('hex')
    const held: TusState = { ...before, lease: { holder, until: Date.now() + leaseMs } }
    if (length !== undefined) held.length = length
    const etag = await saveOrLocked(held, loaded.etag)
    const now = await write(request, { state: held, etag }, holder, checksum, before)
    reply.header('Upload-Offset', String(now))
    if (now !== length) reply.header('Upload-Expires', new Date(Date.now() + tus.expiresIn * 1000).toUTCString())
    await reply.code(204).send()
  }

  /** A conditional state write for a request: 409 when another request took (or changed) the upload since it was read. */
  async function saveOrLocked (state: TusState, etag: string): Promise<string> {
    try {
      return await store.save(state, etag)
    } catch (error) {
      if (error instanceof StateConflict) throw new TusLockedError()
      throw error
    }
  }

  /**
   * The request's body, read over HTTP/1 without destroying the request when the read stops
   * early (a Readable's own iterator destroys it, and with it the connection, before the answer:
   * a reset instead of the 413); the answer's lingering close discards the rest. Over HTTP/2
   * destroying the request resets only its stream.
   */
  function bodyOf (request: FastifyRequest): AsyncIterable<Buffer> {
    const raw = request.raw as unknown as Readable
    return request.raw.httpVersionMajor === 1 ? raw.iterator({ destroyOnReturn: false }) : raw
  }

  /**
   * A creation with Upload-Length 0 whose request has a body: 413 once a byte of it is known
   * (its Content-Length, or a chunked body's first bytes); an empty chunked body passes.
   */
  async function refuseAnyBytes (request: FastifyRequest): Promise<void> {
    if (Number(request.headers['content-length'] ?? 0) > 0) throw new TusTooLargeError(0)
    const watch = new IdleWatch(config.bodyTimeout)
    try {
      for await (const chunk of watch.iterate(bodyOf(request))) {
        if (chunk.byteLength > 0) throw new TusTooLargeError(0)
      }
    } finally {
      watch.stop()
    }
  }

  /** Part size for an upload: the rules', grown so the whole upload fits in maxParts parts. */
  function partSizeFor (length: number | undefined): number {
    if (length === undefined) return config.partSize
    const needed = Math.ceil(Math.ceil(length / config.maxParts) / MIN_PART_SIZE) * MIN_PART_SIZE
    const size = Math.max(config.partSize, needed)
    if (size > largestPart) throw new PartLimitError(config.maxParts)
    return size
  }

  /** The multipart calls' scope; with `telemetry`, their retried attempts count on the request's span. */
  function scopeOf (state: TusState, objectParams: ObjectParams | undefined, telemetry?: UploadTelemetry): MultipartScope {
    const target: UploadTarget = { bucket: config.bucket, key: state.key, contentType: state.contentType ?? 'application/octet-stream', overwrite: config.overwrite }
    target.objectParams = withUploadId(objectParams, state.id)
    return { client: engine.uploadClient, retry: engine.config.retry, target, checksum: engine.config.checksum, log: fastify.log, onRetry: telemetry?.onRetry }
  }

  function fileContext (state: TusState, request: FastifyRequest, contentType: string): FileContext {
    return { fieldName: 'file', originalName: state.originalName, filename: sanitiseFilename(state.originalName), declaredType: state.declaredType, contentType, fields: { ...state.metadata }, request }
  }

  async function storeEmpty (state: TusState, request: FastifyRequest, telemetry: UploadTelemetry): Promise<Verdict> {
    const contentType = decideType(state.declaredType, undefined, config.allowedTypes)
    const objectParams = await objectParamsFor(config, fileContext(state, request, contentType), state.objectParams)
    try {
      const { value } = await withRetries('PutObject', engine.config.retry, async () => await engine.uploadClient.send(new PutObjectCommand({
        ...withUploadId(objectParams, state.id), Bucket: config.bucket, Key: state.key, ContentType: contentType, Body: new Uint8Array(0), ContentLength: 0, ...conditionalWrite({ overwrite: config.overwrite })
      })), undefined, telemetry.onRetry)
      return await finish(request, { ...state, contentType }, { size: 0, etag: (value.ETag ?? '').replace(/"/g, ''), parts: 0, ...(value.VersionId !== undefined ? { versionId: value.VersionId } : {}) })
    } catch (error) {
      if (error instanceof Error && 'code' in error && typeof error.code === 'string' && error.code.startsWith('FST_')) throw error
      throw storageFailure(failureInfo('PutObject', error))
    }
  }

  /**
   * onUploadComplete for the stored object: 'accepted'; when it threw, 'deleted', or 'kept' where
   * deleting would lose more (or failed, or `mayDelete` is false: a run again after a dead instance's).
   */
  async function finish (request: FastifyRequest, state: TusState, outcome: { size: number, etag: string, parts: number, versionId?: string, checksum?: string }, { mayDelete = true }: { mayDelete?: boolean } = {}): Promise<Verdict> {
    const file: S3File = {
      fieldName: 'file',
      originalName: state.originalName,
      key: state.key,
      bucket: config.bucket,
      size: outcome.size,
      contentType: state.contentType ?? 'application/octet-stream',
      etag: outcome.etag,
      location: objectUrl(engine.config.s3, config.bucket, state.key),
      parts: outcome.parts
    }
    if (outcome.versionId !== undefined) file.versionId = outcome.versionId
    if (outcome.checksum !== undefined) file.checksum = outcome.checksum
    try {
      await onStored(file, request)
      return 'accepted'
    } catch (error) {
      // As for a streamed upload: storage and the app's records agree — unless deleting would lose
      // the object this one replaced (overwrite on an unversioned bucket).
      if (!mayDelete) {
        request.log.error({ key: file.key, err: error }, 'fastify-s3-chunk: onUploadComplete threw when run again for a tus upload whose instance stopped; the object stays stored (the first run may have accepted it), the upload answers 404')
        return 'kept'
      }
      if (config.overwrite && file.versionId === undefined) {
        request.log.error({ key: file.key, err: error }, 'fastify-s3-chunk: onUploadComplete threw for a tus upload; the object stays stored (overwrite is on)')
        return 'kept'
      }
      request.log.error({ key: file.key, err: error }, 'fastify-s3-chunk: onUploadComplete threw for a tus upload; deleting the stored object')
      // Retried as the streamed upload's delete is (the upload client makes one attempt per call).
      return await withRetries('DeleteObject', engine.config.retry, async () => await engine.uploadClient.send(new DeleteObjectCommand({ Bucket: file.bucket, Key: file.key, ...(file.versionId !== undefined ? { VersionId: file.versionId } : {}) })))
        .then(() => 'deleted' as const, (failure: unknown) => {
          request.log.error({ key: file.key, err: failure }, 'fastify-s3-chunk: could not delete it')
          return 'kept' as const
        })
    }
  }

  /** An upload whose object the app refused but which stays: its state says so (404 to every request) until the sweep. */
  async function markRefused (state: TusState, etag: string | null, request: FastifyRequest): Promise<void> {
    const next: TusState = { ...state, refused: true, parts: [], tail: 0 }
    delete next.lease
    delete next.uploadId
    await store.save(next, etag).catch((error: unknown) => { request.log.warn({ err: error, key: state.key }, 'fastify-s3-chunk: could not mark a refused tus upload; its URL may answer "finished"') })
  }

  /**
   * Writes a request's body into the upload it holds (`holder`): the tail
   * kept by the last PATCH first, then the body, cut into parts of the
   * upload's part size and sent through the engine. Returns the new offset.
   * The state changes only at the end, in one conditional write: a failed or
   * refused PATCH (checksum mismatch) leaves the upload where it was — parts
   * it sent are not counted and are overwritten by the next PATCH, and the
   * tail it would have written has a generation of its own; `before` is the
   * state such a request writes back (`held.state` is never changed: what this
   * request learns — the type, the multipart upload — goes into the states it
   * writes). A client that
   * goes away mid-body (without a checksum to verify) keeps what arrived.
   *
   * Each such request is one upload span of kind tus (README "Telemetry"): its main-thread S3
   * calls run in it, each part it sends is an event. It ends where the outcome is known —
   * stored (the upload finished), saved (its bytes kept, the upload goes on) or aborted
   * (nothing of it kept) — and anything thrown past those ends it here as a failure.
   */
  async function write (request: FastifyRequest, held: Loaded, holder: string, checksum: Checksum | null, before: TusState): Promise<number> {
    const telemetry = engine.telemetry.startUpload('tus', { bucket: config.bucket, key: held.state.key })
    if (held.state.uploadId !== undefined) telemetry.setUploadId(held.state.uploadId)
    try {
      return await telemetry.run(async () => await writeBody(request, held, holder, checksum, before, telemetry))
    } catch (error) {
      telemetry.failed(error)
      throw error
    }
  }

  async function writeBody (request: FastifyRequest, held: Loaded, holder: string, checksum: Checksum | null, before: TusState, telemetry: UploadTelemetry): Promise<number> {
    const state = held.state
    let etag = held.etag
    const base = state.parts.length
    const length = state.length
    const bound = Math.min(length ?? maxSize, maxSize)
    const watch = new IdleWatch(config.bodyTimeout)
    const stop = new AbortController()
    let failure: { error: unknown } | null = null
    const fail = (error: unknown): void => {
      if (failure !== null) return
      failure = { error }
      stop.abort(error)
    }
    let interrupted: unknown = null
    /** A body that ended early as the request answers it: the reason's own status (408, 409, 503), else 400 (the client went away: Node's error). */
    const endedEarly = (reason: unknown, message: string): unknown => typeof (reason as { statusCode?: unknown }).statusCode === 'number' ? reason : new BadRequestError(message)
    let received = 0
    let uploadId = state.uploadId
    let createdHere = false
    let contentType = state.contentType
    let objectParams: ObjectParams | undefined = contentType === undefined ? undefined : await objectParamsFor(config, fileContext(state, request, contentType), state.objectParams)
    /** The upload with the type its first bytes were sniffed as (once they were). */
    const typed = (): TusState => contentType === undefined ? state : { ...state, contentType }
    const newParts: StoredPart[] = []
    const inFlight = new Set<Promise<void>>()
    let tailBytes: Uint8Array | null = null
    let tailBuffer: PartMemory | null = null
    let held_ = 0

    /**
     * The upload as a crash now should leave it: with the parts this request has stored in a
     * row from its first, and the offset at their end. The first of them began with the stored
     * tail, so no tail is named (that object stays until the upload's next tail or its end
     * removes it). Only whole parts count (the short last one may exist before Complete does),
     * and a request with a checksum records nothing until its whole body is verified.
     */
    const progress = (): TusState => {
      // A finishing request's state carries the type the object is stored with (an instance
      // settling it after this one died reports that type to onUploadComplete).
      if (completing) return typed()
      if (checksum !== null || uploadId === undefined) return state
      const stored = [...newParts].sort((a, b) => a[0] - b[0])
      let inRow = 0
      while (inRow < stored.length && stored[inRow]?.[0] === base + inRow + 1 && (base + inRow + 1) * state.partSize <= state.offset + received) inRow++
      if (inRow === 0) return state
      return { ...typed(), uploadId, offset: (base + inRow) * state.partSize, parts: [...state.parts, ...stored.slice(0, inRow)], tail: 0 }
    }

    // The hold is renewed while the request runs, and records its progress (a PATCH cut short
    // by a crash keeps what it stored); losing the hold (another instance took an expired
    // hold, or the upload was terminated) fails this request. One renewal at a time, and none
    // while the final write goes: each needs the ETag the one before made.
    let renewing: Promise<void> = Promise.resolve()
    // Set once Complete begins: renewals then only extend the hold.
    let completing = false
    // Upload-Expires, pushed on by each renewal: a PATCH longer than expiresIn is activity too
    // (the sweep spares a held upload anyway), and a failed one leaves it as renewed.
    let expires = state.expires
    /** What a request that fails writes back: the upload as before it, with the expiry its renewals pushed on. */
    const restored = (): TusState => ({ ...before, expires })
    const renew = setInterval(() => {
      renewing = renewing.then(async () => {
        if (failure !== null) return
        const recorded = progress()
        expires = Math.max(expires, Date.now() + tus.expiresIn * 1000)
        const next: TusState = { ...recorded, expires, lease: { holder, until: Date.now() + leaseMs }, ...(completing ? { completing: true } : {}) }
        try {
          etag = await store.save(next, etag)
        } catch (error) {
          // While the upload finishes, a renewal S3 failed is tried again at the next tick (two
          // more before the hold lapses): a hold given up then would let a DELETE answer 204
          // for the file being stored. Only a conflict means the hold is gone.
          if (completing && !(error instanceof StateConflict)) {
            request.log.warn({ err: error, key: state.key }, 'fastify-s3-chunk: could not renew a finishing tus upload\'s hold; trying again')
            return
          }
          fail(error instanceof StateConflict ? new TusLockedError() : error)
        }
      })
    }, renewEveryMs)
    renew.unref()
    const stopRenewing = async (): Promise<void> => {
      clearInterval(renew)
      await renewing
    }
    // The app closing (after its grace) ends this PATCH like a client leaving, not like a
    // failure: the read stops, the parts in flight finish, the tail and the offset are
    // saved, and the answer is 503 + Retry-After — any instance resumes from there. Once
    // the whole body is read there is nothing to stop: the upload finishes.
    let readDone = false
    const interrupt = (reason: unknown): void => {
      if (readDone) return
      interrupted = reason
      // Unblocks a read waiting on the client (the socket goes; the client's retry finds the saved offset).
      if (!request.raw.complete) request.raw.destroy()
    }
    const unsubscribe = engine.shutdown.subscribe(interrupt)
    // So does a PATCH of the same upload arriving on this instance while this one has waited
    // STALLED_MS for its client's bytes (see patch()).
    const stopIfStalled = (): void => { if (watch.idleMs() >= STALLED_MS) interrupt(new TusLockedError()) }
    running.set(state.id, stopIfStalled)

    // The bytes in upload order: the stored tail, then the body (counted, bounded, hashed). The
    // tail is read once the body gives its first byte, or ends: a PATCH that sends its headers and
    // then nothing holds no memory for it (an attack run pinned 255 of a 256 MiB budget with five
    // such PATCHes, on tails it had left before).
    const tailGen = state.gen
    const tailBy = state.tailBy
    async function * source (): AsyncGenerator<Uint8Array> {
      let tailRead = state.tail === 0
      for await (const chunk of body()) {
        if (!tailRead) { tailRead = true; yield * store.readTail(state.id, tailGen, tailBy) }
        yield chunk
      }
      // No byte came: the tail still goes on (an empty PATCH may finish the upload, or keep its tail), unless the request failed.
      if (!tailRead && failure === null) yield * store.readTail(state.id, tailGen, tailBy)
    }
    async function * body (): AsyncGenerator<Uint8Array> {
      const raw = request.raw
      try {
        // A request the client dropped before we began to read has nothing more to give (and iterating it may never end).
        if (raw.destroyed && !raw.complete) throw new Error('aborted')
        for await (const chunk of watch.iterate(bodyOf(request))) {
          if (stop.signal.aborted || interrupted !== null) break
          received += chunk.byteLength
          if (state.offset + received > bound) {
            throw length !== undefined && length <= maxSize ? new TusTooLargeError(length) : new TusTooLargeError(maxSize)
          }
          checksum?.hash.update(chunk)
          yield chunk
        }
      } catch (error) {
        if (error instanceof TusTooLargeError) throw error
        // The client went away (or stalled), or the app closes: what arrived is kept, unless a checksum must vouch for the whole body.
        if (interrupted === null) interrupted = error
      } finally {
        readDone = true
      }
    }

    // Until the first bytes are sniffed, no multipart upload exists (its Content-Type and object settings come from them): they are all in the tail.
    async function * sniffed (): AsyncGenerator<Uint8Array> {
      if (contentType !== undefined) { yield * source(); return }
      const head: Uint8Array[] = []
      let headBytes = 0
      let decided = false
      for await (const chunk of source()) {
        if (decided) { yield chunk; continue }
        head.push(chunk)
        headBytes += chunk.byteLength
        if (headBytes >= SNIFF_BYTES) {
          const bytes = Buffer.concat(head)
          await decide(bytes)
          decided = true
          yield bytes
        }
      }
      if (!decided && headBytes > 0) {
        const bytes = Buffer.concat(head)
        // The whole file is here: decide on it; otherwise the bytes wait in the tail for more.
        if (length !== undefined && state.offset + received === length) await decide(bytes)
        yield bytes
      }
    }
    async function decide (bytes: Uint8Array): Promise<void> {
      contentType = decideType(state.declaredType, await sniffType(bytes), config.allowedTypes)
      objectParams = await objectParamsFor(config, fileContext(state, request, contentType), state.objectParams)
    }

    async function ensureUpload (): Promise<string> {
      if (uploadId === undefined) {
        uploadId = await createMultipartUpload(scopeOf(typed(), objectParams, telemetry))
        createdHere = true
        telemetry.setUploadId(uploadId)
      }
      return uploadId
    }

    const dispatch = (part: Part, id: string): void => {
      const number = base + part.number
      const capacity = part.bytes.buffer.byteLength
      // Read before the send: in workers mode the part's buffer is transferred (detached) on the way.
      const bytes = part.bytes.byteLength
      engine.counters.partsInFlight += 1
      held_ += capacity
      const sending: Promise<void> = engine.sender.send({
        bucket: config.bucket,
        key: state.key,
        uploadId: id,
        partNumber: number,
        body: part.bytes.buffer as PartMemory,
        length: bytes,
        ...(objectParams?.SSECustomerKey !== undefined ? { sse: customerKeyOf(objectParams) } : {})
      }).then((done) => {
        newParts.push(done.checksum !== undefined ? [number, done.etag, done.checksum] : [number, done.etag])
        telemetry.part(number, bytes, done.retried)
        settle(capacity, done.body)
      }, (error: unknown) => {
        if (isStorageFailure(error)) telemetry.failure(error.s3)
        fail(error)
        settle(capacity, (error as { partBuffer?: PartMemory }).partBuffer)
      }).finally(() => {
        engine.counters.partsInFlight -= 1
        inFlight.delete(sending)
      })
      inFlight.add(sending)
    }
    const settle = (capacity: number, returned: PartMemory | undefined): void => {
      held_ -= capacity
      if (returned !== undefined && returned.byteLength === capacity) engine.buffers.release(returned)
      else engine.buffers.forget(capacity)
    }

    engine.counters.uploadsInFlight += 1
    try {
      const parts = cutParts(sniffed(), {
        partSize: () => state.partSize,
        // The pool fails this PATCH to free memory (its client stalled while others wait): its read
        // on the client ends now, not at bodyTimeout, and it ends like a client that left — the
        // parts it stored and its tail are kept, the answer is 503 (failing it threw them away: review).
        open: async (size) => await engine.buffers.open(size, stop.signal, (error) => { watch.fail(error) })
      })
      try {
        for await (const part of parts) {
          // The part's memory goes back to the pool unless it is handed on (sent, or kept as the tail):
          // whatever throws on the way (the part limit, a failed CreateMultipartUpload, a key taken).
          let unclaimed: PartMemory | null = part.bytes.buffer.byteLength > 0 ? part.bytes.buffer as PartMemory : null
          try {
            // After a failure, read on to the end (the source stops at once): a cutter left mid-part would keep its reservation.
            if (failure !== null) continue
            const offsetAfter = state.offset + received
            // Every byte of the upload is here, even if the body then broke off (its Content-Length
            // lied, its last chunk never came): it finishes — saved as offset = length it never would.
            const complete = part.last && length !== undefined && offsetAfter === length
            if (part.bytes.byteLength === state.partSize || (complete && part.bytes.byteLength > 0)) {
              if (base + part.number > config.maxParts) throw new PartLimitError(config.maxParts)
              const id = await ensureUpload()
              while (inFlight.size >= config.partConcurrency && failure === null) await Promise.race(inFlight)
              if (failure !== null) continue
              dispatch(part, id)
              unclaimed = null
            } else if (part.bytes.byteLength > 0) {
              // Less than a part, and more is to come: it waits in S3 (never on disk, never in memory) for the next PATCH.
              tailBytes = part.bytes
              tailBuffer = part.bytes.buffer as PartMemory
              held_ += tailBuffer.byteLength
              unclaimed = null
            }
          } finally {
            if (unclaimed !== null) engine.buffers.release(unclaimed)
          }
        }
      } catch (error) {
        fail(error)
      }
      await Promise.all(inFlight)
      if (failure === null && interrupted !== null && checksum !== null) fail(interrupted)
      if (failure === null && checksum !== null && checksum.hash.digest('base64') !== checksum.expected) fail(new TusChecksumMismatchError())

      const offsetAfter = state.offset + received
      // (A body that broke off after its last byte finishes too; with a checksum it has failed above.)
      const complete = failure === null && length !== undefined && offsetAfter === length
      const gen = state.gen + 1
      let tailWritten = false
      if (failure === null && !complete && tailBytes !== null) {
        try {
          await store.putTail(state.id, gen, holder, tailBytes)
          tailWritten = true
        } catch (error) {
          fail(storageFailure(failureInfo('PutObject', error)))
        }
      }
      if (tailBuffer !== null) { held_ -= (tailBuffer as PartMemory).byteLength; engine.buffers.release(tailBuffer) }
      if (complete) {
        // Marked before Complete (the state as before this request, so HEAD never says
        // "finished" for a file the app may yet refuse): from here a DELETE is refused. A
        // DELETE (or another holder) that wrote first makes this write, and the PATCH, fail.
        completing = true
        const marked = renewing.then(async () => {
          if (failure !== null) return
          etag = await store.save(finishingHold(typed(), holder), etag)
        })
        renewing = marked.catch(() => {})
        await marked.catch((error: unknown) => { fail(error instanceof StateConflict ? new TusLockedError() : error) })
      }
      // A finishing request keeps its hold through Complete and onUploadComplete (below).
      if (!complete || failure !== null) await stopRenewing()

      if (failure !== null) {
        const { error } = failure as { error: unknown }
        // A tail written before the failure showed (a renewal found the upload terminated
        // while the tail went to S3) is named by no state: removed, not left to the sweep.
        if (tailWritten) await store.delete(store.tailKey(state.id, gen, holder)).catch(() => {})
        // An upload the rules refuse (its bytes are not of an allowed type, too large) can never finish: it is removed.
        const fatal = isRefusal(error)
        if (fatal) {
          // Only while this request still holds it (a conditional write, marking it terminated
          // should the removal fail): one whose hold was taken over meanwhile would remove the
          // upload — tail included — another request has since stored bytes in. Then only what
          // this request made goes.
          const held = await store.save({ ...restored(), terminated: true }, etag).then(() => true, () => false)
          if (held) {
            if (uploadId !== undefined) await abortMultipartUpload(scopeOf(state, objectParams), uploadId)
            await store.remove(state).catch(() => {})
          } else if (createdHere && uploadId !== undefined) {
            await abortUnlessNamed(state, objectParams, uploadId, await readState(state, request))
          }
        } else {
          // Back to the state before this request; then a multipart upload this request made
          // is aborted unless the stored state names it (a renewal recorded it, and the release failed).
          await release(restored(), etag)
          if (createdHere && uploadId !== undefined) await abortUnlessNamed(state, objectParams, uploadId, await readState(state, request))
        }
        // (A body cut short under a checksum fails with Node's error: its reason is the client's, a bad request.)
        telemetry.failed(error === interrupted ? endedEarly(error, 'the body ended early; its checksum cannot vouch for part of it: nothing kept') : error)
        throw error
      }

      const allParts = [...state.parts, ...newParts.sort((a, b) => a[0] - b[0])]
      if (complete) {
        // The hold lasts until the app has accepted the file: meanwhile HEAD gives the offset
        // before this request and a PATCH is 409, so a client whose answer was lost never hears
        // "finished" (from the object, once the state is gone) for a file the app then refuses.
        completing = true
        let verdict: Verdict = 'deleted'
        // S3 refused the Complete for now (SlowDown in every attempt) and the upload stays: the request fails, the upload does not.
        let leftOpen = false
        // The Complete took the upload but S3 would not say whether the object is stored: the
        // state stays marked "completing" (the hold lapses), so the request that finds it later
        // settles it from the object (settleAbandoned: onUploadComplete runs) — never "finished"
        // from the object without the hook (found by an attack run, helper-49).
        let outcomeUnknown = false
        try {
          if (allParts.length === 0) {
            // A deferred length declared 0: nothing was ever sent.
            verdict = await storeEmpty(state, request, telemetry)
          } else {
            const completed: CompletedPart[] = allParts.map(([number, partEtag, partChecksum]) => {
              const part: CompletedPart = { PartNumber: number, ETag: partEtag }
              if (partChecksum !== undefined && engine.config.checksum !== 'none') part[`Checksum${engine.config.checksum}`] = partChecksum
              return part
            })
            const outcome = await completeMultipartUpload(scopeOf(typed(), objectParams, telemetry), uploadId as string, completed, length, { resumable: true })
              .catch((error: unknown) => { leftOpen = isUploadLeftOpen(error); outcomeUnknown = isOutcomeUnknown(error); throw error })
            verdict = await finish(request, typed(), outcome)
          }
        } finally {
          await stopRenewing()
          // Left open: back to the state before this request, whose PATCH the client sends
          // again (its parts are sent again over the same numbers); a multipart upload this
          // request made is aborted, as for any failed request.
          if (outcomeUnknown) {
            request.log.warn({ key: state.key }, 'fastify-s3-chunk: a tus upload\'s Complete may have stored the object; the upload is settled from S3 by a later request')
          } else if (leftOpen) {
            await release(restored(), etag)
            if (createdHere && uploadId !== undefined) await abortUnlessNamed(state, objectParams, uploadId, await readState(state, request))
          // Completed, or refused (key taken) and aborted, or failed: the upload is over —
          // and an object the app refused that stays is marked so.
          } else if (verdict === 'kept') await markRefused(state, etag, request)
          else await store.remove(state).catch((error: unknown) => { request.log.warn({ err: error, key: state.key }, 'fastify-s3-chunk: could not remove a finished tus upload\'s state; the sweep will') })
        }
        if (verdict !== 'accepted') throw new UploadHookError()
        telemetry.stored({ size: length, parts: allParts.length })
        return length
      }

      const next: TusState = { ...state, offset: offsetAfter, parts: allParts, tail: tailBytes === null ? 0 : (tailBytes as Uint8Array).byteLength, gen: tailBytes === null ? state.gen : gen, expires: Date.now() + tus.expiresIn * 1000 }
      if (uploadId !== undefined) next.uploadId = uploadId
      if (contentType !== undefined) next.contentType = contentType
      // The tail this request wrote carries its hold in its name; without a tail none is named.
      if (tailBytes !== null) next.tailBy = holder
      else delete next.tailBy
      delete next.lease
      const written = await store.write(next, etag)
      if (!written.landed) {
        // The answer can be lost although S3 stored the write — or stores it a moment later (a
        // PUT whose body it had whole): what it holds decides. (One attempt per call: a conflict
        // answer is to this write, which can then never land.) The write read the state back
        // already when the answer was lost; after a conflict it is read here.
        const conflict = written.conflict
        if (!written.conflict && written.readError !== undefined) unreadableState(written.readError, state, request)
        let stored = written.conflict ? await readState(state, request) : written.stored
        if (!conflict && stored?.etag === etag) {
          // Still as our hold left it, so the write may yet land: fence it off by giving the
          // hold up (the ETag changes; the write, If-Match the old one, can no longer land),
          // then look again — it may have landed first.
          await release(restored(), etag)
          stored = await readState(state, request)
        }
        // A state naming this request's tail can only come from this write having landed (the name
        // carries this hold): another request may have taken the upload since — it landed all the
        // same, and its tail is that request's to read (deleting it lost bytes answered before).
        const namesOurs = tailBytes !== null && stored !== undefined && stored !== null && stored.state.gen === gen && stored.state.tailBy === holder
        const landed = namesOurs || (!conflict && stored !== undefined && stored !== null && JSON.stringify(stored.state) === JSON.stringify(next))
        if (!landed) {
          // Settled without this write (the upload terminated, taken over once the hold
          // expired, or fenced off above): nothing of this request counts — its tail object is
          // for no state, and a multipart upload it made that no state names would be left to
          // the sweep. Not settled (S3 unreadable): both stay, for the sweep.
          const settled = conflict || (stored !== undefined && stored?.etag !== etag)
          if (settled && tailBytes !== null) await store.delete(store.tailKey(state.id, gen, holder)).catch(() => {})
          if (settled && createdHere && uploadId !== undefined) await abortUnlessNamed(state, objectParams, uploadId, stored)
          // S3 failing the write is a storage failure (502), not the server's own (500).
          throw written.conflict ? new TusLockedError() : isStorageFailure(written.error) ? written.error : storageFailure(failureInfo('PutObject', written.error))
        }
      }
      if (tailBytes !== null || state.tail > 0) {
        if (next.gen !== state.gen || next.tail === 0) await store.delete(store.tailKey(state.id, state.gen, state.tailBy)).catch(() => {})
      }
      if (interrupted !== null) {
        const ended = endedEarly(interrupted, `the body ended early; the upload keeps the ${offsetAfter} bytes received`)
        telemetry.saved({ bytes: received, parts: newParts.length, interrupted: ended })
        throw ended
      }
      telemetry.saved({ bytes: received, parts: newParts.length })
      return offsetAfter
    } finally {
      clearInterval(renew)
      unsubscribe()
      if (running.get(state.id) === stopIfStalled) running.delete(state.id)
      watch.stop()
      engine.counters.uploadsInFlight -= 1
      if (held_ > 0) engine.buffers.forget(held_)
    }
  }

  /** The upload's state as S3 holds it now (null: none); undefined when it cannot be read (logged). */
  async function readState (state: TusState, request: FastifyRequest): Promise<Loaded | null | undefined> {
    try {
      return await store.load(state.id)
    } catch (error) {
      unreadableState(error, state, request)
      return undefined
    }
  }

  function unreadableState (error: unknown, state: TusState, request: FastifyRequest): void {
    request.log.warn({ err: error, key: state.key }, 'fastify-s3-chunk: could not read a tus upload\'s state back after a failed write; its tail or multipart upload may be left to the sweep')
  }

  /**
   * Aborts the multipart upload a failed request made, unless the stored state
   * names it: a renewal recorded it (or the last write landed), and the upload
   * goes on from there. No state (terminated) or another id: nothing can name it
   * any more — the request's renewals have stopped. A state that could not be
   * read (undefined) leaves it to the sweep (abortStaleUploads, or a lifecycle rule).
   */
  async function abortUnlessNamed (state: TusState, objectParams: ObjectParams | undefined, uploadId: string, stored: Loaded | null | undefined): Promise<void> {
    if (stored === undefined || stored?.state.uploadId === uploadId) return
    await abortMultipartUpload(scopeOf(state, objectParams), uploadId)
  }

  /** Gives the hold up, the upload as it was before the request (`before`); best effort (the hold expires on its own). */
  async function release (before: TusState, etag: string): Promise<void> {
    const next = { ...before }
    delete next.lease
    await store.save(next, etag).catch(() => {})
  }
}

/**
 * onFile's object settings as kept in the state object: an SSE-C key never
 * goes into S3 beside the data it protects. (SSE-C for tus comes from the
 * rules' `objectParams` function, computed again by every PATCH.)
 */
function storable (params: ObjectParams): ObjectParams {
  const { SSECustomerKey: _key, SSECustomerKeyMD5: _md5, SSECustomerAlgorithm: _algorithm, ...rest } = params
  return rest
}

/** The object settings with the upload's id among the object's metadata (UPLOAD_ID_META). */
function withUploadId (params: ObjectParams | undefined, id: string): ObjectParams {
  return { ...params, Metadata: { ...params?.Metadata, [UPLOAD_ID_META]: id } }
}

function isRefusal (error: unknown): boolean {
  const code = (error as { code?: unknown }).code
  return code === 'FST_S3CHUNK_TYPE_NOT_ALLOWED' || code === 'FST_S3CHUNK_KEY_EXISTS' || code === 'FST_S3CHUNK_PART_LIMIT' || error instanceof FileTooLargeError
}

interface Checksum { hash: Hash | Crc32Hash, expected: string }

/** What became of a stored object once onUploadComplete answered. */
type Verdict = 'accepted' | 'deleted' | 'kept'

/** CRC32 (../crc32.ts) as a running hash. */
class Crc32Hash {
  #value = 0
  update (chunk: Uint8Array): this { this.#value = crc32(chunk, this.#value); return this }
  digest (_encoding: 'base64'): string {
    const bytes = Buffer.alloc(4)
    bytes.writeUInt32BE(this.#value >>> 0)
    return bytes.toString('base64')
  }
}

/** `Upload-Checksum: <algorithm> <base64>`: 400 when malformed or of an algorithm not supported. */
function parseChecksum (header: string | string[] | undefined): Checksum | null {
  if (header === undefined) return null
  const match = typeof header === 'string' ? /^([a-z0-9-]+) ([A-Za-z0-9+/]+={0,2})$/.exec(header.trim()) : null
  if (match === null) throw new BadRequestError('Upload-Checksum must be "<algorithm> <base64 digest>"')
  const [, algorithm = '', expected = ''] = match
  switch (algorithm) {
    case 'sha1': case 'md5': case 'sha256': return { hash: createHash(algorithm), expected }
    case 'crc32': return { hash: new Crc32Hash(), expected }
    default: throw new BadRequestError(`Upload-Checksum algorithm ${algorithm} is not supported (Tus-Checksum-Algorithm: ${TUS_CHECKSUMS})`)
  }
}

/** A header of decimal digits as a byte count, or 400. */
function byteCount (value: string | string[] | undefined, name: string): number {
  const number = typeof value === 'string' && /^\d{1,16}$/.test(value) ? Number(value) : NaN
  if (!Number.isSafeInteger(number)) throw new BadRequestError(`${name} must be a non-negative integer`)
  return number
}

/** Upload-Metadata: comma-separated `key base64value` (value optional), keys unique ASCII without spaces or commas. */
export function parseMetadata (header: string | string[] | undefined): Record<string, string> {
  const metadata: Record<string, string> = Object.create(null) as Record<string, string>
  if (header === undefined || header === '') return metadata
  if (typeof header !== 'string' || header.length > 4096) throw new BadRequestError('Upload-Metadata is malformed or too long')
  for (const pair of header.split(',')) {
    const match = /^([\x21-\x2b\x2d-\x7e]+)(?: ([A-Za-z0-9+/]*={0,2}))?$/.exec(pair.trim())
    if (match === null) throw new BadRequestError('Upload-Metadata is malformed')
    const [, key = '', value = ''] = match
    if (key in metadata) throw new BadRequestError(`Upload-Metadata names ${key} twice`)
    const decoded = Buffer.from(value, 'base64').toString('utf8')
    if (!isWellFormed(decoded)) throw new BadRequestError(`Upload-Metadata ${key} is not well-formed text`)
    metadata[key] = decoded
  }
  return metadata
}

