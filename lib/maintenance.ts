import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
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
import { heldAt, tailOwner, tusPrefix, type TusState } from './tus/state.js'
import { describeS3Error, isChecksumMismatch, isNoSuchKey, type S3FailureInfo } from './upload/s3-failure.js'
import { isNoSuchUpload } from './upload/multipart-calls.js'

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

/** The id of the rule that expires tus state and tail objects (`<prefix>/.tus/`) left untouched. */
export function tusRuleId (prefix: string): string {
  return ruleId('expire-tus', prefix)
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
export async function abortStaleUploads (client: S3Client, bucket: string, prefixOrPrefixes: string | string[], olderThan: number, { now = Date.now(), spareFrom = [] }: SweepOptions = {}): Promise<{ aborted: StaleUpload[], deleted: StaleObject[] }> {
  const cutoff = now - olderThan
  const prefixes = prefixList(prefixOrPrefixes)
  // tus uploads first, under every prefix: expired ones are aborted and their state removed; live
  // ones are spared below, whatever their age — also by a prefix that contains theirs ('' holds 'a/').
  const tus = { aborted: [] as StaleUpload[], deleted: [] as StaleObject[], live: noLiveTus() }
  for (const prefix of prefixes) {
    const swept = await sweepTus(client, bucket, prefix, cutoff, now)
    tus.aborted.push(...swept.aborted)
    tus.deleted.push(...swept.deleted)
    addLiveTus(tus.live, swept.live)
  }
  const tusAborted = new Set(tus.aborted.map((upload) => upload.uploadId))
  const candidates: StaleUpload[] = []
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
      if (!prefixes.some((prefix) => prefix === '' || upload.Key?.startsWith(`${prefix}/`) === true)) continue
      const initiated = upload.Initiated
      if (initiated !== undefined && initiated.getTime() > cutoff) continue
      if (tusAborted.has(upload.UploadId)) continue
      candidates.push({ key: upload.Key, uploadId: upload.UploadId, initiated })
    }
    if (listed.IsTruncated !== true) break
    keyMarker = listed.NextKeyMarker
    uploadIdMarker = listed.NextUploadIdMarker
  }
  // A stale-looking upload may be a live tus upload of another registration of the app whose
  // keyPrefix lies below these (a nested scope's) or above them (an outer scope's key can land
  // under a nested prefix: found in review): its states are read, never swept.
  if (candidates.length > 0) {
    const within = (inner: string, outer: string): boolean => outer === '' || inner.startsWith(`${outer}/`)
    const overlapping = [...new Set(spareFrom)].filter((other) => !prefixes.includes(other) && prefixes.some((prefix) => within(other, prefix) || within(prefix, other)))
    for (const other of overlapping) addLiveTus(tus.live, await liveTusUnder(client, bucket, other, now))
  }
  const aborted: StaleUpload[] = [...tus.aborted]
  for (const upload of candidates) {
    if (isLiveTusUpload(tus.live, upload)) continue
    if (await abortUpload(client, bucket, upload.key, upload.uploadId)) aborted.push(upload)
  }
  const staged: StaleObject[] = []
  for (const prefix of prefixes) staged.push(...await deleteStaleStaged(client, bucket, prefix, cutoff))
  return { aborted, deleted: [...tus.deleted, ...staged] }
}

/** Where a plugin scope's uploads go: a bucket and a key prefix ('' for the whole bucket). */
export interface UploadLocation { bucket: string, prefix: string }

/** A sweep that could not reach every bucket: the first failed bucket's error, with what the sweep did elsewhere. */
export interface SweepFailure extends Error {
  /** What was aborted and deleted in the buckets that could be swept. */
  swept: { aborted: StaleUpload[], deleted: StaleObject[] }
  /** Every bucket that could not be swept, with its error (a BucketCallError, with `s3`, for an S3 failure). */
  failedBuckets: Array<{ bucket: string, error: unknown }>
}

/**
 * abortStaleUploads over several locations: each bucket once, with all of its prefixes;
 * `spareFrom`: the app's other locations. A bucket that fails (deleted, access denied) does not
 * stop the others (what a crash left in the buckets after it stayed open on every run): each
 * is swept, then the first failure is thrown as a SweepFailure.
 */
