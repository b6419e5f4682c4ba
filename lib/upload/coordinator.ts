import { createHash } from 'node:crypto'
import type { CompletedPart, S3Client } from '@aws-sdk/client-s3'
import type { FastifyBaseLogger } from 'fastify'
import { FileTooLargeError, KeyExistsError, PartLimitError, UploadCancelledError } from '../errors.js'
import { customerKeyOf, etagIsOpaque } from '../object-params.js'
import type { ChecksumSetting, RetryPolicy } from '../options.js'
import { cutParts, type Part } from './part-cutter.js'
import type { PartBufferPool, PartMemory } from './part-buffer-pool.js'
import type { PartSizeFn } from './part-schedule.js'
import type { PartSender } from './part-sender.js'
import { etagValue } from '../s3-client.js'
import type { Shutdown } from './shutdown.js'
import { crc32c, type Crc32 } from '../crc32.js'
import { checksumBase64, crc32Base64, failureInfo } from './send-part.js'
import { isStorageFailure, storageFailure, type RetriedRequest, type S3FailureInfo } from './s3-failure.js'
import type { UploadTelemetry } from '../telemetry.js'
import {
  abortMultipartUpload,
  checksumAlgorithm,
  completeMultipartUpload,
  conditionalWrite,
  createMultipartUpload,
  headLookup,
  isKeyTaken,
  lookupFailed,
  outcomeOf,
  type MultipartScope,
  type UploadOutcome,
  type UploadTarget
} from './multipart-calls.js'

export type { UploadOutcome, UploadTarget } from './multipart-calls.js'

export interface UploadDeps {
  /** One attempt per call: the coordinator retries every S3 call itself, with `retry`. */
  client: S3Client
  /** Retries of every S3 call of an upload: parts, the single PutObject, create, complete, abort. */
  retry: RetryPolicy
  sender: PartSender
  /** Size of part `number`. */
  partSize: PartSizeFn
  /** Parts of this file in flight at once. */
  partConcurrency: number
  maxFileSize: number
  maxParts: number
  checksum: ChecksumSetting
  /** The process-wide part buffers; a part waits for room in the budget before it starts filling. */
  buffers: PartBufferPool
  counters: { uploadsInFlight: number, partsInFlight: number }
  /** Closing it fails the upload with its reason (the server is shutting down). */
  shutdown?: Shutdown
  /** The app's own: aborting it fails the upload like a client disconnect (UploadCancelledError unless its reason is an Error). */
  signal?: AbortSignal
  /** Told of every part (or the single PUT) S3 acknowledged: bytes and parts. */
  onStored?: (bytes: number, parts: number) => void
  /**
   * Awaited before the object is committed (the single PutObject, or
   * CompleteMultipartUpload): s3File() resolves it once the whole request body
   * was read, and rejects it when the rest of the body fails — then nothing is
   * committed, so nothing has to be deleted (and with `overwrite` on, the
   * object a commit would have replaced is still there).
   */
  commitGate?: Promise<void>
  log?: FastifyBaseLogger
  /** The upload's span and figures (telemetry.ts): parts, retries, failures. */
  telemetry?: UploadTelemetry
}

/**
 * How long a one-part file's buffer may wait for the commit gate before the part is sent as
 * a multipart upload's only part: long enough for an honest request's closing boundary to
 * arrive, short against the memory budget.
 */
const COMMIT_WAIT_MS = 1000

/** A readable we can stop reading at once; plain async iterables are only abandoned. */
type Source = AsyncIterable<Uint8Array> & { destroy?: (error?: Error) => void }

/**
 * Streams one file into S3 (main thread, one call per file). Fewer bytes than
 * one part go out as a single PutObject; otherwise a multipart upload is created
 * at the first full part, at most `partConcurrency` parts are in flight — at the
 * limit the source is not read, so TCP pushes back on the client — and the
 * ETags are completed in part order. On any failure it stops reading, waits for
 * the parts in flight, aborts the multipart upload and rethrows: nothing partial
 * is ever committed.
 */
export async function uploadStream (source: Source, target: UploadTarget, deps: UploadDeps): Promise<UploadOutcome> {
  const upload = new FileUpload(source, target, deps)
  deps.counters.uploadsInFlight += 1
  try {
    return await upload.run()
  } finally {
    deps.counters.uploadsInFlight -= 1
    upload.dispose()
  }
}

