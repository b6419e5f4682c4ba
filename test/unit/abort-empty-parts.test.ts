// Regression (issue 14, SeaweedFS): after an AbortMultipartUpload answered with
// success, SeaweedFS answers ListParts with 200 and no parts instead of
// NoSuchUpload; every 413 there logged "AbortMultipartUpload did not remove the
// upload" after four rounds of aborts. An empty parts list right after an abort
// of ours that S3 answered means gone (S3's own advice: "ensure that the parts
// list is empty"); anywhere else an empty list is an upload with no parts yet.
import t from 'tap'
import { mockClient } from 'aws-sdk-client-mock'
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  ListPartsCommand,
  S3Client,
  UploadPartCommand
} from '@aws-sdk/client-s3'
import { uploadStream, type UploadDeps } from '../../lib/upload/coordinator.ts'
import { UNIT_PART, unitUploadDeps } from '../support/upload-deps.ts'
import { abortMultipartUpload } from '../../lib/upload/multipart-calls.ts'

const PART = UNIT_PART
const retry = { attempts: 4, baseDelayMs: 1, maxDelayMs: 2 }
const target = { bucket: 'uploads', key: 'media/file.bin', contentType: 'application/octet-stream', overwrite: true }

function logCollector (): { log: NonNullable<UploadDeps['log']>, errors: unknown[] } {
  const errors: unknown[] = []
  const log = { error: (details: unknown) => { errors.push(details) }, warn: () => {}, info: () => {}, debug: () => {} } as unknown as NonNullable<UploadDeps['log']>
  return { log, errors }
}

function mocked (): { client: S3Client, s3: ReturnType<typeof mockClient> } {
  const client = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } })
  return { client, s3: mockClient(client) }
}

const connectionReset = (): Error => Object.assign(new Error('socket hang up'), { name: 'Error', code: 'ECONNRESET' })

t.test('SeaweedFS-like store: an answered abort, then 0 parts (200) → gone: one abort, nothing logged', async (t) => {
  const { client, s3 } = mocked()
  const { log, errors } = logCollector()
  s3.on(AbortMultipartUploadCommand).resolves({})
  s3.on(ListPartsCommand).resolves({ Parts: [], IsTruncated: false })
  await abortMultipartUpload({ client, retry, target, log }, 'upload-1')
  t.equal(s3.commandCalls(AbortMultipartUploadCommand).length, 1, 'aborted once')
  t.equal(s3.commandCalls(ListPartsCommand).length, 1, 'checked once')
  t.same(errors, [], 'no "did not remove the upload" in the log')
})

t.test('a store that answers ListParts without a Parts element after an answered abort → gone', async (t) => {
  const { client, s3 } = mocked()
  const { log, errors } = logCollector()
  s3.on(AbortMultipartUploadCommand).resolves({})
  s3.on(ListPartsCommand).resolves({})
  await abortMultipartUpload({ client, retry, target, log }, 'upload-1')
  t.equal(s3.commandCalls(AbortMultipartUploadCommand).length, 1)
  t.same(errors, [])
})

t.test('an answered abort that still lists parts is aborted again, and logged when they stay', async (t) => {
  const { client, s3 } = mocked()
  const { log, errors } = logCollector()
  s3.on(AbortMultipartUploadCommand).resolves({})
  s3.on(ListPartsCommand).resolves({ Parts: [{ PartNumber: 1, ETag: '"e"', Size: 5 }] })
  await abortMultipartUpload({ client, retry, target, log }, 'upload-1')
  t.equal(s3.commandCalls(AbortMultipartUploadCommand).length, retry.attempts, 'one abort per round')
  t.equal(errors.length, 1, 'given up and logged')
})

t.test('an abort that got no answer: 0 parts proves nothing (an upload with no parts yet); aborted again until an answered abort', async (t) => {
  const { client, s3 } = mocked()
  const { log, errors } = logCollector()
  s3.on(AbortMultipartUploadCommand).rejectsOnce(connectionReset()).rejectsOnce(connectionReset()).resolves({})
  s3.on(ListPartsCommand).resolves({ Parts: [] })
  await abortMultipartUpload({ client, retry, target, log }, 'upload-1')
  t.equal(s3.commandCalls(AbortMultipartUploadCommand).length, 3, 'sent until S3 answered')
  t.equal(s3.commandCalls(ListPartsCommand).length, 1, 'the list is read only after an answered abort')
  t.same(errors, [])
})

t.test('an abort never answered is logged after its rounds, although ListParts lists nothing', async (t) => {
  const { client, s3 } = mocked()
  const { log, errors } = logCollector()
  s3.on(AbortMultipartUploadCommand).rejects(connectionReset())
  s3.on(ListPartsCommand).resolves({ Parts: [] })
  await abortMultipartUpload({ client, retry, target, log }, 'upload-1')
  t.equal(s3.commandCalls(AbortMultipartUploadCommand).length, retry.attempts)
  t.equal(errors.length, 1)
})

t.test('a Complete whose answer is lost: an upload listing 0 parts is not taken for completed (the Complete is sent again)', async (t) => {
  // Only NoSuchUpload says a Complete was carried out; an empty list is no such evidence.
  const { client, s3 } = mocked()
  s3.on(CreateMultipartUploadCommand).resolves({ UploadId: 'upload-1' })
  s3.on(UploadPartCommand).callsFake(async (input: { PartNumber: number }) => ({ ETag: `"etag-${input.PartNumber}"` }))
  s3.on(ListPartsCommand).resolves({ Parts: [] })
  s3.on(HeadObjectCommand).rejects(Object.assign(new Error('Not Found'), { name: 'NotFound', $metadata: { httpStatusCode: 404 } }))
  s3.on(CompleteMultipartUploadCommand).rejectsOnce(connectionReset()).resolves({ ETag: '"final-2"' })
  const deps = unitUploadDeps(client, { retry })
  async function * source (): AsyncGenerator<Uint8Array> { yield new Uint8Array(PART + 10).fill(7) }
  const outcome = await uploadStream(source(), target, deps)
  t.same(outcome, { size: PART + 10, etag: 'final-2', parts: 2 })
  t.equal(s3.commandCalls(CompleteMultipartUploadCommand).length, 2, 'sent again')
  t.equal(s3.commandCalls(AbortMultipartUploadCommand).length, 0, 'nothing aborted')
})

t.test('a file over maxFileSize on a SeaweedFS-like store: 413, one abort, nothing logged', async (t) => {
  const { client, s3 } = mocked()
  const { log, errors } = logCollector()
  s3.on(CreateMultipartUploadCommand).resolves({ UploadId: 'upload-1' })
  s3.on(UploadPartCommand).callsFake(async (input: { PartNumber: number }) => ({ ETag: `"etag-${input.PartNumber}"` }))
  s3.on(AbortMultipartUploadCommand).resolves({})
  s3.on(ListPartsCommand).resolves({ Parts: [] })
  const deps = unitUploadDeps(client, { retry, maxFileSize: 3 * PART, log })
  async function * source (): AsyncGenerator<Uint8Array> { for (let i = 0; i < 10; i++) yield new Uint8Array(PART).fill(i) }
  await t.rejects(uploadStream(source(), target, deps), { code: 'FST_S3CHUNK_FILE_TOO_LARGE', statusCode: 413 })
  t.equal(s3.commandCalls(AbortMultipartUploadCommand).length, 1)
  t.same(errors, [], 'no "did not remove the upload"')
})
