// What an S3 store does with each S3 feature the plugin relies on — the
// figures behind the README's compatibility table, measured, not recalled.
// `S3_SERVER=versitygw npx tsx test/support/probe-s3.ts` (or MinIO by
// default, or any store named by S3_ENDPOINT + credentials); prints one line
// per feature: what was sent, what came back. It creates and deletes its own
// bucket; it asserts nothing (the suite does that): it reports.
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetBucketCorsCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutBucketCorsCommand,
  PutBucketLifecycleConfigurationCommand,
  PutObjectCommand,
  UploadPartCommand
} from '@aws-sdk/client-s3'
import { createPresignedPost } from '@aws-sdk/s3-presigned-post'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { createHash, randomBytes } from 'node:crypto'
import { startS3 } from './s3-server.ts'
import { testClient } from './s3.ts'

const MiB = 1024 * 1024
const server = await startS3({ quiet: true })
const client = testClient(server)
const bucket = `probe-${randomBytes(4).toString('hex')}`
const results: Array<[string, string]> = []

function answer (error: unknown): string {
  const e = error as { name?: string, Code?: string, $metadata?: { httpStatusCode?: number } }
  return `${e.$metadata?.httpStatusCode ?? '?'} ${e.Code ?? e.name ?? String(error)}`
}

async function probe (feature: string, run: () => Promise<string>): Promise<void> {
  let outcome: string
  try { outcome = await run() } catch (error) { outcome = `error: ${answer(error)}` }
  results.push([feature, outcome])
  console.log(`${feature.padEnd(44)} ${outcome}`)
}

async function refusedOrNot (send: () => Promise<unknown>): Promise<string> {
  try {
    await send()
    return 'accepted (200)'
  } catch (error) {
    return `refused: ${answer(error)}`
  }
}

/** A two-part multipart upload of `key`, left open; returns its id and parts. */
async function openUpload (key: string, extra: { ChecksumAlgorithm?: 'CRC32' } = {}): Promise<{ UploadId: string, parts: Array<{ PartNumber: number, ETag: string, ChecksumCRC32?: string }> }> {
  const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ...extra }))
  const parts = []
  for (const [i, size] of [5 * MiB, 1024].entries()) {
    const out = await client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: i + 1, Body: randomBytes(size), ...extra }))
    parts.push({ PartNumber: i + 1, ETag: out.ETag ?? '', ...(out.ChecksumCRC32 !== undefined ? { ChecksumCRC32: out.ChecksumCRC32 } : {}) })
  }
  return { UploadId: UploadId ?? '', parts }
}

async function complete (key: string, upload: { UploadId: string, parts: Array<{ PartNumber: number, ETag: string }> }, extra: { IfNoneMatch?: string } = {}): Promise<{ ETag?: string, ChecksumCRC32?: string }> {
  return await client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: upload.UploadId, MultipartUpload: { Parts: upload.parts }, ...extra }))
}

