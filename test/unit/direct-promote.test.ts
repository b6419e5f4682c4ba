// The promotion copy against a mock S3: what a lost CopyObject answer turns
// into, and how a multipart copy cuts, pins and cleans up.
import t from 'tap'
import { mockClient } from 'aws-sdk-client-mock'
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  ListPartsCommand,
  S3Client,
  UploadPartCopyCommand
} from '@aws-sdk/client-s3'
import { copyChecked, type CopyJob } from '../../lib/direct/promote.ts'

const MiB = 1024 * 1024
const retry = { attempts: 2, baseDelayMs: 0, maxDelayMs: 0 }

function setup (): { client: S3Client, s3: ReturnType<typeof mockClient> } {
  const client = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } })
  return { client, s3: mockClient(client) }
}

const job: CopyJob = {
  bucket: 'uploads',
  source: 'media/.staging/alice/1/a b.png',
  sourceEtag: '"abc"',
  size: 1000,
  key: 'media/alice/1/a b.png',
  contentType: 'image/png',
  metadata: { 'original-name': 'a%20b.png', caption: 'hi' },
  ifNoneMatch: true
}

const precondition = (attempts: number): Error => Object.assign(new Error('At least one of the pre-conditions you specified did not hold'), {
  name: 'PreconditionFailed', $metadata: { httpStatusCode: 412, attempts }
})

t.test('one CopyObject: pinned to the checked ETag, conditional, type and metadata replaced, the source URL-encoded', async (t) => {
  const { client, s3 } = setup()
  s3.on(CopyObjectCommand).resolves({ CopyObjectResult: { ETag: '"abc"' }, VersionId: 'v1' })
  t.same(await copyChecked(job, { client, retry }), { etag: '"abc"', versionId: 'v1', parts: 0 })
  t.same(s3.commandCalls(CopyObjectCommand)[0]?.args[0].input, {
    Bucket: 'uploads',
    Key: job.key,
    CopySource: 'uploads/media/.staging/alice/1/a%20b.png',
    CopySourceIfMatch: '"abc"',
    MetadataDirective: 'REPLACE',
    ContentType: 'image/png',
    Metadata: job.metadata,
    IfNoneMatch: '*'
  })
})

t.test('a 412 after the SDK retried a copy whose answer was lost: the object at the key is this copy', async (t) => {
  const { client, s3 } = setup()
  s3.on(CopyObjectCommand).rejects(precondition(2))
  s3.on(HeadObjectCommand).resolves({ ETag: '"abc"', ContentLength: job.size, ContentType: 'image/png', Metadata: { caption: 'hi', 'original-name': 'a%20b.png' } })
  t.same(await copyChecked(job, { client, retry }), { etag: '"abc"', versionId: undefined, parts: 0 })
})

// A direct multipart upload whose bytes decided another type: the object copied onto itself.
const inPlace: CopyJob = { ...job, source: job.key, sourceEtag: '"abc-2"', ifNoneMatch: false }

t.test('a type rewrite in place: a 412 after a retry (the first attempt changed the ETag it is pinned to) is the rewrite when the key has its size, type and metadata', async (t) => {
  const { client, s3 } = setup()
  s3.on(CopyObjectCommand).rejects(precondition(2))
  s3.on(HeadObjectCommand).resolves({ ETag: '"def"', VersionId: 'v2', ContentLength: job.size, ContentType: 'image/png', Metadata: job.metadata })
  t.same(await copyChecked(inPlace, { client, retry }), { etag: '"def"', versionId: 'v2', parts: 0 })
})

