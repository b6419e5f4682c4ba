// The coordinator in inline mode against aws-sdk-client-mock: what it asks
// S3 for, in which order, and what it does when something fails.
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
import { setTimeout as sleep } from 'node:timers/promises'
import { createHash } from 'node:crypto'
import { uploadStream, type UploadDeps } from '../../lib/upload/coordinator.ts'
import { UNIT_PART, unitUploadDeps } from '../support/upload-deps.ts'
import { multipartEtag } from '../../lib/upload/multipart-calls.ts'
import { PartBufferPool } from '../../lib/upload/part-buffer-pool.ts'
import { createInlineSender } from '../../lib/upload/part-sender.ts'
import { crc32Base64 } from '../../lib/upload/send-part.ts'
import { ClosingError } from '../../lib/errors.ts'
import { Shutdown } from '../../lib/upload/shutdown.ts'

const PART = UNIT_PART
const target = { bucket: 'uploads', key: 'media/file.bin', contentType: 'application/octet-stream', overwrite: true }

const noRetry = { attempts: 1, baseDelayMs: 0, maxDelayMs: 0 }

function setup (overrides: Partial<UploadDeps> = {}, retry = noRetry): { s3: ReturnType<typeof mockClient>, deps: UploadDeps } {
  const client = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } })
  const s3 = mockClient(client)
  s3.on(CreateMultipartUploadCommand).resolves({ UploadId: 'upload-1' })
  s3.on(UploadPartCommand).callsFake(async (input: { PartNumber: number }) => ({ ETag: `"etag-${input.PartNumber}"` }))
  s3.on(PutObjectCommand).resolves({ ETag: '"single"' })
  // The upload exists until it is completed or aborted: ListParts says so.
  let open = true
  s3.on(CompleteMultipartUploadCommand).callsFake(async () => { open = false; return { ETag: '"final-3"' } })
  s3.on(AbortMultipartUploadCommand).callsFake(async () => { open = false; return {} })
  s3.on(ListPartsCommand).callsFake(async () => { if (open) return { Parts: [] }; throw noSuchUpload() })
  s3.on(HeadObjectCommand).rejects(Object.assign(new Error('Not Found'), { name: 'NotFound', $metadata: { httpStatusCode: 404 } }))
  return { s3, deps: unitUploadDeps(client, { retry, ...overrides }) }
}

function noSuchUpload (): Error {
  return Object.assign(new Error('The specified upload does not exist'), { name: 'NoSuchUpload', $metadata: { httpStatusCode: 404 } })
}

function connectionReset (): Error {
  return Object.assign(new Error('socket hang up'), { name: 'Error', code: 'ECONNRESET' })
}

const md5 = (bytes: Uint8Array): string => createHash('md5').update(bytes).digest('hex')

/** Parts answered with their real MD5 ETags (as S3 does), so the object's ETag can be known in advance. */
function md5Etags (s3: ReturnType<typeof mockClient>): void {
  s3.on(UploadPartCommand).callsFake(async (input: { Body: Uint8Array }) => ({ ETag: `"${md5(input.Body)}"` }))
}

/** The object S3 would have stored for parts cut from source(size) with PART-sized parts. */
async function storedHead (size: number): Promise<{ ContentLength: number, ETag: string }> {
  const whole = new Uint8Array(size)
  let at = 0
  for await (const chunk of source(size)) { whole.set(chunk, at); at += chunk.byteLength }
  const etags: string[] = []
  for (let start = 0; start < size; start += PART) etags.push(md5(whole.subarray(start, Math.min(size, start + PART))))
  return { ContentLength: size, ETag: `"${multipartEtag(etags) ?? ''}"` }
}

async function * source (size: number, chunk = 100, failAfter?: number): AsyncGenerator<Uint8Array> {
  let sent = 0
  while (sent < size) {
    if (failAfter !== undefined && sent >= failAfter) throw new Error('client went away')
    const n = Math.min(chunk, size - sent)
    yield new Uint8Array(n).fill(sent & 0xff)
    sent += n
  }
}

