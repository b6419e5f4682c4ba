import { createHash } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type PutObjectCommandOutput, type S3Client } from '@aws-sdk/client-s3'
import { joinKey } from '../keys.js'
import { etagValue } from '../s3-client.js'
import type { ObjectParams } from '../options.js'
import { crc32 } from '../crc32.js'
import type { RetryPolicy } from '../options.js'
import { describeS3Error, isChecksumMismatch, isNoSuchKey, s3Call, storageFailure } from '../upload/s3-failure.js'
import { crc32Base64, withRetries } from '../upload/send-part.js'

/** Below keyPrefix: the key sanitiser strips leading dots, so no upload's own key can land here. */
export const TUS_SEGMENT = '.tus'

/** `<keyPrefix>/.tus`: where the state and tail objects of tus uploads live. */
export function tusPrefix (keyPrefix: string): string {
  return joinKey(keyPrefix, TUS_SEGMENT)
}

/** Between a state's key and its tail's generation: `<keyPrefix>/.tus/<id>.tail.<gen>[.<holder>]`. */
const TAIL_MARK = '.tail.'

/**
 * The state key a tail object under `<keyPrefix>/.tus/` belongs to; null for a state's own key.
 * Read after `<keyPrefix>/.tus/`: the prefix itself may hold '.tail.' (a keyPrefix of 'media.tail.v2').
 */
export function tailOwner (keyPrefix: string, key: string): string | null {
  const at = key.indexOf(TAIL_MARK, tusPrefix(keyPrefix).length + 1)
  return at < 0 ? null : key.slice(0, at)
}

/** One part S3 holds for the upload: number, ETag, checksum (when the engine's checksum is on). */
export type StoredPart = [number, string, string?]

/**
 * What is known of one tus upload between requests, kept in a small S3
 * object (`<keyPrefix>/.tus/<id>`), written only conditionally (If-None-Match
 * at creation, If-Match on its ETag after), so any instance can serve any
 * request and two writers never both win.
 */
export interface TusState {
  v: 1
  id: string
  /** The final object's key. */
  key: string
  /** userId from tus.authorize at creation. */
  owner?: string
  /** Undefined while the length is deferred. */
  length?: number
  /** Bytes received and kept (parts + tail). */
  offset: number
  /** Upload-Metadata as sent (echoed by HEAD). */
  metadataHeader?: string
  metadata: Record<string, string>
  originalName: string
  declaredType?: string
  /** ms since the epoch. */
  expires: number
  /** Bytes of every part but the last; fixed for the upload. */
  partSize: number
  /** S3's multipart upload, created once the first bytes were sniffed. */
  uploadId?: string
  /** The type the object is stored with, decided from the first bytes. */
  contentType?: string
  /** onFile's object settings for this upload. */
  objectParams?: ObjectParams
  parts: StoredPart[]
  /** Bytes after the last part, kept in the tail object of generation `gen`. */
  tail: number
  /** Generation: bumped by every PATCH that keeps bytes; names the tail object. */
  gen: number
  /**
   * The hold that wrote the tail, in its name beside the generation: a writer whose hold was
   * taken over never meets the holder's tail, nor removes it (with the generation alone a stale
   * writer's tail blocked the holder's — or, deleted as a stray, took bytes already answered).
   * Absent for a tail named by its generation alone (written before).
   */
  tailBy?: string
  /** A PATCH in progress holds the upload until `until` (ms), renewing it as it runs. */
  lease?: { holder: string, until: number }
  /**
   * onUploadComplete refused the stored object and it stays (overwrite on, or its delete
   * failed): the upload answers 404 as a removed one would — never "finished" from the
   * object — until the sweep removes this state at `expires`.
   */
  refused?: true
  /**
   * The PATCH holding the upload has the whole file and is finishing it (Complete, then
   * onUploadComplete): a DELETE is refused (409) rather than answered 204 for a file that
   * is then stored. Written before Complete, conditionally, so a DELETE that took the upload
   * first makes the PATCH fail instead.
   */
  completing?: true
  /**
   * A DELETE took the upload (a conditional write, so no PATCH's write lands after it):
   * 404 to every request while its multipart upload is aborted and the state removed.
   */
  terminated?: true
}

export interface Loaded { state: TusState, etag: string }