t.test('a type rewrite in place: a 412 at the first attempt, or an object without the new type or of another size, is the copy failing (412)', async (t) => {
  const first = setup()
  first.s3.on(CopyObjectCommand).rejects(precondition(1))
  await t.rejects(copyChecked(inPlace, { client: first.client, retry }), { code: 'FST_S3CHUNK_STORAGE', s3: { status: 412 } })
  t.equal(first.s3.commandCalls(HeadObjectCommand).length, 0, 'a first attempt\'s 412 is a changed object, never the rewrite')
  for (const head of [
    { ETag: '"def"', ContentLength: job.size, ContentType: 'application/octet-stream', Metadata: job.metadata },
    { ETag: '"def"', ContentLength: job.size + 1, ContentType: 'image/png', Metadata: job.metadata },
    { ETag: '"def"', ContentLength: job.size, ContentType: 'image/png', Metadata: {} }
  ]) {
    const other = setup()
    other.s3.on(CopyObjectCommand).rejects(precondition(2))
    other.s3.on(HeadObjectCommand).resolves(head)
    await t.rejects(copyChecked(inPlace, { client: other.client, retry }), { code: 'FST_S3CHUNK_STORAGE', s3: { status: 412 } }, `not the rewrite: ${JSON.stringify(head)}`)
  }
})

const throttled = (): Error => Object.assign(new Error('Please reduce your request rate.'), { name: 'SlowDown', $metadata: { httpStatusCode: 503 } })

t.test('a 412 after a retry, and S3 would not answer the look at the key: S3\'s failure (retryable), never "not this copy"', async (t) => {
  const { client, s3 } = setup()
  s3.on(CopyObjectCommand).rejects(precondition(2))
  s3.on(HeadObjectCommand).rejects(throttled())
  await t.rejects(copyChecked(job, { client, retry }), { code: 'FST_S3CHUNK_STORAGE', s3: { code: 'OutcomeUnknown', retryable: true } })
  t.equal(s3.commandCalls(HeadObjectCommand).length, retry.attempts, 'the look is retried with the retry policy')
})

t.test('a 412 at the first attempt, or another object at the key: the copy failed (412)', async (t) => {
  const first = setup()
  first.s3.on(CopyObjectCommand).rejects(precondition(1))
  await t.rejects(copyChecked(job, { client: first.client, retry }), { code: 'FST_S3CHUNK_STORAGE', s3: { operation: 'CopyObject', status: 412 } })
  t.equal(first.s3.commandCalls(HeadObjectCommand).length, 0, 'a first attempt\'s 412 is never taken for this copy')
  const other = setup()
  other.s3.on(CopyObjectCommand).rejects(precondition(2))
  other.s3.on(HeadObjectCommand).resolves({ ETag: '"other"', ContentLength: job.size, ContentType: 'image/png', Metadata: job.metadata })
  await t.rejects(copyChecked(job, { client: other.client, retry }), { code: 'FST_S3CHUNK_STORAGE', s3: { status: 412 } })
})

t.test('a multipart copy: ranges cover the object, every part pinned, Complete conditional', async (t) => {
  const { client, s3 } = setup()
  s3.on(CreateMultipartUploadCommand).resolves({ UploadId: 'u1' })
  s3.on(UploadPartCopyCommand).callsFake((input: { PartNumber: number }) => ({ CopyPartResult: { ETag: `"e${input.PartNumber}"` } }))
  s3.on(CompleteMultipartUploadCommand).resolves({ ETag: '"x-3"' })
  const copied = await copyChecked({ ...job, size: 12 * MiB }, { client, retry, copyLimit: 5 * MiB, partSize: 5 * MiB, concurrency: 2 })
  t.same(copied, { etag: '"x-3"', versionId: undefined, parts: 3 })
  const parts = s3.commandCalls(UploadPartCopyCommand).map((c) => c.args[0].input).sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0))
  t.same(parts.map((p) => p.CopySourceRange), [`bytes=0-${5 * MiB - 1}`, `bytes=${5 * MiB}-${10 * MiB - 1}`, `bytes=${10 * MiB}-${12 * MiB - 1}`])
  t.ok(parts.every((p) => p.CopySourceIfMatch === '"abc"'), 'every part pinned to the checked ETag')
  t.match(s3.commandCalls(CreateMultipartUploadCommand)[0]?.args[0].input, { ContentType: 'image/png', Metadata: job.metadata })
  t.match(s3.commandCalls(CompleteMultipartUploadCommand)[0]?.args[0].input, { IfNoneMatch: '*', MultipartUpload: { Parts: [{ PartNumber: 1, ETag: '"e1"' }, { PartNumber: 2, ETag: '"e2"' }, { PartNumber: 3, ETag: '"e3"' }] } })
})

