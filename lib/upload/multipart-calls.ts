import { createHash } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  DeleteObjectCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  ListPartsCommand,
  type CompletedPart,
  type HeadObjectCommandOutput,
  type S3Client
} from '@aws-sdk/client-s3'
import type { FastifyBaseLogger } from 'fastify'
import { KeyExistsError } from '../errors.js'
import { customerKeyOf } from '../object-params.js'
import type { ChecksumSetting, ObjectParams, RetryPolicy } from '../options.js'
import { etagParts, etagValue } from '../s3-client.js'
import { backoffDelay, checksumOf, failureInfo, withRetries } from './send-part.js'
import { describeS3Error, storageFailure, type S3FailureInfo, type StorageFailure } from './s3-failure.js'

export interface UploadTarget {
  bucket: string
  key: string
  contentType: string
  /** Replace an existing object; false: every write is conditional (`If-None-Match: *`). */
  overwrite: boolean
  /** S3 object settings (metadata, cache, encryption, …), set once the first bytes are known. */
  objectParams?: ObjectParams
}

export interface UploadOutcome {
  /** Bytes stored. */
  size: number
  etag: string
  /** 0 for a single PutObject. */
  parts: number
  versionId?: string
  /** The object's checksum as S3 reports it, when one is configured. */
  checksum?: string
}

/** What the calls of one multipart upload share. */
export interface MultipartScope {
  /** One attempt per call: every call here is retried by `retry`, not by the SDK (whose retry quota runs dry under sustained faults). */
  client: S3Client
  retry: RetryPolicy
  target: UploadTarget
  checksum: ChecksumSetting
  log?: FastifyBaseLogger | undefined
  /** Told of each failed request that is retried (telemetry). */
  onRetry?: ((info: S3FailureInfo) => void) | undefined
}

/** What aborting (and looking up) an upload needs. */
export type AbortScope = Pick<MultipartScope, 'client' | 'retry' | 'log'> & { target: Pick<UploadTarget, 'bucket' | 'key'> }

export async function createMultipartUpload (scope: MultipartScope): Promise<string> {
  const { client, retry, target } = scope
  // The conditional Complete is what guarantees nothing is replaced; looking first
  // spares a client sending gigabytes only to meet a 409 at the end.
  if (!target.overwrite && await headOf(client, target, 'none', retry) !== null) throw new KeyExistsError(target.key)
  try {
    const { value } = await withRetries('CreateMultipartUpload', retry, async () => await client.send(new CreateMultipartUploadCommand({
      ...target.objectParams,
      Bucket: target.bucket,
      Key: target.key,
      ContentType: target.contentType,
      ...checksumAlgorithm(scope.checksum)
    })), undefined, scope.onRetry)
    if (value.UploadId === undefined) throw new Error('CreateMultipartUpload answered without an UploadId')
    return value.UploadId
  } catch (error) {
    throw storageFailure(failureInfo('CreateMultipartUpload', error))
  }
}

/**
 * Completes the upload, and tells the truth when the answer goes missing. A
 * Complete whose connection dies may have been carried out by S3, may still
 * be running there, or may have been dropped — and a second Complete racing
 * the first can fail (MinIO answers InvalidPart). So between attempts the
 * upload is looked up, and not completed again once it is gone. A Complete
 * given up is aborted — which also waits out a Complete still running in S3
 * (MinIO locks the upload for both; meanwhile ListParts can already say it
 * is gone, and the upload come back when that Complete fails) — and then
 * the object at the key says whether this upload was stored.
 *
 * `resumable`: the caller can take the upload up again later (tus). A Complete S3
 * refused in every attempt with SlowDown (503: throttled before it was looked at) while
 * the upload stays was carried out by none of them: the upload is left open, the error
 * saying so (isUploadLeftOpen), rather than aborted with every part of a file the client
 * took hours to send. Any other failure may still be carried out (a 500 from S3, a 503 or
 * 504 from a gateway while S3 goes on: found in review) and is fenced off as above.
 */
