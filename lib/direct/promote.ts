import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  UploadPartCopyCommand,
  type ObjectCannedACL,
  type S3Client
} from '@aws-sdk/client-s3'
import type { FastifyBaseLogger } from 'fastify'
import { MAX_PART_SIZE, MAX_PARTS, MiB, type ObjectParams, type RetryPolicy } from '../options.js'
import { abortMultipartUpload, completedDespiteFailure, headLookup, lookupFailed } from '../upload/multipart-calls.js'
import { describeS3Error, storageFailure, type StorageFailure } from '../upload/s3-failure.js'

export interface CopyJob {
  bucket: string
  /** The checked object… */
  source: string
  /** …pinned to the ETag it was checked at: a replacement in between fails the copy (412). */
  sourceEtag: string
  size: number
  /** Where it goes (may be `source` itself: a metadata rewrite). */
  key: string
  contentType: string
  metadata: Record<string, string>
  acl?: ObjectCannedACL | undefined
  /** The rule's object settings for the final object (SSE-C excluded: a browser never holds the key). */
  objectParams?: ObjectParams | undefined
  /** `If-None-Match: *`: never replace an object at `key`. */
  ifNoneMatch: boolean
}

/** What a copy's new object gets: the rule's settings, the checked type, the metadata (the job's names win). */
function settingsOf (job: CopyJob): ObjectParams & { ContentType: string } {
  return {
    ...job.objectParams,
    ...(job.objectParams?.Tagging !== undefined ? { TaggingDirective: 'REPLACE' as const } : {}),
    ContentType: job.contentType,
    Metadata: { ...job.objectParams?.Metadata, ...job.metadata },
    ...(job.acl !== undefined ? { ACL: job.acl } : {})
  }
}

export interface CopyOptions {
  client: S3Client
  retry: RetryPolicy
  log?: FastifyBaseLogger
  /** Largest object copied with one CopyObject (S3: 5 GiB); larger ones are copied part by part. */
  copyLimit?: number
  /** Bytes per UploadPartCopy (grown to fit 10,000 parts). */
  partSize?: number
  /** UploadPartCopy requests in flight. */
  concurrency?: number
}

export interface Copied {
  etag: string | undefined
  versionId: string | undefined
  /** 0 for a single CopyObject. */
  parts: number
}

const DEFAULT_COPY_PART = 256 * MiB
const DEFAULT_COPY_CONCURRENCY = 8

/**
 * A server-side copy with the type and metadata replaced: one CopyObject up
 * to 5 GiB, a multipart copy (UploadPartCopy, parts in parallel) above. Every
 * read of the source is pinned to its checked ETag; the write is conditional
 * when `ifNoneMatch`. A failure is a StorageFailure whose `s3.status` is 412
 * when a condition did not hold; a multipart copy that fails is aborted.
 */
export async function copyChecked (job: CopyJob, options: CopyOptions): Promise<Copied> {
  const limit = options.copyLimit ?? MAX_PART_SIZE
  return job.size <= limit ? await singleCopy(job, options) : await multipartCopy(job, options)
}

async function singleCopy (job: CopyJob, { client, retry, log }: CopyOptions): Promise<Copied> {
  try {
    const copied = await client.send(new CopyObjectCommand({
      Bucket: job.bucket,
      Key: job.key,
      CopySource: copySource(job.bucket, job.source),
      CopySourceIfMatch: job.sourceEtag,
      MetadataDirective: 'REPLACE',
      ...settingsOf(job),
      ...(job.ifNoneMatch ? { IfNoneMatch: '*' } : {})
    }))
    return { etag: copied.CopyObjectResult?.ETag, versionId: copied.VersionId, parts: 0 }
  } catch (error) {
    const failure = describeS3Error('CopyObject', error)
    // The SDK retried a copy whose answer was lost, and the retry met the first attempt's
    // work: the copy's own object (If-None-Match: 412), or — a rewrite in place — the
    // source's ETag the first attempt changed (CopySourceIfMatch: 412; that was 502 "nothing
    // committed" for a completed direct upload, and its retry 403: found in review,
    // helper-53). The object at the key says so. Only after a retry — a first attempt's 412
    // is another object's, or a source replaced after its check.
    const attempts = (error as { $metadata?: { attempts?: number } }).$metadata?.attempts ?? 1
    if (failure.status === 412 && (job.ifNoneMatch || job.source === job.key) && attempts > 1) {
      const landed = await ownCopy(client, job, retry)
      // S3 would not answer the look: the copy may well be there. Not "not ours" — the caller
      // then found the key taken, answered 409 for the upload's own object and deleted the staged
      // one (found in review, helper-53) — but S3's failure (502, retryable), nothing deleted.
      if (landed === 'unknown') throw lookupFailed('the copy\'s answer was lost and the object at its key could not be looked up')
      if (landed !== null) {
        log?.warn({ key: job.key, s3: failure }, 'fastify-s3-chunk: CopyObject failed after a retry, yet the first attempt had copied the object')
        return landed
      }
    }
    throw storageFailure(failure)
  }
}