console.log(`# ${server.description}, ${new Date().toISOString()}`)
await client.send(new CreateBucketCommand({ Bucket: bucket }))
try {
  await probe('PutObject + multipart round trip', async () => {
    const data = randomBytes(5 * MiB + 1024)
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'small', Body: data.subarray(0, 1024) }))
    const upload = await openUpload('big')
    const done = await complete('big', upload)
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'big' }))
    return `ok (multipart ETag ${done.ETag ?? '?'}, size ${head.ContentLength})`
  })
  await probe('undersized part (1 KiB part 1 of 2) on Complete', async () => {
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'tiny' }))
    const parts: Array<{ PartNumber: number, ETag: string }> = []
    for (const n of [1, 2]) parts.push({ PartNumber: n, ETag: (await client.send(new UploadPartCommand({ Bucket: bucket, Key: 'tiny', UploadId, PartNumber: n, Body: randomBytes(1024) }))).ETag ?? '' })
    const outcome = await refusedOrNot(async () => await client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'tiny', UploadId, MultipartUpload: { Parts: parts } })))
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'tiny', UploadId })).catch(() => {})
    return outcome
  })
  await probe('If-None-Match: * on PutObject (key exists)', async () =>
    await refusedOrNot(async () => await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'small', Body: 'x', IfNoneMatch: '*' }))))
  await probe('If-None-Match: * on Complete (key exists)', async () => {
    const upload = await openUpload('big')
    const outcome = await refusedOrNot(async () => await complete('big', upload, { IfNoneMatch: '*' }))
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'big', UploadId: upload.UploadId })).catch(() => {})
    return outcome
  })
  await probe('If-None-Match: * on CopyObject (key exists)', async () =>
    await refusedOrNot(async () => await client.send(new CopyObjectCommand({ Bucket: bucket, Key: 'small', CopySource: `${bucket}/big`, IfNoneMatch: '*' }))))
  await probe('CRC32 on UploadPart / Complete / HeadObject', async () => {
    const upload = await openUpload('crc', { ChecksumAlgorithm: 'CRC32' })
    const done = await complete('crc', upload)
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'crc', ChecksumMode: 'ENABLED' }))
    return `part ${upload.parts[0]?.ChecksumCRC32 ?? 'none'}, Complete ${done.ChecksumCRC32 ?? 'none'}, Head ${head.ChecksumCRC32 ?? 'none'}`
  })
  await probe('CRC32 on PutObject, wrong value', async () =>
    await refusedOrNot(async () => await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'badcrc', Body: 'hello', ChecksumCRC32: 'AAAAAA==' }))))
  await probe('SSE-KMS (PutObject aws:kms)', async () => {
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'kms', Body: 'x', ServerSideEncryption: 'aws:kms', ...(server.kmsKeyId !== undefined ? { SSEKMSKeyId: server.kmsKeyId } : {}) }))
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'kms' }))
    return `accepted; HeadObject says ${head.ServerSideEncryption ?? 'not encrypted'}`
  })
  await probe('SSE-C (PutObject, over this endpoint)', async () => {
    const key = randomBytes(32)
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'ssec', Body: 'x', SSECustomerAlgorithm: 'AES256', SSECustomerKey: key.toString('base64'), SSECustomerKeyMD5: createHash('md5').update(key).digest('base64') }))
    const outcome = await refusedOrNot(async () => await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'ssec' })))
    return `accepted; HeadObject without the key ${outcome}`
  })
  await probe('POST policy (browser upload)', async () => {
    const post = await createPresignedPost(client, { Bucket: bucket, Key: 'posted', Conditions: [['content-length-range', 1, 100]], Expires: 60 })
    const send = async (bytes: number): Promise<number> => {
      const form = new FormData()
      for (const [k, v] of Object.entries(post.fields)) form.append(k, v)
      form.append('file', new Blob([randomBytes(bytes)]), 'f.bin')
      return (await fetch(post.url, { method: 'POST', body: form })).status
    }
    return `within policy ${await send(50)}, over content-length-range ${await send(1000)}`
  })
  await probe('presigned UploadPart URL (PUT, ETag header)', async () => {
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'presigned' }))
    const url = await getSignedUrl(client, new UploadPartCommand({ Bucket: bucket, Key: 'presigned', UploadId, PartNumber: 1 }), { expiresIn: 60 })
    const response = await fetch(url, { method: 'PUT', body: randomBytes(1024) })
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'presigned', UploadId }))
    return `${response.status}, ETag ${response.headers.get('etag') ?? 'missing'}`
  })
  await probe('lifecycle rule (Expiration)', async () =>
    await refusedOrNot(async () => await client.send(new PutBucketLifecycleConfigurationCommand({ Bucket: bucket, LifecycleConfiguration: { Rules: [{ ID: 'x', Status: 'Enabled', Filter: { Prefix: 'logs/' }, Expiration: { Days: 1 } }] } }))))
  await probe('lifecycle rule (AbortIncompleteMultipartUpload only)', async () =>
    await refusedOrNot(async () => await client.send(new PutBucketLifecycleConfigurationCommand({ Bucket: bucket, LifecycleConfiguration: { Rules: [{ ID: 'y', Status: 'Enabled', Filter: { Prefix: 'media/' }, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } }] } }))))
  await probe('CORS: preflight from an origin, no bucket rule', async () => {
    const response = await fetch(`${server.endpoint}/${bucket}/small`, { method: 'OPTIONS', headers: { Origin: 'http://127.0.0.1:3000', 'Access-Control-Request-Method': 'PUT' } })
    return `${response.status}, allow-origin ${response.headers.get('access-control-allow-origin') ?? 'none'}`
  })
  await probe('CORS: PutBucketCors (ExposeHeaders ETag)', async () => {
    const put = await refusedOrNot(async () => await client.send(new PutBucketCorsCommand({ Bucket: bucket, CORSConfiguration: { CORSRules: [{ AllowedOrigins: ['http://127.0.0.1:3000'], AllowedMethods: ['GET', 'PUT', 'POST'], AllowedHeaders: ['*'], ExposeHeaders: ['ETag'] }] } })))
    if (!put.startsWith('accepted')) return put
    const cors = await client.send(new GetBucketCorsCommand({ Bucket: bucket }))
    const response = await fetch(`${server.endpoint}/${bucket}/small`, { method: 'OPTIONS', headers: { Origin: 'http://127.0.0.1:3000', 'Access-Control-Request-Method': 'PUT' } })
    const other = await fetch(`${server.endpoint}/${bucket}/small`, { method: 'OPTIONS', headers: { Origin: 'http://evil.example', 'Access-Control-Request-Method': 'PUT' } })
    return `accepted; Get gives ExposeHeaders ${JSON.stringify(cors.CORSRules?.[0]?.ExposeHeaders)}; preflight ${response.status} (${response.headers.get('access-control-allow-origin') ?? 'none'}), other origin ${other.status} (${other.headers.get('access-control-allow-origin') ?? 'none'})`
  })
  await probe('ListParts after AbortMultipartUpload', async () => {
    const upload = await openUpload('aborted')
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'aborted', UploadId: upload.UploadId }))
    try {
      const listed = await client.send(new ListPartsCommand({ Bucket: bucket, Key: 'aborted', UploadId: upload.UploadId }))
      return `200 with ${listed.Parts?.length ?? 0} part(s)`
    } catch (error) {
      return answer(error)
    }
  })
  await probe('a second Complete of a finished upload', async () => {
    const upload = await openUpload('twice')
    const first = await complete('twice', upload)
    try {
      const second = await complete('twice', upload)
      return `200, ETag ${second.ETag === first.ETag ? 'the same' : `${second.ETag ?? '?'} ≠ ${first.ETag ?? '?'}`}`
    } catch (error) {
      return answer(error)
    }
  })
} finally {
  // Leave nothing behind: open uploads, objects, the bucket.
  const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket })).catch(() => ({ Uploads: [] }))
  for (const upload of uploads.Uploads ?? []) await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId })).catch(() => {})
  const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket }))
  for (const object of listed.Contents ?? []) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: object.Key })).catch(() => {})
  await client.send(new DeleteBucketCommand({ Bucket: bucket })).catch((error: unknown) => { console.error(`bucket ${bucket} not deleted: ${answer(error)}`) })
  await server.stop()
}