export async function completeMultipartUpload (scope: MultipartScope, uploadId: string, parts: CompletedPart[], size: number, { resumable = false }: { resumable?: boolean } = {}): Promise<UploadOutcome> {
  const { client, retry, target } = scope
  const expected: Expected = { size, parts: parts.length, etag: multipartEtag(parts.map((part) => part.ETag)) }
  let consumed = false
  // Whether every attempt so far was throttled (SlowDown): only those are known not carried out.
  let throttledOnly = true
  const onRetry = (info: S3FailureInfo): void => {
    if (!isThrottled(info)) throttledOnly = false
    scope.onRetry?.(info)
  }
  let completed: UploadOutcome
  try {
    const { value } = await withRetries('CompleteMultipartUpload', retry, async () => await client.send(new CompleteMultipartUploadCommand({
      Bucket: target.bucket,
      Key: target.key,
      UploadId: uploadId,
      MultipartUpload: { Parts: parts },
      ...customerKeyOf(target.objectParams),
      ...conditionalWrite(target)
    })), async () => {
      consumed = await uploadState(scope, uploadId) === 'gone'
      return !consumed
    }, onRetry)
    completed = outcomeOf(value, { size, parts: parts.length }, scope.checksum)
  } catch (error) {
    const last = failureInfo('CompleteMultipartUpload', error)
    if (resumable && !consumed && throttledOnly && isThrottled(last) && await uploadState(scope, uploadId) === 'present') {
      const open = storageFailure(last)
      Object.defineProperty(open, 'uploadLeftOpen', { value: true, enumerable: false })
      throw open
    }
    return await recoverComplete(scope, uploadId, expected, consumed, last)
  }
  return await withChecksum(scope, completed)
}

/** A Complete that took the upload, after which S3 would not say whether the object is stored (see recoverComplete). */
export function isOutcomeUnknown (error: unknown): boolean {
  return (error as { outcomeUnknown?: unknown } | null)?.outcomeUnknown === true
}

/** S3's SlowDown: the request was refused before it was carried out. */
function isThrottled (info: S3FailureInfo): boolean {
  return info.status === 503 && info.code === 'SlowDown'
}

/** A resumable Complete that failed with the upload left open for a later one (see completeMultipartUpload). */
export function isUploadLeftOpen (error: unknown): boolean {
  return (error as { uploadLeftOpen?: unknown } | null)?.uploadLeftOpen === true
}

/** How long a Complete that took the upload may still take to write the object (versitygw: measured ~0.5 s under load). */
const COMPLETE_SETTLE_MS = 6_000

/** After a Complete that failed: abort, then the object at the key says whether it was this upload's (see completeMultipartUpload). */
async function recoverComplete (scope: MultipartScope, uploadId: string, expected: Expected, seenGone: boolean, last: S3FailureInfo): Promise<UploadOutcome> {
  // Seen gone: a Complete of ours was carried out (or is finishing), so the
  // object's size and part count are evidence enough when its ETag cannot be computed.
  const consumed = seenGone || await uploadState(scope, uploadId) === 'gone'
  await abortMultipartUpload(scope, uploadId)
  let looked = await storedObject(scope, expected, { sizeAndPartsSuffice: consumed })
  // Gone before our abort: a Complete of ours took it and may still be
  // writing the object. MinIO's abort waits such a Complete out; versitygw's
  // answers NoSuchUpload at once, and the object appears a moment later — so
  // look again for a few seconds before answering that nothing was stored.
  for (let waited = 0, delay = 100; (looked === null || looked === 'unknown') && consumed && waited < COMPLETE_SETTLE_MS; waited += delay, delay *= 2) {
    await sleep(Math.min(delay, COMPLETE_SETTLE_MS - waited))
    looked = await storedObject(scope, expected, { sizeAndPartsSuffice: consumed })
  }
  if (looked !== null && looked !== 'unknown') return recovered(scope, uploadId, last, looked)
  // A Complete of ours took the upload and S3 would not say what is at the key: the object may
  // well be stored. Not "nothing was committed": the caller must not take the upload as over.
  if (consumed && looked === 'unknown') {
    const unknown = storageFailure(last)
    Object.defineProperty(unknown, 'outcomeUnknown', { value: true, enumerable: false })
    throw unknown
  }
  if (isKeyTaken(last)) throw new KeyExistsError(scope.target.key)
  throw storageFailure(last)
}