export async function abortStaleUploadsAt (client: S3Client, locations: UploadLocation[], olderThan: number, { now = Date.now(), spareFrom = [] }: { now?: number, spareFrom?: UploadLocation[] } = {}): Promise<{ aborted: StaleUpload[], deleted: StaleObject[] }> {
  const result = { aborted: [] as StaleUpload[], deleted: [] as StaleObject[] }
  const failedBuckets: SweepFailure['failedBuckets'] = []
  for (const [bucket, prefixes] of byBucket(locations)) {
    const others = spareFrom.filter((location) => location.bucket === bucket).map((location) => location.prefix)
    try {
      const swept = await abortStaleUploads(client, bucket, prefixes, olderThan, { now, spareFrom: others })
      result.aborted.push(...swept.aborted)
      result.deleted.push(...swept.deleted)
    } catch (error) {
      failedBuckets.push({ bucket, error })
    }
  }
  const first = failedBuckets[0]
  if (first === undefined) return result
  const failure = (first.error instanceof Error ? first.error : new Error(String(first.error))) as SweepFailure
  throw Object.assign(failure, { swept: result, failedBuckets })
}

/** ensureLifecycleRule over several locations: each bucket's rules written once; the first location's rule is returned. */
export async function ensureLifecycleRulesAt (client: S3Client, locations: UploadLocation[], days: number): Promise<LifecycleRule> {
  let first: LifecycleRule | undefined
  for (const [bucket, prefixes] of byBucket(locations)) {
    const rule = await ensureLifecycleRule(client, bucket, prefixes, days)
    first ??= rule
  }
  return first as LifecycleRule
}

/** One prefix or several, each once. */
function prefixList (prefixOrPrefixes: string | string[]): string[] {
  return [...new Set(typeof prefixOrPrefixes === 'string' ? [prefixOrPrefixes] : prefixOrPrefixes)]
}

function byBucket (locations: UploadLocation[]): Map<string, string[]> {
  const buckets = new Map<string, string[]>()
  for (const { bucket, prefix } of locations) {
    const prefixes = buckets.get(bucket) ?? []
    if (!prefixes.includes(prefix)) prefixes.push(prefix)
    buckets.set(bucket, prefixes)
  }
  return buckets
}

/**
 * The tus uploads under `<prefix>/.tus/`: each expired one (Upload-Expires
 * passed, or terminated by a DELETE that did not finish) has its multipart upload aborted and its state and tail objects
 * deleted; a tail object whose upload has no state any more is deleted once
 * older than the cutoff. Returns the live uploads (their multipart uploads' ids and keys, spared by the
 * age-based abort: a tus upload may rightly run for longer).
 */
async function sweepTus (client: S3Client, bucket: string, prefix: string, cutoff: number, now: number): Promise<{ aborted: StaleUpload[], deleted: StaleObject[], live: LiveTus }> {
  const aborted: StaleUpload[] = []
  const live = noLiveTus()
  const objects = await tusObjects(client, bucket, prefix)
  const states = new Set<string>()
  const doomed: StaleObject[] = []
  for (const object of objects) {
    if (tailOwner(prefix, object.key) !== null) continue
    states.add(object.key)
    const state = await readTusState(client, bucket, object.key)
    if (state === null) continue
    if (isLive(state, now)) {
      addLiveState(live, state, now)
      continue
    }
    if (state.uploadId !== undefined && await abortUpload(client, bucket, state.key, state.uploadId)) {
      aborted.push({ key: state.key, uploadId: state.uploadId, initiated: undefined })
    }
    doomed.push({ key: object.key, lastModified: object.lastModified })
    states.delete(object.key)
  }
  const doomedStates = new Set(doomed.map((state) => state.key))
  for (const object of objects) {
    const owner = tailOwner(prefix, object.key)
    if (owner === null) continue
    const orphan = !states.has(owner) && (object.lastModified === undefined || object.lastModified.getTime() <= cutoff)
    if (orphan || doomedStates.has(owner)) doomed.push(object)
  }
  return { aborted, deleted: await deleteObjects(client, bucket, doomed), live }
}

/**
 * Aborts one multipart upload: true when this call aborted it, false when it was gone already
 * (NoSuchUpload: aborted by a DELETE whose cleanup then failed, by the lifecycle rule, or by
 * another instance sweeping at the same time) — never a reason to stop the sweep.
 */
async function abortUpload (client: S3Client, bucket: string, key: string, uploadId: string): Promise<boolean> {
  try {
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }))
    return true
  } catch (error) {
    if (isNoSuchUpload(error)) return false
    throw bucketFailure(describeS3Error('AbortMultipartUpload', error))
  }
}