t.test('a multipart copy whose part fails is aborted, never completed', async (t) => {
  const { client, s3 } = setup()
  s3.on(CreateMultipartUploadCommand).resolves({ UploadId: 'u1' })
  s3.on(UploadPartCopyCommand).rejects(precondition(1))
  s3.on(AbortMultipartUploadCommand).resolves({})
  s3.on(ListPartsCommand).rejects(Object.assign(new Error('gone'), { name: 'NoSuchUpload', $metadata: { httpStatusCode: 404 } }))
  await t.rejects(copyChecked({ ...job, size: 12 * MiB }, { client, retry, copyLimit: 5 * MiB, partSize: 5 * MiB }), { code: 'FST_S3CHUNK_STORAGE', s3: { operation: 'UploadPartCopy', status: 412 } })
  t.equal(s3.commandCalls(CompleteMultipartUploadCommand).length, 0)
  t.equal(s3.commandCalls(AbortMultipartUploadCommand).length, 1)
})

t.test('a multipart copy whose Complete fails while S3 will not answer the look-ups is aborted, and not said "gone"', async (t) => {
  const { client, s3 } = setup()
  s3.on(CreateMultipartUploadCommand).resolves({ UploadId: 'u1' })
  s3.on(UploadPartCopyCommand).resolves({ CopyPartResult: { ETag: '"0123456789abcdef0123456789abcdef"' } })
  s3.on(CompleteMultipartUploadCommand).rejects(Object.assign(new Error('We encountered an internal error.'), { name: 'InternalError', $metadata: { httpStatusCode: 500 } }))
  s3.on(HeadObjectCommand).rejects(Object.assign(new Error('SlowDown'), { name: 'SlowDown', $metadata: { httpStatusCode: 503 } }))
  s3.on(ListPartsCommand).rejects(Object.assign(new Error('SlowDown'), { name: 'SlowDown', $metadata: { httpStatusCode: 503 } }))
  s3.on(AbortMultipartUploadCommand).resolves({})
  const failure = await copyChecked({ ...job, size: 12 * MiB }, { client, retry, copyLimit: 5 * MiB, partSize: 5 * MiB }).then(() => null, (error: unknown) => error as { code?: string, s3?: { code?: string, message?: string } })
  t.match(failure, { code: 'FST_S3CHUNK_STORAGE', s3: { code: 'OutcomeUnknown' } }, 'whether the Complete stored the object is not known: S3\'s failure')
  t.notMatch(failure?.s3?.message ?? '', /gone/, 'ListParts never said the upload was gone')
  t.ok(s3.commandCalls(AbortMultipartUploadCommand).length >= 1, 'the copy\'s upload is aborted all the same')
})

t.test('part sizes grow so that no copy needs more than 10,000 parts', async (t) => {
  const { client, s3 } = setup()
  s3.on(CreateMultipartUploadCommand).resolves({ UploadId: 'u1' })
  s3.on(UploadPartCopyCommand).resolves({ CopyPartResult: { ETag: '"e"' } })
  s3.on(CompleteMultipartUploadCommand).resolves({ ETag: '"x"' })
  const size = 5 * 1024 * 1024 * MiB // 5 TiB
  const copied = await copyChecked({ ...job, size }, { client, retry, partSize: 5 * MiB, concurrency: 64 })
  t.ok(copied.parts <= 10_000, `${copied.parts} parts`)
})