/** `If-None-Match: *` unless the target may replace an object. */
export function conditionalWrite (target: Pick<UploadTarget, 'overwrite'>): { IfNoneMatch?: string } {
  return target.overwrite ? {} : { IfNoneMatch: '*' }
}

/**
 * S3's answers to a conditional write whose key is taken: 412 once an object
 * exists, 409 ConditionalRequestConflict while another write of the key is
 * under way (which then wins or fails on its own).
 */
export function isKeyTaken (info: S3FailureInfo): boolean {
  return info.status === 412 || info.code === 'PreconditionFailed' || info.code === 'ConditionalRequestConflict'
}

/**
 * Some stores (SeaweedFS, moto) leave the checksum out of the Complete answer;
 * HeadObject has it. A store that reports none at all fails the upload
 * (S3File.checksum was asked for and is never silently missing): the object
 * is deleted. A HeadObject S3 does not answer leaves the checksum out (logged).
 */
async function withChecksum (scope: MultipartScope, outcome: UploadOutcome): Promise<UploadOutcome> {
  if (scope.checksum === 'none' || outcome.checksum !== undefined) return outcome
  const head = await headLookup(scope.client, scope.target, scope.checksum, scope.retry)
  if (head === 'unknown') {
    // The object is stored (the Complete was answered); S3 would not say more after every retry.
    // The upload counts, without its checksum: failing it told the client "nothing was committed"
    // and left the object, which its retry stored again (found in review).
    scope.log?.warn({ key: scope.target.key }, 'fastify-s3-chunk: stored, but HeadObject failed: the checksum the store left out of its Complete answer is missing from S3File.checksum')
    return outcome
  }
  const ours = head !== null && etagValue(head.ETag) === outcome.etag
  const checksum = ours ? checksumOf(head, scope.checksum) : undefined
  if (checksum !== undefined) return { ...outcome, checksum }
  // Only this upload's own object is ever deleted (another writer's may be there with overwrite on).
  if (!ours) throw storageFailure({ operation: 'HeadObject', name: 'ChecksumUnknown', code: 'ChecksumUnknown', message: 'the object at the key is not the one just completed; its checksum cannot be read', retryable: false })
  try {
    await scope.client.send(new DeleteObjectCommand({ Bucket: scope.target.bucket, Key: scope.target.key, ...(outcome.versionId !== undefined ? { VersionId: outcome.versionId } : {}) }))
  } catch (error) {
    scope.log?.error({ key: scope.target.key, s3: describeS3Error('DeleteObject', error) }, 'fastify-s3-chunk: could not delete an object stored without its checksum')
  }
  throw storageFailure({ operation: 'CompleteMultipartUpload', name: 'MissingChecksum', code: 'MissingChecksum', message: `the store reported no ${scope.checksum} checksum for the object (Complete answer and HeadObject); set checksum: 'none' for this store`, retryable: false })
}

function recovered (scope: MultipartScope, uploadId: string, failure: S3FailureInfo, stored: UploadOutcome): UploadOutcome {
  scope.log?.warn({ key: scope.target.key, uploadId, s3: failure }, 'fastify-s3-chunk: CompleteMultipartUpload failed, yet S3 had carried it out; the object is stored')
  return stored
}

/**
 * Aborts the upload and checks that it is gone, as S3 advises ("call
 * ListParts and ensure that the parts list is empty"): a request still
 * running in S3 can outlive an abort (and MinIO answers an abort of an
 * unknown upload with success). Gone is NoSuchUpload, or — only right after
 * an abort of ours that S3 answered with success — an empty parts list: that
 * is how SeaweedFS answers for an aborted upload, and S3's own advice for
 * knowing the parts' storage freed. An empty list after an abort that got no
 * answer proves nothing (an upload can exist with no parts yet), and
 * elsewhere (a Complete's answer lost) only NoSuchUpload means gone.
 * Bounded by `retry.attempts` rounds of one abort each. Best effort: a failed
 * abort is logged (a lifecycle rule or abortStaleUploads() reclaims it),
 * never thrown over the failure that caused it.
 */
