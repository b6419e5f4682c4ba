import { createHash } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  ListPartsCommand,
  type CompletedPart,
  type S3Client
} from '@aws-sdk/client-s3'
import type { FastifyBaseLogger } from 'fastify'
import type { ChecksumSetting, RetryPolicy } from '../options.js'
import { etagParts, etagValue } from '../s3-client.js'
import { backoffDelay, checksumOf, failureInfo, withRetries } from './send-part.js'
import { describeS3Error, storageFailure, type S3FailureInfo } from './s3-failure.js'

export interface UploadTarget {
  bucket: string
  key: string
  contentType: string
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
}

export async function createMultipartUpload (scope: MultipartScope): Promise<string> {
  const { client, retry, target } = scope
  try {
    const { value } = await withRetries('CreateMultipartUpload', retry, async () => await client.send(new CreateMultipartUploadCommand({
      Bucket: target.bucket,
      Key: target.key,
      ContentType: target.contentType,
      ...checksumAlgorithm(scope.checksum)
    })))
    if (value.UploadId === undefined) throw new Error('CreateMultipartUpload answered without an UploadId')
    return value.UploadId
  } catch (error) {
    throw storageFailure(failureInfo('CreateMultipartUpload', error))
  }
}

/**
 * Completes the upload, and tells the truth when the answer goes missing. A
 * Complete whose connection dies may have been carried out by S3, or may
 * still be running there — and a second Complete racing the first can fail
 * (MinIO answers InvalidPart). So after a failed attempt the object is looked
 * for (its ETag is known in advance) before trying again; when the Complete
 * is given up, the upload is aborted and the object looked for once more,
 * since a Complete still running in S3 may have won the race.
 */
export async function completeMultipartUpload (scope: MultipartScope, uploadId: string, parts: CompletedPart[], size: number): Promise<UploadOutcome> {
  const { client, retry, target } = scope
  const expected: Expected = { size, parts: parts.length, etag: multipartEtag(parts.map((part) => part.ETag)) }
  let last: S3FailureInfo
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await client.send(new CompleteMultipartUploadCommand({
        Bucket: target.bucket,
        Key: target.key,
        UploadId: uploadId,
        MultipartUpload: { Parts: parts }
      }))
      return outcomeOf(result, { size, parts: parts.length }, scope.checksum)
    } catch (error) {
      last = describeS3Error('CompleteMultipartUpload', error)
      last.attempts = attempt
    }
    if (!last.retryable || attempt >= retry.attempts) break
    await sleep(backoffDelay(attempt, retry))
    const stored = await storedObject(scope, expected)
    if (stored !== null) return stored
  }
  await abortMultipartUpload(scope, uploadId)
  const stored = await storedObject(scope, expected)
  if (stored !== null) {
    scope.log?.warn({ key: target.key, uploadId, s3: last }, 'fastify-s3-chunk: CompleteMultipartUpload failed, yet S3 had carried it out; the object is stored')
    return stored
  }
  throw storageFailure(last)
}

/**
 * Aborts the upload and checks that it is gone (ListParts answers
 * NoSuchUpload), as S3 advises: a request still running in S3 can outlive an
 * abort. Best effort, bounded by `retry.attempts` rounds: a failed abort is
 * logged (a lifecycle rule or abortStaleUploads() reclaims it), never thrown
 * over the failure that caused it.
 */
export async function abortMultipartUpload (scope: MultipartScope, uploadId: string): Promise<void> {
  const { client, retry, target } = scope
  let last: S3FailureInfo | undefined
  for (let round = 1; round <= retry.attempts; round++) {
    try {
      await withRetries('AbortMultipartUpload', retry, async () => await client.send(new AbortMultipartUploadCommand({
        Bucket: target.bucket,
        Key: target.key,
        UploadId: uploadId
      })))
    } catch (error) {
      const info = failureInfo('AbortMultipartUpload', error)
      // Already gone (completed by a Complete whose answer was lost, or aborted): the check below says so.
      if (info.code !== 'NoSuchUpload') last = info
    }
    if (await uploadGone(scope, uploadId)) return
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
  /** Null when it cannot be computed: size and part count are then all that is compared. */
  etag: string | null
}

/** The object, when it is the one this upload would have stored: same ETag (so the same bytes), same size. */
async function storedObject (scope: MultipartScope, expected: Expected): Promise<UploadOutcome | null> {
  const { client, retry, target } = scope
  try {
    const { value: head } = await withRetries('HeadObject', retry, async () => await client.send(new HeadObjectCommand({ Bucket: target.bucket, Key: target.key })))
    if (head.ContentLength !== expected.size) return null
    if (expected.etag !== null ? etagValue(head.ETag) !== expected.etag : etagParts(head.ETag) !== expected.parts) return null
    return outcomeOf(head, { size: expected.size, parts: expected.parts }, scope.checksum)
  } catch {
    return null
  }
}

/**
 * True when the object at `key` is what completing these parts stores (same
 * multipart ETag, so the same bytes): a Complete whose answer was lost was
 * carried out. False when it is not, cannot be told (non-MD5 part ETags), or
 * S3 cannot be asked. For the direct routes, which retry through the SDK.
 */
export async function completedAs (client: S3Client, bucket: string, key: string, partEtags: Array<string | undefined>): Promise<boolean> {
  const expected = multipartEtag(partEtags)
  if (expected === null) return false
  try {
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))
    return etagValue(head.ETag) === expected
  } catch {
    return false
  }
}

/** True when S3 says the upload no longer exists; false when it does, or when S3 could not say. */
async function uploadGone (scope: MultipartScope, uploadId: string): Promise<boolean> {
  const { client, target } = scope
  try {
    await client.send(new ListPartsCommand({ Bucket: target.bucket, Key: target.key, UploadId: uploadId, MaxParts: 1 }))
    return false
  } catch (error) {
    return describeS3Error('ListParts', error).code === 'NoSuchUpload'
  }
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
