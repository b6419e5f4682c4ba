import type { PutObjectCommandInput, PutObjectCommandOutput } from '@aws-sdk/client-s3'
import type { PartMemory } from './part-buffer-pool.js'
import { payloadSigningOf, type ChecksumSetting, type EngineConfig, type PayloadSigning, type RetryPolicy } from '../options.js'
import type { RetriedRequest, S3FailureInfo } from './s3-failure.js'

/** One UploadPart to perform; crosses to a worker thread with `body` transferred. */
export interface PartTask {
  bucket: string
  key: string
  uploadId: string
  partNumber: number
  /**
   * The part's own memory: an ArrayBuffer is transferred to a worker (moved,
   * not copied) and moved back; a SharedArrayBuffer (workers mode's whole
   * parts) is read by the worker in place and never leaves the main thread.
   */
  body: PartMemory
  /** Bytes of `body` that belong to the part (the last part's buffer is not full). */
  length: number
  /** SSE-C: the customer key, sent with every part (S3 needs it on each). */
  sse?: PartEncryption
  /** Credentials resolved on the main thread, when the app gave a provider (a function cannot cross threads). */
  credentials?: { accessKeyId: string, secretAccessKey: string, sessionToken?: string | undefined }
}

/** The SSE-C headers an UploadPart repeats. */
export interface PartEncryption {
  SSECustomerAlgorithm?: string | undefined
  SSECustomerKey?: string | undefined
  SSECustomerKeyMD5?: string | undefined
}

/** How parts are sent: the same for every part of a plugin instance. */
export interface PartPolicy {
  checksum: ChecksumSetting
  /** Read where the part client is made (each worker thread's); default 'signed'. */
  payloadSigning?: PayloadSigning
  retry: RetryPolicy
}

/** The engine's part policy. */
export function partPolicyOf (config: Pick<EngineConfig, 'checksum' | 'payloadSigning' | 'retry'>): PartPolicy {
  return { checksum: config.checksum, payloadSigning: payloadSigningOf(config), retry: config.retry }
}

export interface PartDone {
  etag: string
  /** The part's checksum as S3 computed it (base64), when a checksum is configured. */
  checksum?: string
  /** Attempts it took (1 when the first succeeded). */
  attempts: number
  /** The failures retried on the way, when there were any (for telemetry). */
  retried?: RetriedRequest[]
  /** The part's buffer, handed back (transferred back from a worker, or the shared one) for reuse. */
  body?: PartMemory
}

/** What a worker answers: plain data, since errors lose their class crossing threads. */
export type Envelope<Done> =
  | ({ ok: true } & Done)
  | ({ ok: false, body?: PartMemory } & S3FailureInfo)

export type PartEnvelope = Envelope<PartDone>

/**
 * The one PutObject of a file that fits in one part: sent by the same thread,
 * client and retries as a part, so in workers mode a small file's bytes (and
 * their TLS) stay off the main thread too.
 */
export interface ObjectTask {
  /** PutObject's input but its body: plain data (object settings, content type, checksum fields, the conditional write). */
  input: Omit<PutObjectCommandInput, 'Body' | 'ContentLength'>
  /** The file's memory, moved or shared as a part's is; bytes from offset 0. */
  body: PartMemory
  length: number
  /** Send a CRC32 of the bytes (computed by the sending thread) that S3 checks and keeps. */
  crc32: boolean
  credentials?: PartTask['credentials']
}

/** What S3 answered a PutObject that the plugin keeps. */
export type ObjectStored = Pick<PutObjectCommandOutput, 'ETag' | 'VersionId' | 'ChecksumCRC32' | 'ChecksumCRC32C' | 'ChecksumSHA256'>

export interface ObjectDone {
  stored: ObjectStored
  attempts: number
  retried?: RetriedRequest[]
  /** The file's buffer, handed back. */
  body?: PartMemory
}

/** A worker's answer to an ObjectTask. */
export type ObjectEnvelope = Envelope<ObjectDone>
