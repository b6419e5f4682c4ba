// Stores that leave the checksum out of CompleteMultipartUpload's answer
// (SeaweedFS, moto; S3's documentation is loose here) left S3File.checksum
// silently missing for every multipart file (issue 9). With a checksum
// configured, the object's checksum is then taken from HeadObject
// (ChecksumMode ENABLED) — or, when that has none either, the upload fails
// clearly: never a silently absent checksum. The coordinator in inline mode
// against aws-sdk-client-mock, driven as test/unit/coordinator.test.ts does.
import t from 'tap'
import { mockClient } from 'aws-sdk-client-mock'
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand
} from '@aws-sdk/client-s3'
import { uploadStream, type UploadDeps } from '../../lib/upload/coordinator.ts'
import { UNIT_PART, unitUploadDeps } from '../support/upload-deps.ts'

const PART = UNIT_PART
const SIZE = 2 * PART + 100
const target = { bucket: 'uploads', key: 'media/file.bin', contentType: 'application/octet-stream', overwrite: true }
const noRetry = { attempts: 1, baseDelayMs: 0, maxDelayMs: 0 }

function setup (): { s3: ReturnType<typeof mockClient>, deps: UploadDeps } {
  const client = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } })
  const s3 = mockClient(client)
  let open = true
  s3.on(CreateMultipartUploadCommand).resolves({ UploadId: 'upload-1' })
  s3.on(UploadPartCommand).callsFake(async (input: { PartNumber: number }) => ({ ETag: `"etag-${input.PartNumber}"`, ChecksumCRC32: `crc-${input.PartNumber}` }))
  s3.on(PutObjectCommand).resolves({ ETag: '"single"', ChecksumCRC32: 'single-crc' })
  // The Complete answer of SeaweedFS and moto: no ChecksumCRC32.
  s3.on(CompleteMultipartUploadCommand).callsFake(async () => { open = false; return { ETag: '"final-3"' } })
  s3.on(AbortMultipartUploadCommand).callsFake(async () => { open = false; return {} })
  s3.on(ListPartsCommand).callsFake(async () => {
    if (open) return { Parts: [] }
    throw Object.assign(new Error('The specified upload does not exist'), { name: 'NoSuchUpload', $metadata: { httpStatusCode: 404 } })
  })
  return { s3, deps: unitUploadDeps(client, { retry: noRetry, checksum: 'CRC32' }) }
}

async function * source (size: number): AsyncGenerator<Uint8Array> {
  for (let sent = 0; sent < size; sent += 100) yield new Uint8Array(Math.min(100, size - sent)).fill(sent & 0xff)
}

t.test('Complete answers without ChecksumCRC32: the checksum comes from HeadObject (ChecksumMode ENABLED)', async (t) => {
  const { s3, deps } = setup()
  s3.on(HeadObjectCommand).resolves({ ETag: '"final-3"', ContentLength: SIZE, ChecksumCRC32: 'whole-from-head' })
  const outcome = await uploadStream(source(SIZE), target, deps)
  t.equal(outcome.parts, 3, 'a multipart upload')
  t.equal(outcome.checksum, 'whole-from-head', 'the object\'s checksum, as HeadObject reports it')
  const heads = s3.commandCalls(HeadObjectCommand).map((call) => call.args[0].input)
  t.ok(heads.length >= 1, 'HeadObject was asked')
  t.match(heads[0], { Bucket: 'uploads', Key: 'media/file.bin', ChecksumMode: 'ENABLED' })
  t.equal(deps.buffers.used, 0, 'every buffered byte released')
})

t.test('neither Complete nor HeadObject has the checksum: the upload fails clearly', async (t) => {
  const { s3, deps } = setup()
  s3.on(HeadObjectCommand).resolves({ ETag: '"final-3"', ContentLength: SIZE })
  await t.rejects(uploadStream(source(SIZE), target, deps), 'rejects rather than answering without a checksum')
  t.equal(deps.counters.uploadsInFlight, 0)
})

t.test('Complete answers with the checksum: that one is used', async (t) => {
  const { s3, deps } = setup()
  s3.on(CompleteMultipartUploadCommand).resolves({ ETag: '"final-3"', ChecksumCRC32: 'whole-from-complete' })
  s3.on(HeadObjectCommand).resolves({ ETag: '"final-3"', ContentLength: SIZE, ChecksumCRC32: 'whole-from-complete' })
  const outcome = await uploadStream(source(SIZE), target, deps)
  t.equal(outcome.checksum, 'whole-from-complete')
})
