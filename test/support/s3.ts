// Test-side access to the S3 server the runner started (or one started here
// when a test file is run on its own).
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  S3Client,
  UploadPartCommand
} from '@aws-sdk/client-s3'
import { createHash, randomBytes } from 'node:crypto'
import type { Readable } from 'node:stream'
import type { Test } from 'tap'
import { externalS3, externalTlsS3, startS3, type S3Server } from './s3-server.ts'
import { declaredLack } from './store-suites.ts'

type TapLike = Pick<Test, 'teardown' | 'same'>

let serverPromise: Promise<S3Server> | null = null

/** The tests' S3 server: the runner's (S3_ENDPOINT), else one started for this process. */
export async function testS3 (): Promise<S3Server> {
  serverPromise ??= (async () => {
    const external = externalS3()
    if (external !== null) return external
    // Stopped when this process exits (see startMinio).
    return await startS3({ quiet: true })
  })()
  return await serverPromise
}

/** The plugin's `s3` option for the test server. */
export function pluginS3Options (server: S3Server): { region: string, endpoint: string, forcePathStyle: true, credentials: { accessKeyId: string, secretAccessKey: string } } {
  return {
    region: server.region,
    endpoint: server.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey }
  }
}

/** `maxAttempts`: the SDK's attempts per call (its default 3), for a test reading from a degraded cluster. */
export function testClient (server: S3Server, options: { maxAttempts?: number } = {}): S3Client {
  return new S3Client({
    ...pluginS3Options(server),
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    ...options
  })
}

/**
 * Skip reason for a test that needs AWS-like behaviour (AbortMultipartUpload,
 * ListMultipartUploads, part-size checks), or false when the server has it.
 * With S3_REQUIRE_STRICT=1 (CI) a lenient server is an error, never a skip.
 */
export function needsStrictS3 (server: S3Server): false | string {
  if (server.strict) return false
  if (process.env.S3_REQUIRE_STRICT === '1') {
    throw new Error(`S3_REQUIRE_STRICT=1 but the test S3 is ${server.description}`)
  }
  const reason = `needs a strict S3 (MinIO or AWS); running on ${server.kind}`
  console.log(`# skip: ${reason}`)
  return reason
}

/**
 * The S3 over TLS the runner started (S3_TLS_ENDPOINT), for tests that need
 * https (SSE-C), or why there is none: a skip reason, printed — or, with
 * S3_REQUIRE_STRICT=1 (CI), an error, never a skip. It is not started here
 * when a test file runs on its own: the process would have to trust its
 * certificate from its start (NODE_EXTRA_CA_CERTS), which only the runner
 * (test/support/run-tests.ts) or serve-s3's env file can arrange.
 */
export async function testTlsS3 (): Promise<{ server: S3Server, skip: false } | { server: null, skip: string }> {
  const server = externalTlsS3()
  let reason: string | null = null
  if (server === null) {
    reason = 'needs an S3 over TLS (S3_TLS_ENDPOINT): run it through test/support/run-tests.ts, which starts MinIO over TLS'
  } else if (!server.strict) {
    reason = `needs a strict S3 over TLS; running on ${server.kind}`
  } else if (server.caFile !== undefined && process.env.NODE_EXTRA_CA_CERTS !== server.caFile) {
    reason = `this process does not trust ${server.endpoint}: NODE_EXTRA_CA_CERTS must be ${server.caFile} when it starts`
  }
  if (reason === null && server !== null) return { server, skip: false }
  // A store declared to run without TLS (store-suites.ts): a declared skip, accepted by a strict run.
  const declared = declaredLack('tls')
  if (declared !== null) {
    console.log(`# skip: ${declared}`)
    return { server: null, skip: declared }
  }
  if (process.env.S3_REQUIRE_STRICT === '1') throw new Error(`S3_REQUIRE_STRICT=1 but ${reason ?? 'no S3 over TLS'}`)
  console.log(`# skip: ${reason ?? ''}`)
  return { server: null, skip: reason ?? 'no S3 over TLS' }
}

/**
 * The server's KMS key id for SSEKMSKeyId (MinIO's static key name; HeadObject
 * reports it as `arn:aws:kms:<name>`), or a skip reason — an error under
 * S3_REQUIRE_STRICT=1.
 */
export function kmsKeyId (server: S3Server): { keyId: string, skip: false } | { keyId: null, skip: string } {
  if (server.kmsKeyId !== undefined && server.strict) return { keyId: server.kmsKeyId, skip: false }
  // A store declared to lack KMS (store-suites.ts): a declared skip, accepted by a strict run.
  const declared = declaredLack('kms')
  if (declared !== null) {
    console.log(`# skip: ${declared}`)
    return { keyId: null, skip: declared }
  }
  const reason = server.strict
    ? `needs an S3 with a KMS key (S3_KMS_KEY_ID); ${server.description} has none`
    : `needs a strict S3 with a KMS key; running on ${server.kind}`
  if (process.env.S3_REQUIRE_STRICT === '1') throw new Error(`S3_REQUIRE_STRICT=1 but the test ${reason}`)
  console.log(`# skip: ${reason}`)
  return { keyId: null, skip: reason }
}

/**
 * A bucket of its own for one test, emptied and deleted at teardown. Tests end
 * with expectNoPendingUploads() on it.
 */