t.test('a file smaller than one part goes out as one PutObject', async (t) => {
  const { s3, deps } = setup()
  const outcome = await uploadStream(source(PART - 1), target, deps)
  t.same(outcome, { size: PART - 1, etag: 'single', parts: 0 })
  t.equal(s3.commandCalls(PutObjectCommand).length, 1)
  t.equal(s3.commandCalls(PutObjectCommand)[0]?.args[0].input.ContentType, 'application/octet-stream')
  t.equal(s3.commandCalls(CreateMultipartUploadCommand).length, 0, 'no multipart upload for a small file')
  t.equal(deps.buffers.used, 0, 'every buffered byte released')
  t.equal(deps.counters.uploadsInFlight, 0)
})

t.test('an empty file is a valid empty object', async (t) => {
  const { s3, deps } = setup()
  const outcome = await uploadStream(source(0), target, deps)
  t.same(outcome, { size: 0, etag: 'single', parts: 0 })
  t.equal((s3.commandCalls(PutObjectCommand)[0]?.args[0].input.Body as Uint8Array).byteLength, 0)
})

t.test('parts answered out of order are completed in part order', async (t) => {
  const { s3, deps } = setup({ partConcurrency: 4 })
  // Later parts answer first.
  s3.on(UploadPartCommand).callsFake(async (input: { PartNumber: number }) => {
    await sleep(40 - input.PartNumber * 10)
    return { ETag: `"etag-${input.PartNumber}"` }
  })
  const outcome = await uploadStream(source(3 * PART + 7), target, deps)
  t.same(outcome, { size: 3 * PART + 7, etag: 'final-3', parts: 4 })
  const complete = s3.commandCalls(CompleteMultipartUploadCommand)[0]?.args[0].input
  t.same(complete?.MultipartUpload?.Parts, [1, 2, 3, 4].map((n) => ({ PartNumber: n, ETag: `"etag-${n}"` })))
  t.equal(complete?.UploadId, 'upload-1')
  const sizes = s3.commandCalls(UploadPartCommand).map((c) => c.args[0].input.ContentLength ?? 0).sort((a, b) => a - b)
  t.same(sizes, [7, PART, PART, PART], 'the last part carries only its own bytes')
  t.equal(s3.commandCalls(AbortMultipartUploadCommand).length, 0)
  t.equal(deps.buffers.used, 0)
})

t.test('a failed part: the parts in flight finish, then the upload is aborted, never completed', async (t) => {
  const { s3, deps } = setup({ partConcurrency: 3 })
  let inFlightAtAbort = -1
  let inFlight = 0
  s3.on(UploadPartCommand).callsFake(async (input: { PartNumber: number }) => {
    inFlight++
    try {
      await sleep(input.PartNumber === 2 ? 5 : 30)
      if (input.PartNumber === 2) throw Object.assign(new Error('We encountered an internal error'), { name: 'InternalError', $metadata: { httpStatusCode: 500, requestId: 'req-42' } })
      return { ETag: `"etag-${input.PartNumber}"` }
    } finally { inFlight-- }
  })
  s3.on(AbortMultipartUploadCommand).callsFake(async () => { inFlightAtAbort = inFlight; return {} })
  await t.rejects(uploadStream(source(10 * PART), target, deps), {
    code: 'FST_S3CHUNK_STORAGE',
    statusCode: 502,
    s3: { operation: 'UploadPart', code: 'InternalError', status: 500, requestId: 'req-42', retryable: true, attempts: 1 }
  })
  t.equal(s3.commandCalls(AbortMultipartUploadCommand).length, 1, 'aborted once')
  t.equal(inFlightAtAbort, 0, 'no part was in flight when the abort went out')
  t.equal(s3.commandCalls(CompleteMultipartUploadCommand).length, 0, 'never completed')
  t.ok(s3.commandCalls(UploadPartCommand).length < 10, 'stopped sending parts after the failure')
  t.equal(deps.buffers.used, 0, 'buffers released')
})

