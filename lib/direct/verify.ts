import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import type { FastifyBaseLogger } from 'fastify'
import { SNIFF_BYTES, decideType, parseMediaType, sniffType } from '../content-types.js'
import { TypeNotAllowedError, UploadRejectedError } from '../errors.js'
import type { RetryPolicy, S3ChunkConfig } from '../options.js'
import { failureInfo, withRetries } from '../upload/send-part.js'
import { describeS3Error, s3Call, storageFailure } from '../upload/s3-failure.js'

/** What the server found in S3 for a direct upload, once checked. */
export interface CheckedObject {
  key: string
  /** Bytes as S3 counted them, not as the client declared them. */
  size: number
  /** The ETag as S3 sent it (quoted): copies and reads are pinned to it. */
  etag: string
  versionId?: string
  /** The type the object carries now. */
  storedType: string | undefined
  /** The type the bytes were checked against: what the object must be served as. */
  type: string
  /** User metadata as stored (encoded). */
  metadata: Record<string, string>
}

/**
 * Checks an object a browser uploaded straight to S3: it exists, its size
 * (as S3 counted it) is within maxFileSize, and its first bytes decide its
 * type like a streamed file's (`decideType`: with allowedTypes the bytes
 * must be of an allowed type and agree with the declaration). The bytes read
 * are pinned to the ETag seen, so a replacement in between is caught. An
 * object that breaks a rule is deleted, and the call fails with 422.
 *
 * `retry`: the reads are retried with that policy too (on top of the SDK's own attempts). For a
 * check after a commit (a direct multipart Complete): a failure there answers 502 for an upload
 * that is gone, so the client's retry is refused (403) and the object is never recorded — one
 * throttled HeadObject did that (found in review, helper-53). A staged upload stays for a retry.
 */
export async function checkObject (client: S3Client, config: S3ChunkConfig, key: string, log: FastifyBaseLogger, { retry }: { retry?: RetryPolicy } = {}): Promise<CheckedObject> {
  let head
  try {
    head = await read('HeadObject', retry, async () => await client.send(new HeadObjectCommand({ Bucket: config.bucket, Key: key })))
  } catch (error) {
    // 403: what AWS answers for a missing key to credentials without s3:ListBucket (the README's policy).
    const info = failureInfo('HeadObject', error)
    if (info.status === 404 || info.status === 403) throw new UploadRejectedError(`there is no object at that key${info.status === 403 ? ' (S3 answered 403: none, or these credentials may not read it)' : ''}`)
    throw storageFailure(info)
  }
  const reject = async (reason: string): Promise<never> => {
    // That version: on a versioned bucket a plain delete only hides the bytes behind a marker.
    await deleteObject(client, config.bucket, key, head.VersionId, { log })
    log.info({ key, reason }, 'fastify-s3-chunk: direct upload rejected and deleted')
    throw new UploadRejectedError(`${reason}; it was deleted`)
  }
  const size = head.ContentLength ?? 0
  const etag = head.ETag ?? ''
  if (size > config.maxFileSize) await reject(`it is ${size} bytes, more than the ${config.maxFileSize} allowed`)
  let declared: string | undefined
  try { declared = parseMediaType(head.ContentType) } catch { declared = undefined }
  let sniffed: string | undefined
  if (size > 0) {
    const bytes = await firstBytes(client, config.bucket, key, etag, retry)
    if (bytes === null) await reject('it changed while it was checked')
    else sniffed = await sniffType(bytes)
  }
  let type = ''
  try {
    type = decideType(declared, sniffed, config.allowedTypes)
  } catch (error) {
    if (!(error instanceof TypeNotAllowedError)) throw error
    // A ranged read carries no checksum: one byte changed on the way made a valid file
    // unrecognisable, and it was deleted (found by an attack run, helper-49). Refused — and
    // deleted — only when a second read of its first bytes agrees; else S3's failure (502).
    if (size > 0) {
      const again = await firstBytes(client, config.bucket, key, etag, retry)
      if (again === null) await reject('it changed while it was checked')
      else if (await sniffType(again) !== sniffed) throw storageFailure({ operation: 'GetObject', name: 'InconsistentRead', code: 'InconsistentRead', message: 'two reads of the object\'s first bytes disagree', retryable: true })
    }
    // (decideType refuses only with allowedTypes: unrecognised bytes, a type not allowed, or a declaration the bytes contradict.)
    await reject(sniffed === undefined ? 'its content is not of a recognisable allowed type' : `its content is ${sniffed}, which is not allowed as declared (${declared ?? 'nothing'})`)
  }
  const checked: CheckedObject = { key, size, etag, storedType: head.ContentType, type, metadata: head.Metadata ?? {} }
  if (head.VersionId !== undefined) checked.versionId = head.VersionId
  return checked
}

/**
 * Deletes the object — that version of it, when `versionId` is known (a versioned bucket). With
 * `log`, credentials without s3:DeleteObjectVersion (403) get a plain delete instead: a delete
 * marker hides the object, its version stays (logged). Without it the 403 is thrown (a marker
 * would also hide an older object the caller must not lose).
 */
export async function deleteObject (client: S3Client, bucket: string, key: string, versionId?: string, { log }: { log?: FastifyBaseLogger } = {}): Promise<void> {
  if (versionId !== undefined) {
    try {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }))
      return
    } catch (error) {
      if (log === undefined || httpStatus(error) !== 403) throw storageFailure(describeS3Error('DeleteObject', error))
      log.warn({ key, versionId }, 'fastify-s3-chunk: no s3:DeleteObjectVersion: the object is deleted with a delete marker, its version stays stored (see the README, versioned buckets)')
    }
  }
  await s3Call('DeleteObject', () => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })))
}

/** The object's first bytes, or null when it is no longer the object of that ETag. */
async function firstBytes (client: S3Client, bucket: string, key: string, etag: string, retry: RetryPolicy | undefined): Promise<Uint8Array | null> {
  try {
    return await read('GetObject', retry, async () => {
      const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=0-${SNIFF_BYTES - 1}`, ...(etag !== '' ? { IfMatch: etag } : {}) }))
      return await (object.Body as { transformToByteArray: () => Promise<Uint8Array> }).transformToByteArray()
    })
  } catch (error) {
    const info = failureInfo('GetObject', error)
    if (info.status === 412 || info.status === 404) return null
    throw storageFailure(info)
  }
}

/** One read of the check: once (the SDK's own attempts), or retried with `retry` (a 4xx fails at once: PartFailure). */
async function read<T> (operation: string, retry: RetryPolicy | undefined, call: () => Promise<T>): Promise<T> {
  return retry === undefined ? await call() : (await withRetries(operation, retry, call)).value
}

export function httpStatus (error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode
}