/** A request holds the upload at `now` (its lease has not lapsed): it is live, whatever its expiry, and locked to others. */
export function heldAt (state: TusState, now = Date.now()): boolean {
  return state.lease !== undefined && state.lease.until > now
}

/**
 * How a conditional state write went. Not landed and no conflict (the answer lost, a 5xx):
 * `stored` is what the state read back as — another state, or null (none) — or undefined
 * when it could not be read (`readError`).
 */
export type StateWrite =
  | { landed: true, etag: string }
  | { landed: false, conflict: true }
  | { landed: false, conflict: false, error: unknown, stored: Loaded | null | undefined, readError?: unknown }

/** The conditional write lost: someone else wrote (or deleted) the state since we read it. */
export class StateConflict extends Error {
  constructor () {
    super('the upload state changed meanwhile')
    this.name = 'StateConflict'
  }
}

/** S3's answers to a body that is not what its checksum or signature says: nothing was stored. */
const BYTES_REFUSED = new Set(['BadDigest', 'XAmzContentChecksumMismatch', 'XAmzContentSHA256Mismatch', 'InvalidDigest'])

/** Reads of a state whose body is not its ETag's, before giving up (StateConflict): ~100 ms. */
const LOAD_ATTEMPTS = 5

/** `ownEtag`: the ETag is the body's MD5 (a store's plain ETag for a single PUT). `corrupt`: the body failed the CRC32 S3 keeps for it (nothing else of it is known). */
type StateRead = { text: string, etag: string, ownEtag: boolean, corrupt?: false } | { corrupt: true }

/** Whether `etag` (as S3 sends it, quoted) is the MD5 of `body`. */
function isMd5Of (etag: string | undefined, body: Uint8Array | string): boolean {
  return etagValue(etag).toLowerCase() === createHash('md5').update(body).digest('hex')
}

export class StateStore {
  readonly #client: S3Client
  readonly #bucket: string
  readonly #prefix: string
  /** What this store's last state write answered for an ETag: its body's MD5, or something else (SSE-KMS); unknown before any. */
  #etags: 'unknown' | 'md5' | 'opaque' = 'unknown'

  /**
   * `retry`: the engine's, for the writes that may be repeated (a tail's name is its writer's
   * alone, a delete is a delete); a conditional state write is not (its own answer says whether
   * it landed). `checksums`: the engine checksums what it sends (so its bodies go unsigned,
   * `payloadSigning`): tails and states then carry a CRC32 that S3 verifies too — without it a
   * byte flipped on the way went into the tail and from there into the finished file, or broke
   * the state's JSON (an attack run).
   */
  readonly #retry: RetryPolicy
  readonly #checksums: boolean
  constructor (client: S3Client, bucket: string, keyPrefix: string, { retry, checksums }: { retry: RetryPolicy, checksums: boolean }) {
    this.#client = client
    this.#bucket = bucket
    this.#prefix = tusPrefix(keyPrefix)
    this.#retry = retry
    this.#checksums = checksums
  }

  stateKey (id: string): string { return `${this.#prefix}/${id}` }
  /** Per generation and writer: a PATCH that fails (checksum mismatch) never touches the tail the state still names. */
  tailKey (id: string, gen: number, by?: string): string { return `${this.stateKey(id)}${TAIL_MARK}${gen}${by === undefined ? '' : `.${by}`}` }