t.test('a stream error mid-upload aborts the multipart upload and rethrows the stream error', async (t) => {
  const { s3, deps } = setup()
  await t.rejects(uploadStream(source(10 * PART, 100, 3 * PART), target, deps), /client went away/)
  t.equal(s3.commandCalls(AbortMultipartUploadCommand).length, 1)
  t.same(s3.commandCalls(AbortMultipartUploadCommand)[0]?.args[0].input, { Bucket: 'uploads', Key: 'media/file.bin', UploadId: 'upload-1' })
  t.equal(s3.commandCalls(CompleteMultipartUploadCommand).length, 0)
  t.equal(deps.counters.uploadsInFlight, 0)
})

t.test('a stream error before the first full part: no upload was created, nothing to abort', async (t) => {
  const { s3, deps } = setup()
  await t.rejects(uploadStream(source(10 * PART, 100, 500), target, deps), /client went away/)
  t.equal(s3.commandCalls(CreateMultipartUploadCommand).length, 0)
  t.equal(s3.commandCalls(PutObjectCommand).length, 0, 'a truncated small file is not stored either')
  t.equal(s3.commandCalls(AbortMultipartUploadCommand).length, 0)
})

t.test('a failing CompleteMultipartUpload is aborted too', async (t) => {
  const { s3, deps } = setup()
  s3.on(CompleteMultipartUploadCommand).rejects(Object.assign(new Error('One or more of the specified parts could not be found'), { name: 'InvalidPart', $metadata: { httpStatusCode: 400 } }))
  await t.rejects(uploadStream(source(2 * PART + 1), target, deps), { code: 'FST_S3CHUNK_STORAGE', s3: { operation: 'CompleteMultipartUpload', code: 'InvalidPart', retryable: false } })
  t.equal(s3.commandCalls(AbortMultipartUploadCommand).length, 1)
})

t.test('exceeding maxFileSize aborts with 413', async (t) => {
  const { s3, deps } = setup({ maxFileSize: 3 * PART })
  await t.rejects(uploadStream(source(5 * PART), target, deps), { code: 'FST_S3CHUNK_FILE_TOO_LARGE', statusCode: 413 })
  t.equal(s3.commandCalls(CompleteMultipartUploadCommand).length, 0)
  t.equal(s3.commandCalls(AbortMultipartUploadCommand).length, 1)
})

t.test('backpressure: at most partConcurrency parts in flight, and the source is not read past them', async (t) => {
  const { s3, deps } = setup({ partConcurrency: 2 })
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  let maxInFlight = 0
  let inFlight = 0
  s3.on(UploadPartCommand).callsFake(async (input: { PartNumber: number }) => {
    inFlight++
    maxInFlight = Math.max(maxInFlight, inFlight)
    await gate
    inFlight--
    return { ETag: `"etag-${input.PartNumber}"` }
  })
  let bytesRead = 0
  async function * counted (): AsyncGenerator<Uint8Array> {
    for await (const chunk of source(20 * PART)) {
      bytesRead += chunk.byteLength
      yield chunk
    }
  }
  const upload = uploadStream(counted(), target, deps)
  await sleep(100)
  // 2 parts in flight + 1 full part held for a slot + the chunk that proved it was not the last.
  t.ok(bytesRead <= 3 * PART + 100, `read ${bytesRead} bytes while S3 was stalled (bound ${3 * PART + 100})`)
  t.ok(deps.buffers.used <= 4 * PART, `buffered ${deps.buffers.used} bytes`)
  release()
  const outcome = await upload
  t.equal(outcome.parts, 20)
  t.equal(maxInFlight, 2, 'never more than partConcurrency parts in flight')
})

