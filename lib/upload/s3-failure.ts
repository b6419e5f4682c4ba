import { StorageError } from '../errors.js'
import type { PartMemory } from './part-buffer-pool.js'

/**
 * What is known of a failed S3 request, as plain data: errors crossing a
 * worker-thread boundary lose their class and `$metadata`, so workers send
 * this envelope and the main thread rebuilds the error from it.
 */
export interface S3FailureInfo {
  /** The S3 operation that failed (UploadPart, CompleteMultipartUpload, …). */
  operation: string
  name: string
  message: string
  /** S3 error code (NoSuchUpload, EntityTooSmall, …) or a Node error code (ECONNRESET, …). */
  code?: string
  /** HTTP status of S3's answer, when there was one. */
  status?: number
  retryable: boolean
  requestId?: string
  /** Attempts made before giving up (parts only). */
  attempts?: number
  /** The failures retried before this one (parts only; for telemetry). */
  retried?: RetriedRequest[]
}

/** A failed S3 request that was retried: its error code and request id. */
export interface RetriedRequest {
  /** S3 error code (SlowDown, InternalError, …) or a Node error code (ECONNRESET, …). */
  code: string
  requestId?: string
}

interface SdkErrorShape {
  name?: unknown
  message?: unknown
  code?: unknown
  Code?: unknown
  $retryable?: unknown
  $metadata?: { httpStatusCode?: unknown, requestId?: unknown }
}

const RETRYABLE_NODE_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ECONNABORTED', 'UND_ERR_SOCKET', 'ERR_STREAM_PREMATURE_CLOSE'])
// 4xx answers that say the request, not its content, went wrong: sending the same bytes again can succeed.
// A digest mismatch means the body was corrupted on the way; the buffered part is intact.
const RETRYABLE_S3_CODES = new Set(['RequestTimeout', 'RequestTimeTooSkewed', 'BadDigest', 'XAmzContentSHA256Mismatch', 'XAmzContentChecksumMismatch', 'IncompleteBody', 'SlowDown', 'Throttling', 'ThrottlingException', 'TooManyRequests'])

export function describeS3Error (operation: string, error: unknown): S3FailureInfo {
  const shape = (typeof error === 'object' && error !== null ? error : {}) as SdkErrorShape
  const name = typeof shape.name === 'string' ? shape.name : 'Error'
  const code = typeof shape.Code === 'string' ? shape.Code : typeof shape.code === 'string' ? shape.code : name
  const status = typeof shape.$metadata?.httpStatusCode === 'number' ? shape.$metadata.httpStatusCode : undefined
  const requestId = typeof shape.$metadata?.requestId === 'string' ? shape.$metadata.requestId : undefined
  const retryable = (typeof shape.$retryable === 'object' && shape.$retryable !== null) ||
    (status !== undefined && (status >= 500 || status === 429)) ||
    RETRYABLE_NODE_CODES.has(code) ||
    RETRYABLE_S3_CODES.has(code) ||
    name === 'TimeoutError'
  const info: S3FailureInfo = {
    operation,
    name,
    message: typeof shape.message === 'string' ? shape.message : String(error),
    code,
    retryable
  }
  if (status !== undefined) info.status = status
  if (requestId !== undefined) info.requestId = requestId
  return info
}

/** S3's answer for an object that is not there (GetObject, HeadObject). */
export function isNoSuchKey (info: S3FailureInfo): boolean {
  return info.status === 404 || info.code === 'NoSuchKey'
}

/** The SDK's error when a body does not match the checksum header S3 sent with it (ChecksumMode ENABLED): a plain Error. */
export function isChecksumMismatch (error: unknown): boolean {
  return /^Checksum mismatch/i.test(String((error as { message?: unknown } | null)?.message))
}

/** A StorageError (502) carrying the S3 details for the log; its message stays safe for clients. */
export type StorageFailure = InstanceType<typeof StorageError> & { s3: S3FailureInfo, partBuffer?: PartMemory }

/** `partBuffer`: a failed part's buffer handed back for reuse (not enumerable: never logged). */
export function storageFailure (info: S3FailureInfo, partBuffer?: PartMemory): StorageFailure {
  const error = new StorageError() as StorageFailure
  error.s3 = info
  if (partBuffer !== undefined) Object.defineProperty(error, 'partBuffer', { value: partBuffer, enumerable: false })
  return error
}

export function isStorageFailure (error: unknown): error is StorageFailure {
  return error instanceof StorageError && 's3' in error
}

/** Runs one main-thread S3 call; any failure becomes a StorageFailure. */
export async function s3Call<T> (operation: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (error) {
    throw storageFailure(describeS3Error(operation, error))
  }
}