export async function abortMultipartUpload (scope: AbortScope, uploadId: string): Promise<void> {
  const { client, retry, target } = scope
  let last: S3FailureInfo | undefined
  for (let round = 1; ; round++) {
    // Answered: S3 took the abort in (NoSuchUpload included: already gone). An abort
    // that got no answer proves nothing, and on MinIO ListParts can say 'gone' while
    // a Complete is still running — the upload comes back if that Complete fails.
    let answered = false
    try {
      await client.send(new AbortMultipartUploadCommand({ Bucket: target.bucket, Key: target.key, UploadId: uploadId }))
      answered = true
    } catch (error) {
      answered = isNoSuchUpload(error)
      if (!answered) {
        last = describeS3Error('AbortMultipartUpload', error)
        last.attempts = round
      }
    }
    // 'unknown' (ListParts not allowed, say): an answered abort is trusted.
    if (answered && await uploadState(scope, uploadId, { emptyIsGone: true }) !== 'present') return
    if (round >= retry.attempts) break
    await sleep(backoffDelay(round, retry))
  }
  scope.log?.error({ key: target.key, uploadId, s3: last }, 'fastify-s3-chunk: AbortMultipartUpload did not remove the upload; it remains until a lifecycle rule or abortStaleUploads() reclaims it')
}

/**
 * The ETag S3 gives a multipart object: the MD5 of the parts' binary MD5s,
 * then `-<parts>`. Null when a part's ETag is not an MD5 (SSE-KMS, SSE-C).
 */
export function multipartEtag (partEtags: Array<string | undefined>): string | null {
  const hash = createHash('md5')
  for (const etag of partEtags) {
    const hex = etagValue(etag)
    if (!/^[0-9a-f]{32}$/i.test(hex)) return null
    hash.update(Buffer.from(hex, 'hex'))
  }
  return `${hash.digest('hex')}-${partEtags.length}`
}

interface Expected {
  size: number
  parts: number
  /** Null when it cannot be computed (non-MD5 part ETags). */
  etag: string | null
}

/**
 * The object, when it is the one this upload stores: the same multipart ETag
 * (so the same bytes) and size — or, when the ETag cannot be computed and
 * `sizeAndPartsSuffice`, the same size and part count.
 */
async function storedObject (scope: MultipartScope, expected: Expected, options: { sizeAndPartsSuffice: boolean }): Promise<UploadOutcome | null | 'unknown'> {
  const head = await headLookup(scope.client, scope.target, scope.checksum, scope.retry)
  if (head === 'unknown') return 'unknown'
  if (head === null || head.ContentLength !== expected.size) return null
  const same = expected.etag !== null
    ? etagValue(head.ETag) === expected.etag
    : options.sizeAndPartsSuffice && etagParts(head.ETag) === expected.parts
  return same ? outcomeOf(head, { size: expected.size, parts: expected.parts }, scope.checksum) : null
}

/**
 * After a Complete that failed, possibly with its answer lost (the direct
 * route's, retried by the SDK: a retry then meets NoSuchUpload, or on MinIO
 * InvalidPart while the first is still running): true once the object of
 * these parts (the same multipart ETag, so the same bytes) is at the key.
 * False at once while the upload is still there (it awaits a retry), or when
 * the ETag cannot be computed; a gone upload without the object yet is looked
 * at again for up to `retry.attempts` rounds, waiting out a running Complete.
 */
export async function completedDespiteFailure (scope: AbortScope, uploadId: string, partEtags: Array<string | undefined>): Promise<boolean> {
  const expected = multipartEtag(partEtags)
  if (expected === null) return false
  const { retry } = scope
  for (let round = 1; ; round++) {
    const head = await headLookup(scope.client, scope.target, 'none', retry)
    if (head !== null && head !== 'unknown' && etagValue(head.ETag) === expected) return true
    const state = await uploadState(scope, uploadId)
    if (state === 'present') return false
    if (round >= retry.attempts) {
      // The upload is gone (or unknown) and S3 would not say what is at the key: a Complete of
      // these parts may well have stored it — S3's failure (5xx), never "not completed". "Gone"
      // only when ListParts said so (it may only have been throttled too).
      if (head === 'unknown') throw lookupFailed(state === 'gone' ? 'the upload is gone and the object at its key could not be looked up' : 'neither the upload nor the object at its key could be looked up')
      return false
    }
    await sleep(Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (round - 1)))
  }
}

