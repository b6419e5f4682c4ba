import { setTimeout as sleep } from 'node:timers/promises'
import { PutObjectCommand, UploadPartCommand, type S3Client, type UploadPartCommandOutput } from '@aws-sdk/client-s3'
import { crc32 } from '../crc32.js'
import type { ChecksumSetting, RetryPolicy } from '../options.js'
import type { ObjectDone, ObjectTask, PartDone, PartPolicy, PartTask } from './part-task.js'
import { describeS3Error, type RetriedRequest, type S3FailureInfo } from './s3-failure.js'

/** A request that failed for good: after its last attempt, or at once when not retryable. */
export class PartFailure extends Error {
  readonly info: S3FailureInfo
  constructor (info: S3FailureInfo) {
    super(info.message)
    this.name = 'PartFailure'
    this.info = info
  }
}

/** What is known of a failed send: the last attempt's details, or the error itself described. */
export function failureInfo (operation: string, error: unknown): S3FailureInfo {
  return error instanceof PartFailure ? error.info : describeS3Error(operation, error)
}

/**
 * Runs one S3 request, retrying retryable failures (5xx, throttling, resets,
 * timeouts, a body corrupted in transit) with exponential backoff and full
 * jitter; a 4xx fails at once. `beforeRetry`, after each backoff, can call
 * the retries off (the request may have been carried out). Throws a
 * PartFailure with what is known of the last failure.
 */
export async function withRetries<T> (
  operation: string,
  retry: RetryPolicy,
  call: () => Promise<T>,
  beforeRetry?: () => Promise<boolean>,
  onRetry?: (info: S3FailureInfo) => void
): Promise<{ value: T, attempts: number }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return { value: await call(), attempts: attempt }
    } catch (error) {
      const info = describeS3Error(operation, error)
      info.attempts = attempt
      if (!info.retryable || attempt >= retry.attempts) throw new PartFailure(info)
      onRetry?.(info)
      await sleep(backoffDelay(attempt, retry))
      if (beforeRetry !== undefined && !await beforeRetry()) throw new PartFailure(info)
    }
  }
}

/** Sends one part with retries, re-sending the same buffered bytes. Shared by the inline sender and the worker threads. */
export async function sendPartWithRetries (client: S3Client, task: PartTask, policy: PartPolicy): Promise<PartDone> {
  // The failures retried go back with the answer (plain data, from a thread too): telemetry counts them by code.
  let retried: RetriedRequest[] | undefined
  const onRetry = (info: S3FailureInfo): void => {
    (retried ??= []).push(info.requestId !== undefined ? { code: info.code ?? info.name, requestId: info.requestId } : { code: info.code ?? info.name })
  }
  try {
    const { value, attempts } = await withRetries('UploadPart', policy.retry, async () => await sendPart(client, task, policy.checksum), undefined, onRetry)
    return retried !== undefined ? { ...value, attempts, retried } : { ...value, attempts }
  } catch (error) {
    if (error instanceof PartFailure && retried !== undefined) error.info.retried = retried
    throw error
  }
}

/** Sends a one-part file as one PutObject with retries, re-sending the same buffered bytes. Shared by the inline sender and the worker threads. */
export async function putObjectWithRetries (client: S3Client, task: ObjectTask, policy: PartPolicy): Promise<ObjectDone> {
  let retried: RetriedRequest[] | undefined
  const onRetry = (info: S3FailureInfo): void => {
    (retried ??= []).push(info.requestId !== undefined ? { code: info.code ?? info.name, requestId: info.requestId } : { code: info.code ?? info.name })
  }
  const body = new Uint8Array(task.body, 0, task.length)
  // Computed once, here, where the bytes are read anyway: the same value on every attempt.
  const input = task.crc32 ? { ...task.input, ChecksumCRC32: crc32Base64(body) } : task.input
  try {
    const { value, attempts } = await withRetries('PutObject', policy.retry, async () => {
      const { ETag, VersionId, ChecksumCRC32, ChecksumCRC32C, ChecksumSHA256 } = await client.send(new PutObjectCommand({ ...input, Body: body, ContentLength: task.length }))
      return { ETag, VersionId, ChecksumCRC32, ChecksumCRC32C, ChecksumSHA256 }
    }, undefined, onRetry)
    return retried !== undefined ? { stored: value, attempts, retried } : { stored: value, attempts }
  } catch (error) {
    if (error instanceof PartFailure && retried !== undefined) error.info.retried = retried
    throw error
  }
}

/** Full-jitter exponential backoff: uniform in [0, min(max, base × 2^(attempt-1))]. */
export function backoffDelay (attempt: number, retry: RetryPolicy, random = Math.random): number {
  const ceiling = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempt - 1))
  return Math.floor(random() * ceiling)
}

async function sendPart (client: S3Client, task: PartTask, checksum: ChecksumSetting): Promise<Omit<PartDone, 'attempts'>> {
  const body = new Uint8Array(task.body, 0, task.length)
  const result = await client.send(new UploadPartCommand({
    Bucket: task.bucket,
    Key: task.key,
    UploadId: task.uploadId,
    PartNumber: task.partNumber,
    Body: body,
    ContentLength: task.length,
    ...task.sse,
    // Computed here (in the worker) and verified by S3. CRC32 we compute ourselves
    // (../crc32.ts: native, else zlib), so the SDK never hashes the part (it skips a checksum already given);
    // the others the SDK computes.
    ...(checksum === 'CRC32' ? { ChecksumCRC32: crc32Base64(body) } : checksum !== 'none' ? { ChecksumAlgorithm: checksum } : {})
  }))
  if (result.ETag === undefined) throw Object.assign(new Error('UploadPart answered without an ETag'), { name: 'MissingETag' })
  const done: Omit<PartDone, 'attempts'> = { etag: result.ETag }
  const partChecksum = checksumOf(result, checksum)
  if (partChecksum !== undefined) done.checksum = partChecksum
  return done
}

/** The response field that carries the configured checksum. */
export function checksumOf (result: Pick<UploadPartCommandOutput, 'ChecksumCRC32' | 'ChecksumCRC32C' | 'ChecksumSHA256'>, checksum: ChecksumSetting): string | undefined {
  switch (checksum) {
    case 'CRC32': return result.ChecksumCRC32
    case 'CRC32C': return result.ChecksumCRC32C
    case 'SHA256': return result.ChecksumSHA256
    default: return undefined
  }
}

/** CRC32 of bytes as S3 writes it: 4 big-endian bytes, base64. */
export function crc32Base64 (bytes: Uint8Array): string {
  return checksumBase64(crc32(bytes))
}

/** A 32-bit checksum as S3 writes it: 4 big-endian bytes, base64. */
export function checksumBase64 (value: number): string {
  const bytes = Buffer.alloc(4)
  bytes.writeUInt32BE(value)
  return bytes.toString('base64')
}