/** abortStaleUploads()'s options: the time it takes as now, and the app's other prefixes in the bucket, whose live tus uploads it spares. */
export interface SweepOptions { now?: number, spareFrom?: string[] }

/**
 * What the sweep knows of live tus uploads: the multipart uploads their states name, and the
 * keys of those a request holds whose state names none — the PATCH holding it may have made one
 * it has not recorded yet (the finishing mark is the state as before that PATCH). Only those:
 * an idle upload's key sparing any upload there would let a tus upload keep an app-chosen key's
 * stale upload forever (found in review).
 */
interface LiveTus { ids: Set<string>, keys: Set<string> }

const noLiveTus = (): LiveTus => ({ ids: new Set(), keys: new Set() })

function addLiveTus (into: LiveTus, from: LiveTus): void {
  for (const id of from.ids) into.ids.add(id)
  for (const key of from.keys) into.keys.add(key)
}

function addLiveState (into: LiveTus, state: TusState, now: number): void {
  if (state.uploadId !== undefined) into.ids.add(state.uploadId)
  else if (heldAt(state, now)) into.keys.add(state.key)
}

function isLiveTusUpload (live: LiveTus, upload: StaleUpload): boolean {
  return live.ids.has(upload.uploadId) || live.keys.has(upload.key)
}

/**
 * A terminated upload is over whatever its expiry (its DELETE stopped before the cleanup); one a
 * request holds is live whatever its expiry (a PATCH longer than expiresIn).
 */
function isLive (state: TusState, now: number): boolean {
  return (state.expires > now || heldAt(state, now)) && state.terminated !== true
}

