// Found in review: lib/upload/multipart-calls.ts withChecksum(). On a store that leaves the
// checksum out of the Complete answer (SeaweedFS, moto: the README's own S3-compatibility notes),
// a Complete that SUCCEEDED is followed by HeadObject for the checksum. headOf() maps a throttled
// HEAD (503 SlowDown) to null, withChecksum() takes that for "the object at the key is not the
// one just completed", and throws a StorageError (502: "nothing was committed") — without deleting
// anything: the object stays stored, the client is told nothing was, and its retry stores the file
// again under a new key. ONE S3 failure after an answered commit. The coordinator in inline mode
// against aws-sdk-client-mock, as test/unit/checksum-from-head.test.ts drives it.
import t from 'tap'
import { mockClient } from 'aws-sdk-client-mock'
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand
} from '@aws-sdk/client-s3'
import { uploadStream } from '../../lib/upload/coordinator.ts'
import { UNIT_PART, unitUploadDeps } from '../support/upload-deps.ts'

const SIZE = 2 * UNIT_PART + 100
const target = { bucket: 'uploads', key: 'media/file.bin', contentType: 'application/octet-stream', overwrite: true }

async function * source (size: number): AsyncGenerator<Uint8Array> {
  for (let sent = 0; sent < size; sent += 100) yield new Uint8Array(Math.min(100, size - sent)).fill(sent & 0xff)
}

t.test('Complete stored the object (no checksum in its answer), HEAD throttled: never "nothing committed" with the object left stored', async (t) => {
  const client = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } })
  const s3 = mockClient(client)
  let stored = false
  s3.on(CreateMultipartUploadCommand).resolves({ UploadId: 'upload-1' })
  s3.on(UploadPartCommand).callsFake(async (input: { PartNumber: number }) => ({ ETag: `"etag-${input.PartNumber}"`, ChecksumCRC32: `crc-${input.PartNumber}` }))
  s3.on(PutObjectCommand).resolves({ ETag: '"single"', ChecksumCRC32: 'single-crc' })
  s3.on(CompleteMultipartUploadCommand).callsFake(async () => { stored = true; return { ETag: '"final-3"' } })
  s3.on(AbortMultipartUploadCommand).resolves({})
  s3.on(ListPartsCommand).rejects(Object.assign(new Error('gone'), { name: 'NoSuchUpload', $metadata: { httpStatusCode: 404 } }))
  s3.on(DeleteObjectCommand).callsFake(async () => { stored = false; return {} })
  // Throttled: every attempt of the look (retry.attempts 3).
  s3.on(HeadObjectCommand).rejects(Object.assign(new Error('Please reduce your request rate.'), { name: 'SlowDown', Code: 'SlowDown', $metadata: { httpStatusCode: 503 } }))
  const deps = unitUploadDeps(client, { retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 }, checksum: 'CRC32' })
  let failure: unknown = null
  let outcome: unknown = null
  try {
    outcome = await uploadStream(source(SIZE), target, deps)
  } catch (error) {
    failure = error
  }
  const s3Info = (failure as { s3?: { code?: string, message?: string } } | null)?.s3
  t.comment(`outcome ${JSON.stringify(outcome)}; failure ${String((failure as Error | null)?.message)} (${s3Info?.code}: ${s3Info?.message})`)
  t.ok(failure === null || !stored, `a failed upload leaves nothing stored under its key (object still stored: ${String(stored)}; DeleteObject sent ${s3.commandCalls(DeleteObjectCommand).length} times)`)
  t.not(s3Info?.code, 'ChecksumUnknown', 'a throttled look is not taken for "the object at the key is not the one just completed"')
})