export async function freshBucket (t: TapLike, server: S3Server, client = testClient(server)): Promise<string> {
  const bucket = `t-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`
  await client.send(new CreateBucketCommand({ Bucket: bucket }))
  t.teardown(async () => {
    if (server.strict) {
      for (const upload of await pendingUploads(client, bucket)) {
        await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.key, UploadId: upload.uploadId }))
      }
    }
    await emptyBucket(client, bucket)
    await client.send(new DeleteBucketCommand({ Bucket: bucket }))
  })
  return bucket
}

/** Asserts ListMultipartUploads on the bucket is empty (on servers that implement it). */
export async function expectNoPendingUploads (t: TapLike, server: S3Server, client: S3Client, bucket: string): Promise<void> {
  if (!server.strict) return
  t.same(await pendingUploads(client, bucket), [], `no multipart upload left pending in ${bucket}`)
}

/** What ListMultipartUploads lists for the bucket, as it lists it. */
export async function pendingUploads (client: S3Client, bucket: string): Promise<Array<{ key: string, uploadId: string }>> {
  const listed = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }))
  return (listed.Uploads ?? []).map((upload) => ({ key: upload.Key ?? '', uploadId: upload.UploadId ?? '' }))
}

/**
 * The listed uploads that still exist, as ListParts confirms them. For tests
 * that cut Complete requests on purpose: MinIO answers a bucket-wide listing
 * from an in-memory cache (cmd/erasure-server-pool.go, mpCache) that keeps an
 * upload whose Complete was cancelled by its connection dying, although
 * nothing of it is left — ListParts and a listing by its key say it does not
 * exist — until its stale-upload expiry (24 h). Everywhere else the plain
 * listing must be empty.
 */
export async function openUploads (client: S3Client, bucket: string): Promise<Array<{ key: string, uploadId: string }>> {
  const open: Array<{ key: string, uploadId: string }> = []
  for (const upload of await pendingUploads(client, bucket)) {
    try {
      await client.send(new ListPartsCommand({ Bucket: bucket, Key: upload.key, UploadId: upload.uploadId, MaxParts: 1 }))
      open.push(upload)
    } catch (error) {
      if ((error as { name?: string }).name !== 'NoSuchUpload') throw error
    }
  }
  return open
}

export async function listKeys (client: S3Client, bucket: string): Promise<string[]> {
  const keys: string[] = []
  let token: string | undefined
  // Bounded: 100 pages of 1,000 keys is far more than any test stores.
  for (let page = 0; page < 100; page++) {
    const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }))
    for (const object of listed.Contents ?? []) keys.push(object.Key ?? '')
    if (listed.IsTruncated !== true || listed.NextContinuationToken === undefined) break
    token = listed.NextContinuationToken
  }
  return keys.sort()
}

async function emptyBucket (client: S3Client, bucket: string): Promise<void> {
  const keys = await listKeys(client, bucket)
  // S3 takes at most 1,000 keys per DeleteObjects.
  for (let at = 0; at < keys.length; at += 1000) {
    await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys.slice(at, at + 1000).map((Key) => ({ Key })) } }))
  }
}

/** SHA-256 and size of a stored object, read as a stream. */
/**
 * The object's SHA-256, size and content type, read back from S3. A read cut
 * mid-body (ECONNRESET "aborted": seen in CI on the distributed MinIO with a
 * node killed) is read again from the start, at most 3 times: the SDK retries
 * a failed request but not a body stream it already handed over, and what a
 * test checks is the stored bytes, not the read path. An S3 error answer
 * (404, 403) is never retried.
 */
export async function objectDigest (client: S3Client, bucket: string, key: string): Promise<{ sha256: string, size: number, contentType: string | undefined }> {
  for (let attempt = 1; ; attempt++) {
    const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
    const hash = createHash('sha256')
    let size = 0
    try {
      for await (const chunk of object.Body as Readable) {
        hash.update(chunk as Buffer)
        size += (chunk as Buffer).byteLength
      }
    } catch (error) {
      if (attempt >= 3) throw error
      await new Promise((resolve) => setTimeout(resolve, 250 * attempt))
      continue
    }
    return { sha256: hash.digest('hex'), size, contentType: object.ContentType }
  }
}

export async function objectExists (client: S3Client, bucket: string, key: string): Promise<boolean> {
  try {
    await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))
    return true
  } catch (error) {
    if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false
    throw error
  }
}

export function sha256 (bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/**
 * How the store answers a second CompleteMultipartUpload of an upload it has
 * finished — S3's documentation allows both answers, and stores differ:
 * 'NoSuchUpload' (MinIO: the upload is gone) or 'completed' (versitygw, moto,
 * SeaweedFS: 200 with the object's ETag again). Measured on the store under
 * test with a one-part upload of one byte, in `bucket`, left as an object.
 */
export async function secondCompleteAnswer (client: S3Client, bucket: string): Promise<'NoSuchUpload' | 'completed'> {
  const Key = `.second-complete-${randomBytes(4).toString('hex')}`
  const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key }))
  const { ETag } = await client.send(new UploadPartCommand({ Bucket: bucket, Key, UploadId, PartNumber: 1, Body: 'x' }))
  const complete = new CompleteMultipartUploadCommand({ Bucket: bucket, Key, UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag }] } })
  const first = await client.send(complete)
  try {
    const second = await client.send(complete)
    if (second.ETag !== first.ETag) throw new Error(`a second Complete answered 200 with another ETag (${String(second.ETag)} ≠ ${String(first.ETag)})`)
    return 'completed'
  } catch (error) {
    if ((error as { name?: string }).name === 'NoSuchUpload') return 'NoSuchUpload'
    throw error
  } finally {
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key }))
  }
}