t.test('closing the server aborts the upload in flight', async (t) => {
  const shutdown = new Shutdown()
  const { s3, deps } = setup({ shutdown })
  async function * slow (): AsyncGenerator<Uint8Array> {
    yield new Uint8Array(2 * PART)
    await sleep(10_000, undefined, { ref: false }) // a client that stalls: the abort must not wait for it
    yield new Uint8Array(1)
  }
  const upload = uploadStream(slow(), target, deps)
  setTimeout(() => { shutdown.close(new ClosingError()) }, 50)
  const started = Date.now()
  await t.rejects(upload, { code: 'FST_S3CHUNK_CLOSING', statusCode: 503 })
  t.ok(Date.now() - started < 5000, 'did not wait for the stalled client')
  t.equal(s3.commandCalls(AbortMultipartUploadCommand).length, 1)
  t.equal(s3.commandCalls(CompleteMultipartUploadCommand).length, 0)
})

// Regression (found by test/load/cluster-fault.test.ts): a small file's
// PutObject that S3 carried out while the server began closing was answered
// 503 FST_S3CHUNK_CLOSING with the object stored — the client's retry then
// stored it twice. A failure after the commit cannot undo it: the multipart
// path already returns a Complete that succeeded; the single PUT now does too.
t.test('closing the server while a small file\'s PutObject is in flight: stored, and answered so', async (t) => {
  const shutdown = new Shutdown()
  const { s3, deps } = setup({ shutdown })
  s3.on(PutObjectCommand).callsFake(async () => {
    shutdown.close(new ClosingError())
    await sleep(20)
    return { ETag: '"single"' }
  })
  const outcome = await uploadStream(source(PART - 1), target, deps)
  t.same(outcome, { size: PART - 1, etag: 'single', parts: 0 }, 'the stored object is the answer')
  t.equal(deps.buffers.used, 0, 'every buffered byte released')
})

t.test('a retryable part failure is retried with the same bytes, then the upload completes', async (t) => {
  const { s3, deps } = setup({}, { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 })
  const bodies = new Map<number, number[]>()
  let calls = 0
  s3.on(UploadPartCommand).callsFake(async (input: { PartNumber: number, Body: Uint8Array }) => {
    calls++
    const sums = bodies.get(input.PartNumber) ?? []
    sums.push(input.Body.reduce((a, b) => a + b, 0))
    bodies.set(input.PartNumber, sums)
    if (input.PartNumber === 2 && sums.length < 3) throw Object.assign(new Error('Please reduce your request rate.'), { name: 'SlowDown', $metadata: { httpStatusCode: 503 } })
    return { ETag: `"etag-${input.PartNumber}"` }
  })
  const outcome = await uploadStream(source(3 * PART), target, deps)
  t.equal(outcome.parts, 3)
  t.equal(calls, 5, 'part 2 sent three times')
  const sums = bodies.get(2) ?? []
  t.ok(sums.length === 3 && sums.every((sum) => sum === sums[0]), 'each attempt re-sent the same bytes')
  t.equal(s3.commandCalls(AbortMultipartUploadCommand).length, 0)
})

t.test('a 4xx part failure is not retried', async (t) => {
  const { s3, deps } = setup({}, { attempts: 5, baseDelayMs: 1, maxDelayMs: 5 })
  s3.on(UploadPartCommand).rejects(Object.assign(new Error('Access Denied'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } }))
  await t.rejects(uploadStream(source(3 * PART), target, deps), { code: 'FST_S3CHUNK_STORAGE', s3: { code: 'AccessDenied', retryable: false, attempts: 1 } })
  t.ok(s3.commandCalls(UploadPartCommand).length <= 2, 'one attempt per part dispatched, no retries')
  t.equal(s3.commandCalls(AbortMultipartUploadCommand).length, 1)
})