/**
 * The object at the job's key when it is the job's copy: its size, type and metadata, and — a
 * copy to another key — the source's ETag (a single-part copy keeps the MD5). A rewrite in place
 * gets a new ETag (a multipart object's becomes a single MD5), so there the job's type and
 * metadata, which the object did not carry before (why it is rewritten), are the evidence. Null
 * when it is not (or there is none); 'unknown' when S3 would not say (throttled, failing:
 * headLookup, retried by the plugin's policy).
 */
async function ownCopy (client: S3Client, job: CopyJob, retry: RetryPolicy): Promise<Copied | null | 'unknown'> {
  const head = await headLookup(client, { bucket: job.bucket, key: job.key }, 'none', retry)
  if (head === null || head === 'unknown') return head
  const same = (job.source === job.key || head.ETag === job.sourceEtag) &&
    head.ContentLength === job.size && head.ContentType === job.contentType &&
    JSON.stringify(sorted(head.Metadata ?? {})) === JSON.stringify(sorted(settingsOf(job).Metadata ?? {}))
  return same ? { etag: head.ETag, versionId: head.VersionId, parts: 0 } : null
}

function sorted (record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => a.localeCompare(b)))
}

async function multipartCopy (job: CopyJob, options: CopyOptions): Promise<Copied> {
  const { client } = options
  const partSize = Math.max(options.partSize ?? DEFAULT_COPY_PART, Math.ceil(job.size / MAX_PARTS / MiB) * MiB)
  const count = Math.max(1, Math.ceil(job.size / partSize))
  let uploadId: string | undefined
  try {
    const created = await client.send(new CreateMultipartUploadCommand({
      Bucket: job.bucket,
      Key: job.key,
      ...settingsOf(job)
    }))
    uploadId = created.UploadId
  } catch (error) {
    throw storageFailure(describeS3Error('CreateMultipartUpload', error))
  }
  if (uploadId === undefined) throw storageFailure({ operation: 'CreateMultipartUpload', name: 'Error', message: 'no UploadId', retryable: false })
  const scope = { client, retry: options.retry, target: { bucket: job.bucket, key: job.key }, log: options.log }
  const etags: string[] = new Array<string>(count)
  let failure: StorageFailure | undefined
  let next = 0
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < count) {
      const index = next++
      const start = index * partSize
      const end = Math.min(job.size, start + partSize) - 1
      try {
        const part = await client.send(new UploadPartCopyCommand({
          Bucket: job.bucket,
          Key: job.key,
          UploadId: uploadId,
          PartNumber: index + 1,
          CopySource: copySource(job.bucket, job.source),
          CopySourceIfMatch: job.sourceEtag,
          CopySourceRange: `bytes=${start}-${end}`
        }))
        etags[index] = part.CopyPartResult?.ETag ?? ''
      } catch (error) {
        failure ??= storageFailure(describeS3Error('UploadPartCopy', error))
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(count, options.concurrency ?? DEFAULT_COPY_CONCURRENCY) }, worker))
  if (failure !== undefined) {
    await abortMultipartUpload(scope, uploadId)
    throw failure
  }
  const parts = etags.map((ETag, index) => ({ PartNumber: index + 1, ETag }))
  try {
    const completed = await client.send(new CompleteMultipartUploadCommand({
      Bucket: job.bucket,
      Key: job.key,
      UploadId: uploadId,
      MultipartUpload: { Parts: parts },
      ...(job.ifNoneMatch ? { IfNoneMatch: '*' } : {})
    }))
    return { etag: completed.ETag, versionId: completed.VersionId, parts: count }
  } catch (error) {
    // An answer lost after S3 completed: the object of these parts says so (not
    // after a 412: an earlier copy of the same bytes would look the same).
    const failed = describeS3Error('CompleteMultipartUpload', error)
    try {
      if (failed.status !== 412 && await completedDespiteFailure(scope, uploadId, etags)) return { etag: undefined, versionId: undefined, parts: count }
    } finally {
      // Aborted whatever the look-up says, and also when it throws (S3 would not say what is at
      // the key: OutcomeUnknown): that skipped the abort and left the copy's upload open, a whole
      // copy of the object's bytes (found in review, helper-53). Aborting a completed upload is
      // harmless (NoSuchUpload), and the abort waits out a Complete still running.
      await abortMultipartUpload(scope, uploadId)
    }
    throw storageFailure(failed)
  }
}

/** `x-amz-copy-source`: the bucket and the key, URL-encoded segment by segment. */
function copySource (bucket: string, key: string): string {
  return `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`
}