/** The objects under `<prefix>/.tus/`: states and tails. */
async function tusObjects (client: S3Client, bucket: string, prefix: string): Promise<StaleObject[]> {
  const objects: StaleObject[] = []
  let token: string | undefined
  // Bounded: 1,000 pages of 1,000 objects.
  for (let page = 0; page < 1000; page++) {
    const listed = await bucketCall('ListObjectsV2', () => client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${tusPrefix(prefix)}/`, ContinuationToken: token })))
    for (const object of listed.Contents ?? []) if (object.Key !== undefined) objects.push({ key: object.Key, lastModified: object.LastModified })
    if (listed.IsTruncated !== true || listed.NextContinuationToken === undefined) break
    token = listed.NextContinuationToken
  }
  return objects
}

/**
 * A state object's content; null when it is gone (finished or removed since the listing) or is
 * not JSON as stored (left as it is). Any other failure stops this bucket's sweep: a state S3
 * would not give (throttling, a 5xx, a body cut off) says nothing of whether its upload is live,
 * and skipping it left that upload's multipart upload to the age-based abort — a live tus upload
 * killed by one SlowDown (found by an attack run, helper-47), or by one byte changed on the way
 * that made the state "not JSON" (helper-49), or changed its uploadId. So the CRC32 a state is
 * written with is asked for (the SDK checks it); a state without one (`checksum: 'none'`) is
 * read twice, and believed only when both reads agree. A live upload's state changes as its
 * PATCH renews its hold: reads that disagree, or a body that fails its checksum (read as it was
 * rewritten, on versitygw), are tried again — five times — before the bucket's sweep fails
 * (a busy bucket failed most sweeps: found in review, helper-51).
 */
async function readTusState (client: S3Client, bucket: string, key: string): Promise<TusState | null> {
  for (let attempt = 1; attempt <= 5; attempt++) {
    const first = await readStateText(client, bucket, key)
    if (first === null) return null
    if (first !== 'corrupt') {
      if (first.verified) return parseState(first.text)
      const second = await readStateText(client, bucket, key)
      if (second === null) return null
      if (second !== 'corrupt' && second.text === first.text) return parseState(first.text)
    }
    await new Promise((resolve) => setTimeout(resolve, 10 * attempt))
  }
  throw bucketFailure({ operation: 'GetObject', name: 'StateUnreadable', code: 'StateUnreadable', message: `the tus state ${key} never came back the same twice`, retryable: true })
}

/** A state object's bytes as text (null: none there; 'corrupt': they failed their checksum); `verified`: checked against a checksum S3 keeps. */
async function readStateText (client: S3Client, bucket: string, key: string): Promise<{ text: string, verified: boolean } | null | 'corrupt'> {
  try {
    const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: 'ENABLED' }))
    const text = await answer.Body?.transformToString() ?? ''
    // A whole-object checksum the SDK checks (CRC64NVME, AWS's default, it may not).
    const verified = [answer.ChecksumCRC32, answer.ChecksumCRC32C, answer.ChecksumSHA1, answer.ChecksumSHA256].some((value) => value !== undefined && !value.includes('-'))
    return { text, verified }
  } catch (error) {
    if (isChecksumMismatch(error)) return 'corrupt'
    const info = describeS3Error('GetObject', error)
    if (isNoSuchKey(info)) return null
    throw bucketFailure(info)
  }
}

function parseState (text: string): TusState | null {
  try {
    return JSON.parse(text) as TusState
  } catch {
    return null
  }
}

/** The live tus uploads under `<prefix>/.tus/` of a registration this sweep does not own: only read, never swept. */
async function liveTusUnder (client: S3Client, bucket: string, prefix: string, now: number): Promise<LiveTus> {
  const live = noLiveTus()
  for (const object of await tusObjects(client, bucket, prefix)) {
    if (tailOwner(prefix, object.key) !== null) continue
    const state = await readTusState(client, bucket, object.key)
    if (state !== null && isLive(state, now)) addLiveState(live, state, now)
  }
  return live
}

/** S3 takes at most 1,000 keys per DeleteObjects (more and the whole call is refused). */
const DELETE_BATCH = 1000

/** Deletes the objects, 1,000 per call; returns those S3 did not report an error for. */
async function deleteObjects (client: S3Client, bucket: string, objects: StaleObject[]): Promise<StaleObject[]> {
  const deleted: StaleObject[] = []
  for (let at = 0; at < objects.length; at += DELETE_BATCH) {
    const batch = objects.slice(at, at + DELETE_BATCH)
    const answer = await bucketCall('DeleteObjects', () => client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: batch.map((object) => ({ Key: object.key })), Quiet: true } })))
    const failed = new Set((answer.Errors ?? []).map((error) => error.Key))
    for (const object of batch) if (!failed.has(object.key)) deleted.push(object)
  }
  return deleted
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
    deleted.push(...await deleteObjects(client, bucket, stale.map((object) => ({ key: object.Key as string, lastModified: object.LastModified }))))
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
export async function ensureLifecycleRule (client: S3Client, bucket: string, prefixOrPrefixes: string | string[], days: number): Promise<LifecycleRule> {
  const prefixes = prefixList(prefixOrPrefixes)
  let rules: LifecycleRule[] = []
  try {
    const current = await client.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket }))
    rules = current.Rules ?? []
  } catch (error) {
    if ((error as { name?: string }).name !== 'NoSuchLifecycleConfiguration') {
      throw bucketFailure(describeS3Error('GetBucketLifecycleConfiguration', error))
    }
  }
  const ours = prefixes.flatMap((prefix) => [
    {
      ID: lifecycleRuleId(prefix),
      Status: 'Enabled',
      Filter: { Prefix: prefix === '' ? '' : `${prefix}/` },
      AbortIncompleteMultipartUpload: { DaysAfterInitiation: days }
    },
    {
      ID: stagingRuleId(prefix),
      Status: 'Enabled',
      Filter: { Prefix: `${stagingPrefix(prefix)}/` },
      Expiration: { Days: days },
      // On a versioned bucket a delete (the sweep's, a promotion's) leaves the bytes as a noncurrent version.
      NoncurrentVersionExpiration: { NoncurrentDays: days }
    },
    // tus state and tail objects are rewritten by every PATCH: one untouched for `days` belongs to an upload long expired.
    {
      ID: tusRuleId(prefix),
      Status: 'Enabled',
      Filter: { Prefix: `${tusPrefix(prefix)}/` },
      Expiration: { Days: days },
      NoncurrentVersionExpiration: { NoncurrentDays: days }
    }
  ] satisfies LifecycleRule[])
  const ids = new Set(ours.map((rule) => rule.ID))
  const others = rules.filter((existing) => !ids.has(existing.ID ?? ''))
  await bucketCall('PutBucketLifecycleConfiguration', () => client.send(new PutBucketLifecycleConfigurationCommand({
    Bucket: bucket,
    LifecycleConfiguration: { Rules: [...others, ...ours] }
  })))
  return ours[0] as LifecycleRule
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