t.test('a part that keeps failing is given up after the configured attempts, then aborted', async (t) => {
  const { s3, deps } = setup({ partConcurrency: 1 }, { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 })
  s3.on(UploadPartCommand).rejects(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))
  await t.rejects(uploadStream(source(3 * PART), target, deps), { code: 'FST_S3CHUNK_STORAGE', s3: { code: 'ECONNRESET', retryable: true, attempts: 3 } })
  t.equal(s3.commandCalls(UploadPartCommand).length, 3)
  t.equal(s3.commandCalls(AbortMultipartUploadCommand).length, 1)
})

t.test('the memory budget holds parts back across uploads and the source waits', async (t) => {
  const budget = new PartBufferPool(3 * PART)
  const { s3, deps } = setup({ buffers: budget, partConcurrency: 4 })
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  s3.on(UploadPartCommand).callsFake(async (input: { PartNumber: number }) => {
    await gate
    return { ETag: `"etag-${input.PartNumber}"` }
  })
  const uploads = [uploadStream(source(10 * PART), target, deps), uploadStream(source(10 * PART), { ...target, key: 'other' }, deps)]
  await sleep(100)
  t.ok(budget.used <= 3 * PART, `used ${budget.used} ≤ budget ${3 * PART}`)
  t.ok(budget.waiting >= 1, 'a part waits for room')
  release()
  const outcomes = await Promise.all(uploads)
  t.same(outcomes.map((o) => o.parts), [10, 10])
  t.ok(budget.peak <= 3 * PART, `peak ${budget.peak} within budget`)
  t.equal(budget.used, 0)
  t.ok(budget.free > 0 && budget.free <= 3 * PART, 'buffers kept for reuse, within the budget')
})

t.test('part buffers are reused from one part (and upload) to the next', async (t) => {
  const { s3, deps } = setup({ partConcurrency: 1 })
  const seen = new Set<ArrayBufferLike>()
  s3.on(UploadPartCommand).callsFake(async (input: { PartNumber: number, Body: Uint8Array }) => {
    seen.add(input.Body.buffer)
    return { ETag: `"etag-${input.PartNumber}"` }
  })
  await uploadStream(source(8 * PART), target, deps)
  await uploadStream(source(8 * PART), { ...target, key: 'second' }, deps)
  t.ok(seen.size <= 2, `16 parts went out in ${seen.size} buffers`)
  t.equal(deps.buffers.used, 0)
})

t.test('a part number beyond maxParts aborts with a clear 413', async (t) => {
  const { s3, deps } = setup({ maxParts: 3 })
  await t.rejects(uploadStream(source(5 * PART), target, deps), { code: 'FST_S3CHUNK_PART_LIMIT', statusCode: 413 })
  t.equal(s3.commandCalls(AbortMultipartUploadCommand).length, 1)
  t.equal(s3.commandCalls(CompleteMultipartUploadCommand).length, 0)
})

t.test('with a checksum, parts carry it and the object checksum is returned', async (t) => {
  const { s3, deps } = setup({ checksum: 'CRC32' })
  // The CRC32 is computed by the plugin (zlib.crc32) and sent with the part, so the SDK computes none; S3 echoes it.
  s3.on(UploadPartCommand).callsFake(async (input: { PartNumber: number, ChecksumCRC32?: string, Body: Uint8Array }) => ({
    ETag: `"etag-${input.PartNumber}"`,
    ChecksumCRC32: input.ChecksumCRC32 === crc32Base64(input.Body) ? `crc-${input.PartNumber}-CRC32` : 'wrong'
  }))
  s3.on(CompleteMultipartUploadCommand).resolves({ ETag: '"final-2"', ChecksumCRC32: 'whole-2' })
  deps.sender = createInlineSender(deps.client, { checksum: 'CRC32', retry: noRetry })
  const outcome = await uploadStream(source(2 * PART), target, deps)
  t.equal(outcome.checksum, 'whole-2')
  t.equal(s3.commandCalls(CreateMultipartUploadCommand)[0]?.args[0].input.ChecksumAlgorithm, 'CRC32')
  t.same(s3.commandCalls(CompleteMultipartUploadCommand)[0]?.args[0].input.MultipartUpload?.Parts, [
    { PartNumber: 1, ETag: '"etag-1"', ChecksumCRC32: 'crc-1-CRC32' },
    { PartNumber: 2, ETag: '"etag-2"', ChecksumCRC32: 'crc-2-CRC32' }
  ])
})