/**
 * HeadObject, retried like any call of an upload (a missing object, 404, is
 * not retried), with the object's checksum when one is configured; null
 * when S3 cannot say (missing, refused, unreachable).
 */
export async function headOf (client: S3Client, target: Pick<UploadTarget, 'bucket' | 'key' | 'objectParams'>, checksum: ChecksumSetting, retry: RetryPolicy): Promise<HeadObjectCommandOutput | null> {
  const head = await headLookup(client, target, checksum, retry)
  return head === 'unknown' ? null : head
}

/** A commit whose answer was lost, then a look (headLookup) S3 would not answer: whether it stored the object is unknown — S3's failure (502), never "key exists" or "gone". */
export function lookupFailed (message: string): StorageFailure {
  const error = storageFailure({ operation: 'HeadObject', name: 'OutcomeUnknown', code: 'OutcomeUnknown', message, retryable: true })
  // StorageError's own text says "nothing was committed", which here is not known (found in review).
  error.message = 'The file may not have been stored: the storage backend failed, and would not say whether it kept the file'
  return error
}

/**
 * headOf, telling a missing object (null: 404, or 403/400 — none, or not ours to read: no
 * s3:ListBucket, an SSE-C object without its key) from S3 not answering ('unknown': anything
 * else — 5xx, throttled, a 408, no answer) — where "no object" would be acted on (a lost commit
 * answer: found by an attack run; a HEAD carries no error code, so a 408 looked final: review).
 */
export async function headLookup (client: S3Client, target: Pick<UploadTarget, 'bucket' | 'key' | 'objectParams'>, checksum: ChecksumSetting, retry: RetryPolicy): Promise<HeadObjectCommandOutput | null | 'unknown'> {
  try {
    const { value } = await withRetries('HeadObject', retry, async () => await client.send(new HeadObjectCommand({
      Bucket: target.bucket,
      Key: target.key,
      // An SSE-C object answers HeadObject only with its key.
      ...customerKeyOf(target.objectParams),
      ...(checksum !== 'none' ? { ChecksumMode: 'ENABLED' } : {})
    })))
    return value
  } catch (error) {
    const status = failureInfo('HeadObject', error).status
    return status === 404 || status === 403 || status === 400 ? null : 'unknown'
  }
}

type UploadState = 'gone' | 'present' | 'unknown'

/**
 * What ListParts says of the upload: gone (NoSuchUpload; with `emptyIsGone`,
 * also a list of no parts), present, or unknown (any other failure).
 */
export async function uploadState (scope: AbortScope, uploadId: string, options: { emptyIsGone?: boolean } = {}): Promise<UploadState> {
  const { client, target } = scope
  try {
    const listed = await client.send(new ListPartsCommand({ Bucket: target.bucket, Key: target.key, UploadId: uploadId, MaxParts: 1 }))
    if (options.emptyIsGone === true && (listed.Parts ?? []).length === 0 && listed.IsTruncated !== true) return 'gone'
    return 'present'
  } catch (error) {
    return isNoSuchUpload(error) ? 'gone' : 'unknown'
  }
}

/** S3's answer for an upload that does not exist (completed, aborted, or never of that key). */
export function isNoSuchUpload (error: unknown): boolean {
  const info = describeS3Error('ListParts', error)
  return info.code === 'NoSuchUpload' || info.status === 404
}

export function checksumAlgorithm (checksum: ChecksumSetting): { ChecksumAlgorithm?: Exclude<ChecksumSetting, 'none'> } {
  return checksum === 'none' ? {} : { ChecksumAlgorithm: checksum }
}

export function outcomeOf (
  result: { ETag?: string, VersionId?: string, ChecksumCRC32?: string, ChecksumCRC32C?: string, ChecksumSHA256?: string },
  base: { size: number, parts: number },
  algorithm: ChecksumSetting
): UploadOutcome {
  const outcome: UploadOutcome = { ...base, etag: etagValue(result.ETag) }
  if (result.VersionId !== undefined) outcome.versionId = result.VersionId
  const checksum = checksumOf(result, algorithm)
  if (checksum !== undefined) outcome.checksum = checksum
  return outcome
}
