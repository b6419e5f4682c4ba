// The test bed itself, with plain SDK calls: the MinIO the tests run on has a
// KMS key (SSE-KMS, SSE-S3), and the second MinIO is served over TLS with a
// certificate this process trusts (SSE-C) — so an object-settings test that
// fails, fails for the plugin, not for the bed.
import t from 'tap'
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client
} from '@aws-sdk/client-s3'
import { createHash, randomBytes } from 'node:crypto'
import { digest, failureStatus, head, type SseC } from '../support/object-settings.ts'
import { expectNoPendingUploads, freshBucket, kmsKeyId, sha256, testClient, testS3, testTlsS3 } from '../support/s3.ts'

const P = 5 * 1024 * 1024
const server = await testS3()
const client = testClient(server)
const kms = kmsKeyId(server)
const tls = await testTlsS3()

/** Two parts by hand: CreateMultipartUpload, UploadPart ×2, Complete — each with `params`. */
async function multipart (s3: S3Client, bucket: string, key: string, data: Buffer, create: object, part: object = {}): Promise<string> {
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ...create }))
  const etags: string[] = []
  for (const [index, body] of [data.subarray(0, P), data.subarray(P)].entries()) {
    const { ETag } = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: index + 1, Body: body, ...part }))
    etags.push(ETag ?? '')
  }
  const done = await s3.send(new CompleteMultipartUploadCommand({
    Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: etags.map((ETag, index) => ({ ETag, PartNumber: index + 1 })) }
  }))
  return done.ETag ?? ''
}

t.test('SSE-KMS and SSE-S3 on the test MinIO, single PUT and multipart', { skip: kms.skip }, async (t) => {
  const keyId = kms.keyId ?? ''
  const bucket = await freshBucket(t, server, client)
  const small = randomBytes(1000)
  const big = randomBytes(P + 1000)
  for (const params of [{ ServerSideEncryption: 'aws:kms', SSEKMSKeyId: keyId, BucketKeyEnabled: true }, { ServerSideEncryption: 'AES256' }] as const) {
    const sse = params.ServerSideEncryption
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${sse}/small`, Body: small, ...params }))
    await multipart(client, bucket, `${sse}/big`, big, params)
    for (const [key, data] of [[`${sse}/small`, small], [`${sse}/big`, big]] as const) {
      const h = await head(client, bucket, key)
      t.equal(h.ServerSideEncryption, sse, `${key}: ${sse}`)
      if (sse === 'aws:kms') t.ok(h.SSEKMSKeyId === keyId || h.SSEKMSKeyId?.endsWith(`:${keyId}`), `${key}: key ${h.SSEKMSKeyId}`)
      t.equal((await digest(client, bucket, key)).sha256, sha256(data), `${key}: bytes`)
    }
  }
  await expectNoPendingUploads(t, server, client, bucket)
})

t.test('SSE-C on the TLS MinIO, trusted through NODE_EXTRA_CA_CERTS', { skip: tls.skip }, async (t) => {
  if (tls.server === null) return
  const tlsClient = testClient(tls.server)
  t.match(tls.server.endpoint, /^https:\/\/127\.0\.0\.1:\d+$/, 'https on loopback')
  const bucket = await freshBucket(t, tls.server, tlsClient)
  const sse: SseC = { SSECustomerAlgorithm: 'AES256', SSECustomerKey: randomBytes(32).toString('base64') }
  const big = randomBytes(P + 1000)
  await tlsClient.send(new PutObjectCommand({ Bucket: bucket, Key: 'small', Body: 'hello', ...sse }))
  await multipart(tlsClient, bucket, 'big', big, sse, sse)
  for (const [key, bytes] of [['small', Buffer.from('hello')], ['big', big]] as const) {
    t.equal(await failureStatus(head(tlsClient, bucket, key)), 400, `${key}: HeadObject without the key: 400`)
    const h = await head(tlsClient, bucket, key, sse)
    t.equal(h.SSECustomerAlgorithm, 'AES256', `${key}: SSE-C`)
    t.equal(h.SSECustomerKeyMD5, createHash('md5').update(Buffer.from(sse.SSECustomerKey, 'base64')).digest('base64'), `${key}: key MD5`)
    t.equal((await digest(tlsClient, bucket, key, sse)).sha256, sha256(bytes), `${key}: bytes`)
  }
  await expectNoPendingUploads(t, tls.server, tlsClient, bucket)
})