t.test('a small file whose PutObject fails retryably is re-sent from its buffer', async (t) => {
  const { s3, deps } = setup({}, { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 })
  let calls = 0
  s3.on(PutObjectCommand).callsFake(async () => {
    calls++
    if (calls < 3) throw Object.assign(new Error('The provided x-amz-content-sha256 header does not match'), { name: 'XAmzContentSHA256Mismatch', $metadata: { httpStatusCode: 400 } })
    return { ETag: '"single"' }
  })
  const outcome = await uploadStream(source(100), target, deps)
  t.equal(outcome.etag, 'single')
  t.equal(calls, 3, 'a body corrupted in transit is re-sent')
})

t.test('a small file whose PutObject is refused fails at once with the S3 details', async (t) => {
  const { s3, deps } = setup({}, { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 })
  s3.on(PutObjectCommand).rejects(Object.assign(new Error('The specified bucket does not exist'), { name: 'NoSuchBucket', $metadata: { httpStatusCode: 404, requestId: 'r1' } }))
  await t.rejects(uploadStream(source(100), target, deps), { code: 'FST_S3CHUNK_STORAGE', s3: { operation: 'PutObject', code: 'NoSuchBucket', status: 404, requestId: 'r1', attempts: 1 } })
  t.equal(s3.commandCalls(PutObjectCommand).length, 1)
})

t.test('a Complete whose answer was lost (NoSuchUpload on the retry) is recognised as stored', async (t) => {
  const { s3, deps } = setup()
  s3.on(CompleteMultipartUploadCommand).rejects(noSuchUpload())
  s3.on(ListPartsCommand).rejects(noSuchUpload())
  // Part ETags that are not MD5s (SSE-KMS): the object is known by its size and part count.
  s3.on(HeadObjectCommand).resolves({ ContentLength: 2 * PART + 1, ETag: '"abc-3"' })
  const outcome = await uploadStream(source(2 * PART + 1), target, deps)
  t.same(outcome, { size: 2 * PART + 1, parts: 3, etag: 'abc-3' })
  t.equal(s3.commandCalls(CompleteMultipartUploadCommand).length, 1)
})

t.test('NoSuchUpload on Complete with no matching object is a failure', async (t) => {
  const { s3, deps } = setup()
  s3.on(CompleteMultipartUploadCommand).rejects(noSuchUpload())
  s3.on(ListPartsCommand).rejects(noSuchUpload())
  s3.on(HeadObjectCommand).resolves({ ContentLength: 5, ETag: '"old"' })
  await t.rejects(uploadStream(source(2 * PART + 1), target, deps), { code: 'FST_S3CHUNK_STORAGE', s3: { code: 'NoSuchUpload' } })
})

t.test('a Complete carried out but whose answer was lost is not sent twice: the upload is gone, the object is there', async (t) => {
  const { s3, deps } = setup({}, { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 })
  md5Etags(s3)
  s3.on(CompleteMultipartUploadCommand).callsFake(async () => {
    s3.on(ListPartsCommand).rejects(noSuchUpload())
    throw connectionReset()
  })
  const head = await storedHead(2 * PART + 1)
  s3.on(HeadObjectCommand).resolves(head)
  const outcome = await uploadStream(source(2 * PART + 1), target, deps)
  t.same(outcome, { size: 2 * PART + 1, parts: 3, etag: head.ETag.replaceAll('"', '') })
  t.equal(s3.commandCalls(CompleteMultipartUploadCommand).length, 1, 'S3 had carried it out: no second Complete to race it')
  // Aborted all the same: on MinIO a gone upload can come back when a Complete still running fails; the abort waits it out.
  t.equal(s3.commandCalls(AbortMultipartUploadCommand).length, 1)
})