  /**
   * The state and the ETag a write of it is conditional on — the body must be the ETag's. A
   * store can answer a read that races a write with the old body and the new ETag (versitygw
   * v1.8.0 with sidecar metadata stores the ETag before it moves the new body in): a write
   * If-Match that ETag would replace a state no one read, and two requests would both hold
   * the upload. So a body whose MD5 is not its ETag is read again — unless this store's last
   * state write answered an ETag that is not its body's MD5 (SSE-KMS): then a read is believed
   * as it comes. Before any write of this process has told, five reads that end with two alike
   * are believed too (~100 ms, once). StateConflict when it never settles — unless `forWriting`
   * is false: a reader that writes nothing (HEAD) takes the last read as it is.
   */
  async load (id: string, { forWriting = true }: { forWriting?: boolean } = {}): Promise<Loaded | null> {
    let previous: StateRead | null = null
    for (let attempt = 1; ; attempt++) {
      const read = await this.#read(id)
      if (read === null) return null
      // Changed on its way back (a body that fails its checksum): read again, as for a body not
      // its ETag's — on a store whose ETags are no MD5s it was believed as it came, and one
      // flipped byte of a part's ETag made the Complete fail and the upload be removed (an attack run).
      if (read.corrupt === true) {
        if (attempt >= LOAD_ATTEMPTS) throw storageFailure({ operation: 'GetObject', name: 'StateChecksumMismatch', code: 'StateChecksumMismatch', message: 'the tus state read back does not match the checksum S3 keeps for it', retryable: true })
        await sleep(10 * attempt)
        continue
      }
      const believed = read.ownEtag || this.#etags === 'opaque' ||
        (attempt >= LOAD_ATTEMPTS && (!forWriting || (this.#etags === 'unknown' && previous?.etag === read.etag && previous.text === read.text)))
      if (believed) return { state: JSON.parse(read.text) as TusState, etag: read.etag }
      if (attempt >= LOAD_ATTEMPTS) throw new StateConflict()
      previous = read
      await sleep(10 * attempt)
    }
  }

  async #read (id: string): Promise<StateRead | null> {
    try {
      // States are written with a CRC32 when the engine checksums: asked for, the SDK checks it.
      const answer = await this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: this.stateKey(id), ...(this.#checksums ? { ChecksumMode: 'ENABLED' } : {}) }))
      const bytes = await answer.Body?.transformToByteArray() ?? new Uint8Array(0)
      const body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      return { text: body.toString('utf8'), etag: answer.ETag ?? '', ownEtag: isMd5Of(answer.ETag, body) }
    } catch (error) {
      if (isChecksumMismatch(error)) return { corrupt: true }
      if (isNoSuchKey(describeS3Error('GetObject', error))) return null
      throw error
    }
  }

  /**
   * Writes the state: only when it is still at `etag` (null: only when there is none yet).
   * Returns the new ETag. One attempt (the client's): a conflict answer is to this write.
   * A write whose answer is lost (no answer, a 5xx) may have landed: the state is read back,
   * and this very state there means it did; otherwise the error is thrown.
   */
  async save (state: TusState, etag: string | null): Promise<string> {
    const written = await this.write(state, etag)
    if (written.landed) return written.etag
    throw written.conflict ? new StateConflict() : written.error
  }

  /**
   * save() for a caller that must act on what a failed write left: the same write and the
   * same read-back, with what was read handed back rather than read again.
   */
  async write (state: TusState, etag: string | null): Promise<StateWrite> {
    const body = JSON.stringify(state)
    try {
      const answer = await this.#putState(state.id, body, etag)
      const written = answer.ETag ?? ''
      // Every write tells what the store's ETags are (learnt here, where no read can race it).
      this.#etags = isMd5Of(written, body) ? 'md5' : 'opaque'
      return { landed: true, etag: written }
    } catch (error) {
      const info = describeS3Error('PutObject', error)
      // 412: changed; 409: a concurrent conditional write; 404: deleted (terminated) meanwhile.
      if (info.status === 412 || info.status === 409 || info.status === 404 || info.code === 'PreconditionFailed' || info.code === 'ConditionalRequestConflict' || info.code === 'NoSuchKey') return { landed: false, conflict: true }
      try {
        const stored = await this.load(state.id)
        if (stored !== null && JSON.stringify(stored.state) === body) return { landed: true, etag: stored.etag }
        return { landed: false, conflict: false, error, stored }
      } catch (readError) {
        return { landed: false, conflict: false, error, stored: undefined, readError }
      }
    }
  }

  /**
   * One conditional write of the state — again only when S3 refused its bytes as changed on the
   * way (a checksum or digest mismatch): S3 stored nothing then, so the condition still holds.
   */
  async #putState (id: string, body: string, etag: string | null): Promise<PutObjectCommandOutput> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#client.send(new PutObjectCommand({
          Bucket: this.#bucket,
          Key: this.stateKey(id),
          Body: body,
          ContentType: 'application/json',
          ...(this.#checksums ? { ChecksumCRC32: crc32Base64(Buffer.from(body)) } : {}),
          ...(etag === null ? { IfNoneMatch: '*' } : { IfMatch: etag })
        }))
      } catch (error) {
        const code = describeS3Error('PutObject', error).code ?? ''
        if (attempt >= this.#retry.attempts || !BYTES_REFUSED.has(code)) throw error
      }
    }
  }

  /** Deletes the object, retried: one refusal (a 503) must not leave a finished upload's state behind. */
  async delete (key: string): Promise<void> {
    await withRetries('DeleteObject', this.#retry, async () => await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: key })))
  }

  /** Writes the tail of generation `gen` for the hold `by` (a name no other writer uses: retried). */
  async putTail (id: string, gen: number, by: string, bytes: Uint8Array): Promise<void> {
    await withRetries('PutObject', this.#retry, async () => await this.#client.send(new PutObjectCommand({
      Bucket: this.#bucket,
      Key: this.tailKey(id, gen, by),
      Body: bytes,
      ContentLength: bytes.byteLength,
      ...(this.#checksums ? { ChecksumCRC32: crc32Base64(bytes) } : {})
    })))
  }

  /**
   * The tail's bytes as a stream (read straight into the next part, never held whole), checked
   * at their end against the CRC32 S3 keeps (else the MD5 its ETag is, where this store's ETags
   * are MD5s): bytes changed on the way back fail the PATCH, which then changes nothing.
   */
  async * readTail (id: string, gen: number, by?: string): AsyncGenerator<Uint8Array> {
    const answer = await s3Call('GetObject', async () => await this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: this.tailKey(id, gen, by), ...(this.#checksums ? { ChecksumMode: 'ENABLED' } : {}) })))
    const expectedCrc = answer.ChecksumCRC32
    const etag = etagValue(answer.ETag)
    // An ETag of 32 hex digits is the MD5 only where this store's state writes showed it (an
    // SSE-KMS bucket's default encryption gives others: its tails were refused for ever, found in review).
    const md5 = expectedCrc === undefined && this.#etags === 'md5' && /^[0-9a-f]{32}$/i.test(etag) ? createHash('md5') : null
    let crc = 0
    // for await: a consumer that stops early (the upload failed mid-tail) ends the body, and its
    // socket is given back (a loop of next() calls kept it: found in review).
    try {
      for await (const chunk of answer.Body as AsyncIterable<Uint8Array>) {
        if (expectedCrc !== undefined) crc = crc32(chunk, crc)
        md5?.update(chunk)
        yield chunk
      }
    } catch (error) {
      // Only the body's own errors land here (consumers iterate with for await: they return,
      // never throw into this generator). The body cut off, or (ChecksumMode ENABLED) the SDK's
      // own check of the CRC32 at its end — a plain Error that was answered 500 (found in a
      // test that flips a byte of the answer): the bytes did not arrive intact, worth a retry.
      throw isChecksumMismatch(error) ? tailMismatch() : storageFailure({ ...describeS3Error('GetObject', error), retryable: true })
    }
    const crcRead = Buffer.alloc(4)
    crcRead.writeUInt32BE(crc)
    if ((expectedCrc !== undefined && crcRead.toString('base64') !== expectedCrc) || (md5 !== null && md5.digest('hex') !== etag.toLowerCase())) throw tailMismatch()
  }

  /**
   * Removes the state and every tail object of the upload — the one it names and any a failed
   * or dead writer left (found by listing: their names carry writers no state knows). Best
   * effort for the tails: the sweep removes strays.
   */
  async remove (state: TusState): Promise<void> {
    const tails = await this.#client.send(new ListObjectsV2Command({ Bucket: this.#bucket, Prefix: `${this.stateKey(state.id)}${TAIL_MARK}` }))
      .then((listed) => (listed.Contents ?? []).map((object) => object.Key).filter((key): key is string => key !== undefined), () => [])
    const named = this.tailKey(state.id, state.gen, state.tailBy)
    await Promise.allSettled([...new Set([named, ...tails])].map(async (key) => { await this.delete(key) }))
    await this.delete(this.stateKey(state.id))
  }
}

function tailMismatch (): Error {
  return storageFailure({ operation: 'GetObject', name: 'TailChecksumMismatch', code: 'TailChecksumMismatch', message: 'the tail object read back does not match the checksum S3 keeps for it', retryable: true })
}