class FileUpload {
  readonly #source: Source
  readonly #target: UploadTarget
  readonly #deps: UploadDeps
  #uploadId: string | undefined
  #size = 0
  /** Bytes of pool buffers of sealed parts this upload holds (queued or being sent). */
  #held = 0
  readonly #completed: CompletedPart[] = []
  readonly #inFlight = new Set<Promise<void>>()
  #failure: { error: unknown } | null = null
  /** Aborted at the first failure: wakes every wait of this upload (a slot, the budget, the client). */
  readonly #stop = new AbortController()
  readonly #failed: Promise<null>
  readonly #unsubscribe: () => void
  readonly #onCancel = (): void => { this.#fail(cancelReason(this.#deps.signal?.reason)) }
  /** What the create, complete and abort calls share. */
  readonly #scope: MultipartScope

  constructor (source: Source, target: UploadTarget, deps: UploadDeps) {
    this.#source = source
    this.#target = target
    this.#deps = deps
    const telemetry = deps.telemetry
    this.#scope = {
      client: deps.client,
      retry: deps.retry,
      target,
      checksum: deps.checksum,
      log: deps.log,
      ...(telemetry !== undefined ? { onRetry: (info: S3FailureInfo) => { telemetry.retry(info.operation, { code: info.code ?? info.name, ...(info.requestId !== undefined ? { requestId: info.requestId } : {}) }) } } : {})
    }
    this.#failed = new Promise((resolve) => {
      this.#stop.signal.addEventListener('abort', () => resolve(null), { once: true })
    })
    this.#unsubscribe = deps.shutdown?.subscribe((reason) => { this.#fail(reason) }) ?? (() => {})
    if (deps.signal?.aborted === true) this.#onCancel()
    deps.signal?.addEventListener('abort', this.#onCancel, { once: true })
  }

  async run (): Promise<UploadOutcome> {
    let single: UploadOutcome | null = null
    try {
      single = await this.#readParts()
    } catch (error) {
      this.#fail(error)
    }
    // A PutObject that succeeded is committed: a failure since (the server
    // closing, a cancel) cannot undo it, and answering it as failed would
    // leave an object whose client retries — as a Complete that succeeded is.
    if (single !== null) return single
    if (this.#failure !== null) this.#source.destroy?.()
    // Whatever happened, no part may still be in flight when we abort or complete.
    await Promise.all(this.#inFlight)
    if (this.#failure === null) await this.#awaitCommit()
    if (this.#failure !== null) {
      if (this.#uploadId !== undefined) await abortMultipartUpload(this.#scope, this.#uploadId)
      throw this.#failure.error
    }
    // Aborts the upload itself when it cannot complete it.
    const parts = [...this.#completed].sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0))
    return await completeMultipartUpload(this.#scope, this.#uploadId as string, parts, this.#size)
  }

  dispose (): void {
    this.#unsubscribe()
    this.#deps.signal?.removeEventListener('abort', this.#onCancel)
    // Buffers still held did not come back (a thread died with them): they are written off.
    if (this.#held > 0) this.#forget(this.#held)
  }

  /** Reads and dispatches parts; returns the outcome when the file went out as one PutObject. */
  async #readParts (): Promise<UploadOutcome | null> {
    const parts = cutParts(this.#source, {
      partSize: this.#deps.partSize,
      // Memory is reserved as the client's bytes arrive (see PartBufferPool).
      // The pool may fail this upload as a last resort, when every byte of the budget is stuck.
      open: async (size) => await this.#deps.buffers.open(size, this.#stop.signal, (error) => { this.#fail(error) })
    })[Symbol.asyncIterator]()

    while (this.#failure === null) {
      const next = parts.next()
      const step = await Promise.race([next, this.#failed])
      if (step === null) {
        // Failed while waiting for the client's bytes or for memory: stop now, not at the next chunk.
        next.catch(() => {})
        return null
      }
      if (step.done === true) return null
      const part = step.value
      // From here the part's buffer is this upload's to send and give back.
      this.#held += part.bytes.buffer.byteLength
      this.#size += part.bytes.byteLength
      if (this.#size > this.#deps.maxFileSize) throw new FileTooLargeError(this.#deps.maxFileSize)
      if (part.number > this.#deps.maxParts) throw new PartLimitError(this.#deps.maxParts)

      // One part goes out as one PutObject once the commit gate opens — unless the gate is still
      // shut a moment later: the client is slow to end its body (another file, fields, a byte a
      // second), and the part's buffer would stay reserved at its pace, out of reach of the
      // pool's relief (it counts as on its way to S3). It then goes as the only part of a
      // multipart upload (S3 takes a last part under 5 MiB), its buffer comes back at once, and
      // Complete waits for the gate instead.
      if (part.number === 1 && part.last && (part.bytes.byteLength === 0 || await this.#gateOpensSoon())) {
        await this.#awaitCommit()
        if (this.#failure !== null) return null
        return await this.#putObject(part)
      }

      if (this.#uploadId === undefined) {
        this.#uploadId = await createMultipartUpload(this.#scope)
        this.#deps.telemetry?.setUploadId(this.#uploadId)
      }
      while (this.#inFlight.size >= this.#deps.partConcurrency && this.#failure === null) {
        await Promise.race([...this.#inFlight, this.#failed])
      }
      if (this.#failure !== null) return null
      this.#dispatch(part, this.#uploadId)
    }
    return null
  }

  #dispatch (part: Part, uploadId: string): void {
    const { counters, sender } = this.#deps
    // Read before sending: a transferred ArrayBuffer is detached.
    const capacity = part.bytes.buffer.byteLength
    const length = part.bytes.byteLength
    counters.partsInFlight += 1
    const sending: Promise<void> = sender.send({
      bucket: this.#target.bucket,
      key: this.#target.key,
      uploadId,
      partNumber: part.number,
      body: part.bytes.buffer as PartMemory,
      length: part.bytes.byteLength,
      ...(this.#target.objectParams?.SSECustomerKey !== undefined ? { sse: customerKeyOf(this.#target.objectParams) } : {})
    }).then(
      (done) => {
        this.#completed.push(completedPart(part.number, done.etag, done.checksum, this.#deps.checksum))
        this.#deps.onStored?.(length, 1)
        this.#deps.telemetry?.part(part.number, length, done.retried)
        this.#settle(capacity, done.body)
      },
      (error: unknown) => {
        if (isStorageFailure(error)) this.#deps.telemetry?.failure(error.s3)
        this.#fail(error)
        this.#settle(capacity, (error as { partBuffer?: PartMemory }).partBuffer)
      }
    ).finally(() => {
      counters.partsInFlight -= 1
      this.#inFlight.delete(sending)
    })
    this.#inFlight.add(sending)
  }

  // A small file is sent, and retried from its buffer, by the part sender (in workers mode, on a thread).
  async #putObject (part: Part): Promise<UploadOutcome> {
    // Under SSE-KMS and SSE-C the ETag is no MD5 of the bytes: a checksum that S3 keeps
    // says whether an object found after a lost answer is this one (the configured one,
    // or else a CRC32 sent for that purpose).
    const identity = identityOf(this.#deps.checksum, etagIsOpaque(this.#target.objectParams))
    const length = part.bytes.byteLength
    const capacity = part.bytes.buffer.byteLength
    let returned: PartMemory | undefined
    try {
      const done = await this.#deps.sender.put({
        input: {
          ...this.#target.objectParams,
          Bucket: this.#target.bucket,
          Key: this.#target.key,
          ContentType: this.#target.contentType,
          ...checksumAlgorithm(this.#deps.checksum),
          ...conditionalWrite(this.#target)
        },
        body: part.bytes.buffer as PartMemory,
        length,
        crc32: identity?.send === true
      })
      returned = done.body
      this.#retried(done.retried)
      return outcomeOf(done.stored, { size: this.#size, parts: 0 }, this.#deps.checksum)
    } catch (error) {
      const info = isStorageFailure(error) ? error.s3 : failureInfo('PutObject', error)
      returned = (error as { partBuffer?: PartMemory }).partBuffer
      this.#retried(info.retried)
      if (isKeyTaken(info)) {
        // A retry meeting our own first attempt, whose answer was lost: the object is ours when it holds these bytes
        // (read from the buffer handed back; one a dead thread kept cannot be compared).
        const bytes = returned?.byteLength === capacity ? new Uint8Array(returned, 0, length) : null
        const ours = (info.attempts ?? 1) > 1 && bytes !== null ? await this.#storedAlready(bytes, identity) : null
        if (ours !== null) return ours
        throw new KeyExistsError(this.#target.key)
      }
      throw storageFailure(info)
    } finally {
      if (capacity > 0) this.#settle(capacity, returned)
    }
  }

  /** Telemetry of the failures a single PUT retried on its way (counted as its answer comes back, from a thread too). */
  #retried (retried: RetriedRequest[] | undefined): void {
    for (const request of retried ?? []) this.#deps.telemetry?.retry('PutObject', request)
  }

  /** The object at the key, when it is these bytes (their checksum as S3 keeps it, else a single PUT's ETag: their MD5), else null. */
  async #storedAlready (bytes: Uint8Array, identity: Identity | null): Promise<UploadOutcome | null> {
    const head = await headLookup(this.#deps.client, this.#target, identity?.algorithm ?? this.#deps.checksum, this.#deps.retry)
    // S3 would not say what is at the key (throttled, 5xx): maybe these very bytes — a retryable failure, never "key exists".
    if (head === 'unknown') throw lookupFailed('a PutObject retried after a lost answer met an object that could not be looked up')
    if (head === null || head.ContentLength !== bytes.byteLength) return null
    const same = identity !== null ? head[identity.field] === identityValue(identity, bytes) : etagValue(head.ETag) === createHash('md5').update(bytes).digest('hex')
    if (!same) return null
    return outcomeOf(head, { size: this.#size, parts: 0 }, this.#deps.checksum)
  }

  /** True when the commit gate (if any) opens, or fails, within COMMIT_WAIT_MS (or the upload fails meanwhile). */
  async #gateOpensSoon (): Promise<boolean> {
    const gate = this.#deps.commitGate
    if (gate === undefined) return true
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<false>((resolve) => { timer = setTimeout(() => { resolve(false) }, COMMIT_WAIT_MS) })
    try {
      return await Promise.race([gate.then(() => true, () => true), this.#failed.then(() => true), late])
    } finally {
      clearTimeout(timer)
    }
  }

  /** Waits for the commit gate (if any); a gate that rejects, or a failure meanwhile, fails the upload. */
  async #awaitCommit (): Promise<void> {
    const gate = this.#deps.commitGate
    if (gate === undefined) return
    try {
      await Promise.race([gate, this.#failed])
    } catch (error) {
      this.#fail(error)
    }
  }

  #fail (error: unknown): void {
    if (this.#failure !== null) return
    this.#failure = { error }
    this.#stop.abort(error)
  }

  /** A sent part's buffer comes back to the pool; when it did not come back (a thread died), it is written off. */
  #settle (capacity: number, returned: PartMemory | undefined): void {
    if (returned !== undefined && returned.byteLength === capacity) this.#giveBack(returned)
    else this.#forget(capacity)
  }

  #giveBack (buffer: PartMemory): void {
    this.#held -= buffer.byteLength
    this.#deps.buffers.release(buffer)
  }

  #forget (bytes: number): void {
    this.#held -= bytes
    this.#deps.buffers.forget(bytes)
  }
}

function completedPart (number: number, etag: string, checksum: string | undefined, algorithm: ChecksumSetting): CompletedPart {
  const part: CompletedPart = { PartNumber: number, ETag: etag }
  if (checksum !== undefined && algorithm !== 'none') part[`Checksum${algorithm}`] = checksum
  return part
}

/** The error an app's abort fails an upload with: its reason when that is an Error, else UploadCancelledError. */
function cancelReason (reason: unknown): Error {
  return reason instanceof Error && !(reason instanceof DOMException) ? reason : new UploadCancelledError()
}

/** A checksum of a single PUT's bytes that S3 keeps, to know the object again. */
interface Identity {
  algorithm: 'CRC32' | 'CRC32C' | 'SHA256'
  field: 'ChecksumCRC32' | 'ChecksumCRC32C' | 'ChecksumSHA256'
  /** Sent by us, computed by the sending thread (the SDK sends the configured one itself). */
  send: boolean
}

/**
 * How a single PUT is known again after a lost answer: by the configured
 * checksum when it can be computed here, or — when the ETag will be no MD5
 * (SSE-KMS, SSE-C) — by a CRC32 sent for that purpose; null: by its MD5 ETag.
 */
function identityOf (checksum: ChecksumSetting, opaqueEtag: boolean): Identity | null {
  if (checksum === 'CRC32' || (checksum === 'none' && opaqueEtag)) {
    // Sent by us also when configured: the SDK then computes no checksum of its own.
    return { algorithm: 'CRC32', field: 'ChecksumCRC32', send: true }
  }
  if (checksum === 'SHA256') return { algorithm: 'SHA256', field: 'ChecksumSHA256', send: false }
  // Under SSE-KMS or SSE-C the MD5 ETag is not there to compare (found in review: the upload's own
  // object was answered 409). Without the native CRC32C, the ETag decides.
  if (checksum === 'CRC32C' && crc32c !== undefined) return { algorithm: 'CRC32C', field: 'ChecksumCRC32C', send: false }
  return null
}

/** The identity's value for these bytes, as S3 reports it. */
function identityValue (identity: Identity, bytes: Uint8Array): string {
  switch (identity.algorithm) {
    case 'CRC32': return crc32Base64(bytes)
    case 'CRC32C': return checksumBase64((crc32c as Crc32)(bytes))
    case 'SHA256': return createHash('sha256').update(bytes).digest('base64')
  }
}