t.test('an object of the same size but other bytes is not mistaken for the upload', async (t) => {
  const { s3, deps } = setup({}, { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 })
  md5Etags(s3)
  s3.on(CompleteMultipartUploadCommand).rejects(connectionReset())
  s3.on(HeadObjectCommand).resolves({ ContentLength: 2 * PART + 1, ETag: `"${'0'.repeat(32)}-3"` })
  await t.rejects(uploadStream(source(2 * PART + 1), target, deps), { code: 'FST_S3CHUNK_STORAGE', s3: { operation: 'CompleteMultipartUpload', code: 'ECONNRESET', attempts: 2 } })
  t.equal(s3.commandCalls(AbortMultipartUploadCommand).length, 1, 'given up, the upload is aborted')
})

t.test('a Complete answered 5xx, and not stored, is sent again', async (t) => {
  const { s3, deps } = setup({}, { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 })
  s3.on(CompleteMultipartUploadCommand)
    .rejectsOnce(Object.assign(new Error('We encountered an internal error'), { name: 'InternalError', $metadata: { httpStatusCode: 500 } }))
    .resolves({ ETag: '"final-3"' })
  const outcome = await uploadStream(source(2 * PART + 1), target, deps)
  t.equal(outcome.etag, 'final-3')
  t.equal(s3.commandCalls(CompleteMultipartUploadCommand).length, 2)
  t.equal(s3.commandCalls(ListPartsCommand).length, 1, 'looked the upload up before sending it again')
})

t.test('a Complete that fails for good, yet whose object is there after the abort, is reported stored', async (t) => {
  // MinIO: a retried Complete racing the first one (still running) answers
  // InvalidPart, and the first may still finish before the abort lands.
  const { s3, deps } = setup()
  md5Etags(s3)
  s3.on(CompleteMultipartUploadCommand).rejects(Object.assign(new Error('One or more of the specified parts could not be found'), { name: 'InvalidPart', $metadata: { httpStatusCode: 400 } }))
  s3.on(HeadObjectCommand).resolves(await storedHead(3 * PART))
  const outcome = await uploadStream(source(3 * PART), target, deps)
  t.equal(outcome.parts, 3)
  const order = s3.calls().map((call) => (call.args[0] as { constructor: { name: string } }).constructor.name).filter((name) => name === 'AbortMultipartUploadCommand' || name === 'HeadObjectCommand')
  t.same(order, ['AbortMultipartUploadCommand', 'HeadObjectCommand'], 'the abort went out first: nothing can complete after the look')
})

t.test('after a failed Complete, an object of the same size and part count is not taken for the upload while it was still open (non-MD5 ETags)', async (t) => {
  const { s3, deps } = setup()
  s3.on(CompleteMultipartUploadCommand).rejects(Object.assign(new Error('One or more of the specified parts could not be found'), { name: 'InvalidPart', $metadata: { httpStatusCode: 400 } }))
  // An older object at the key: same size, same part count, other bytes (ETags that are not MD5s cannot tell).
  s3.on(HeadObjectCommand).resolves({ ContentLength: 2 * PART + 1, ETag: '"older-3"' })
  await t.rejects(uploadStream(source(2 * PART + 1), target, deps), { code: 'FST_S3CHUNK_STORAGE', s3: { code: 'InvalidPart' } })
  t.equal(s3.commandCalls(AbortMultipartUploadCommand).length, 1)
})

