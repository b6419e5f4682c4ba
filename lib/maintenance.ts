import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  ListObjectsV2Command,
  GetBucketLifecycleConfigurationCommand,
  ListMultipartUploadsCommand,
  PutBucketCorsCommand,
  PutBucketLifecycleConfigurationCommand,
  type CORSRule,
  type LifecycleRule,
  type S3Client
} from '@aws-sdk/client-s3'
import { createHash } from 'node:crypto'
import { stagingPrefix } from './direct/keys.js'
import { BucketCallError } from './errors.js'
import { describeS3Error, type S3FailureInfo } from './upload/s3-failure.js'

/**
 * The id of the lifecycle rule ensureLifecycleRule() owns for `prefix`: one
 * per prefix, so registrations under different prefixes (or two apps on one
 * bucket) keep each other's rules.
 */
export function lifecycleRuleId (prefix: string): string {
  return ruleId('abort-mpu', prefix)
}

/** The id of the rule that expires staged direct uploads (`<prefix>/.staging/`) never completed. */
export function stagingRuleId (prefix: string): string {
  return ruleId('expire-staged', prefix)
}

// Readable, and unique per prefix (S3 allows 255 characters).
function ruleId (kind: string, prefix: string): string {
  const readable = prefix.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 48)
  const digest = createHash('sha256').update(prefix).digest('hex').slice(0, 12)
  return `fastify-s3-chunk-${kind}-${readable === '' ? 'bucket' : readable}-${digest}`
}

/** A bucket-level S3 error, with the S3 details for the log and a message that names the operation. */
export type BucketCallFailure = InstanceType<typeof BucketCallError> & { s3: S3FailureInfo }

/** Runs one bucket-level call of a maintenance helper; any failure becomes a BucketCallError. */
async function bucketCall<T> (operation: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (error) {
    throw bucketFailure(describeS3Error(operation, error))
  }
}

function bucketFailure (info: S3FailureInfo): BucketCallFailure {
  const error = new BucketCallError(`${info.operation}: ${info.code ?? info.name}`) as BucketCallFailure
  error.s3 = info
  return error
}

export interface StaleUpload {
  key: string
  uploadId: string
  initiated: Date | undefined
}

export interface StaleObject {
  key: string
  lastModified: Date | undefined
}

/**
 * Aborts the multipart uploads under `prefix` that were started more than
 * `olderThan` ms ago: what a crashed process (or a killed one) could not abort.
 * Also deletes the staged direct uploads (`<prefix>/.staging/`) posted more
 * than `olderThan` ms ago and never completed: never checked, never recorded.
 */
export async function abortStaleUploads (client: S3Client, bucket: string, prefix: string, olderThan: number, now = Date.now()): Promise<{ aborted: StaleUpload[], deleted: StaleObject[] }> {
  const aborted: StaleUpload[] = []
  const cutoff = now - olderThan
  let keyMarker: string | undefined
  let uploadIdMarker: string | undefined
  // Bounded: 1,000 pages of 1,000 uploads.
  for (let page = 0; page < 1000; page++) {
    // No Prefix in the request: MinIO lists nothing for a prefix that is not a whole key. Filtered here instead.
    const listed = await bucketCall('ListMultipartUploads', () => client.send(new ListMultipartUploadsCommand({
      Bucket: bucket,
      KeyMarker: keyMarker,
      UploadIdMarker: uploadIdMarker
    })))
    for (const upload of listed.Uploads ?? []) {
      if (upload.Key === undefined || upload.UploadId === undefined) continue
      if (prefix !== '' && !upload.Key.startsWith(`${prefix}/`)) continue
      const initiated = upload.Initiated
      if (initiated !== undefined && initiated.getTime() > cutoff) continue
      await bucketCall('AbortMultipartUpload', () => client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId })))
      aborted.push({ key: upload.Key, uploadId: upload.UploadId, initiated })
    }
    if (listed.IsTruncated !== true) break
    keyMarker = listed.NextKeyMarker
    uploadIdMarker = listed.NextUploadIdMarker
  }
  return { aborted, deleted: await deleteStaleStaged(client, bucket, prefix, cutoff) }
}