t.test('an abort that got no answer is sent again even when ListParts already says gone', async (t) => {
  // On MinIO, ListParts says gone while a Complete still runs; the upload comes back if it fails.
  const { s3, deps } = setup({}, { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 })
  s3.on(AbortMultipartUploadCommand).rejectsOnce(connectionReset()).resolves({})
  s3.on(ListPartsCommand).rejects(noSuchUpload())
  await t.rejects(uploadStream(source(10 * PART, 100, 3 * PART), target, deps), /client went away/)
  t.equal(s3.commandCalls(AbortMultipartUploadCommand).length, 2)
})

t.test('an abort is checked with ListParts, and an upload still listed is aborted again', async (t) => {
  const { s3, deps } = setup({}, { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 })
  s3.on(ListPartsCommand).resolvesOnce({ Parts: [{ PartNumber: 1 }] }).rejects(noSuchUpload())
  await t.rejects(uploadStream(source(10 * PART, 100, 3 * PART), target, deps), /client went away/)
  t.equal(s3.commandCalls(AbortMultipartUploadCommand).length, 2)
  t.equal(s3.commandCalls(ListPartsCommand).length, 2)
})

t.test('an abort that S3 keeps refusing is given up after its rounds and logged; the original error stands', async (t) => {
  const errors: unknown[] = []
  const log = { error: (details: unknown) => { errors.push(details) } } as unknown as NonNullable<UploadDeps['log']>
  const { s3, deps } = setup({ log }, { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 })
  s3.on(AbortMultipartUploadCommand).rejects(Object.assign(new Error('Service Unavailable'), { name: 'ServiceUnavailable', $metadata: { httpStatusCode: 503 } }))
  s3.on(ListPartsCommand).resolves({ Parts: [] })
  await t.rejects(uploadStream(source(10 * PART, 100, 3 * PART), target, deps), /client went away/)
  t.equal(s3.commandCalls(AbortMultipartUploadCommand).length, 2, 'one abort per round, 2 rounds, then given up')
  t.match(errors, [{ key: 'media/file.bin', uploadId: 'upload-1', s3: { operation: 'AbortMultipartUpload', code: 'ServiceUnavailable' } }])
})

t.test('an abort that ListParts cannot check (not allowed) is trusted: one abort, nothing logged', async (t) => {
  const errors: unknown[] = []
  const log = { error: (details: unknown) => { errors.push(details) } } as unknown as NonNullable<UploadDeps['log']>
  const { s3, deps } = setup({ log }, { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 })
  s3.on(ListPartsCommand).rejects(Object.assign(new Error('Access Denied'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } }))
  await t.rejects(uploadStream(source(10 * PART, 100, 3 * PART), target, deps), /client went away/)
  t.equal(s3.commandCalls(AbortMultipartUploadCommand).length, 1)
  t.same(errors, [])
})

t.test('a CreateMultipartUpload answered 503 is retried by the plugin', async (t) => {
  const { s3, deps } = setup({}, { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 })
  s3.on(CreateMultipartUploadCommand)
    .rejectsOnce(Object.assign(new Error('Slow Down'), { name: 'SlowDown', $metadata: { httpStatusCode: 503 } }))
    .resolves({ UploadId: 'upload-2' })
  const outcome = await uploadStream(source(2 * PART + 1), target, deps)
  t.equal(outcome.parts, 3)
  t.equal(s3.commandCalls(CreateMultipartUploadCommand).length, 2)
})

t.test('multipartEtag is the MD5 of the parts\' MD5s, then the part count; null for non-MD5 ETags', async (t) => {
  // Computed independently (Python hashlib) for the parts 'part one' and 'part two'.
  t.equal(multipartEtag(['"3303e12af474ca11d85ed2966a932992"', '3ea4e15b91a17dc76052c56cfcdf67a2']), '0732917abc3288784e318ac0aab1757a-2')
  t.equal(multipartEtag(['"etag-1"']), null)
  t.equal(multipartEtag([undefined]), null)
})