async function deleteStaleStaged (client: S3Client, bucket: string, prefix: string, cutoff: number): Promise<StaleObject[]> {
  const deleted: StaleObject[] = []
  let token: string | undefined
  // Bounded: 1,000 pages of 1,000 objects.
  for (let page = 0; page < 1000; page++) {
    const listed = await bucketCall('ListObjectsV2', () => client.send(new ListObjectsV2Command({
      Bucket: bucket,
      Prefix: `${stagingPrefix(prefix)}/`,
      ContinuationToken: token
    })))
    const stale = (listed.Contents ?? []).filter((object) => object.Key !== undefined && (object.LastModified === undefined || object.LastModified.getTime() <= cutoff))
    if (stale.length > 0) {
      const answer = await bucketCall('DeleteObjects', () => client.send(new DeleteObjectsCommand({
        Bucket: bucket,
        Delete: { Objects: stale.map((object) => ({ Key: object.Key as string })), Quiet: true }
      })))
      const failed = new Set((answer.Errors ?? []).map((error) => error.Key))
      for (const object of stale) {
        if (!failed.has(object.Key)) deleted.push({ key: object.Key as string, lastModified: object.LastModified })
      }
    }
    if (listed.IsTruncated !== true || listed.NextContinuationToken === undefined) break
    token = listed.NextContinuationToken
  }
  return deleted
}

/**
 * Adds (or updates) one lifecycle rule that makes S3 itself abort incomplete
 * multipart uploads under `prefix` after `days`: the safety net for uploads
 * no process was left to abort. A second rule expires staged direct uploads
 * (`<prefix>/.staging/`) after `days`: a POST never completed is never
 * checked, so it is deleted. Other rules on the bucket are kept. Returns the
 * first rule (the staging rule's id is stagingRuleId(prefix)).
 */
export async function ensureLifecycleRule (client: S3Client, bucket: string, prefix: string, days: number): Promise<LifecycleRule> {
  let rules: LifecycleRule[] = []
  try {
    const current = await client.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket }))
    rules = current.Rules ?? []
  } catch (error) {
    if ((error as { name?: string }).name !== 'NoSuchLifecycleConfiguration') {
      throw bucketFailure(describeS3Error('GetBucketLifecycleConfiguration', error))
    }
  }
  const rule: LifecycleRule = {
    ID: lifecycleRuleId(prefix),
    Status: 'Enabled',
    Filter: { Prefix: prefix === '' ? '' : `${prefix}/` },
    AbortIncompleteMultipartUpload: { DaysAfterInitiation: days }
  }
  const staging: LifecycleRule = {
    ID: stagingRuleId(prefix),
    Status: 'Enabled',
    Filter: { Prefix: `${stagingPrefix(prefix)}/` },
    Expiration: { Days: days }
  }
  const others = rules.filter((existing) => existing.ID !== rule.ID && existing.ID !== staging.ID)
  await bucketCall('PutBucketLifecycleConfiguration', () => client.send(new PutBucketLifecycleConfigurationCommand({
    Bucket: bucket,
    LifecycleConfiguration: { Rules: [...others, rule, staging] }
  })))
  return rule
}

/**
 * Sets the bucket's CORS rule for browser uploads from `origins`: PUT/POST
 * (and GET/HEAD) allowed, and ETag exposed — without it a browser cannot read
 * a part's ETag and multipart uploads cannot complete.
 */
export async function ensureCors (client: S3Client, bucket: string, origins: string[]): Promise<CORSRule> {
  const rule: CORSRule = {
    ID: 'fastify-s3-chunk-browser-uploads',
    AllowedOrigins: origins,
    AllowedMethods: ['GET', 'HEAD', 'PUT', 'POST'],
    AllowedHeaders: ['*'],
    ExposeHeaders: ['ETag', 'Location'],
    MaxAgeSeconds: 3000
  }
  await bucketCall('PutBucketCors', () => client.send(new PutBucketCorsCommand({ Bucket: bucket, CORSConfiguration: { CORSRules: [rule] } })))
  return rule
}
