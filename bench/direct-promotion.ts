// How long /s3/complete's promotion (the server-side copy of a checked staged
// object to its final key) takes on MinIO: one CopyObject up to 5 GiB, a
// parallel multipart copy above. Not part of `npm test` or `npm run bench`:
//   npx tsx bench/direct-promotion.ts 64MiB 6GiB
// (COPY_PART_MIB and COPY_CONCURRENCY override the multipart copy's part size and parallelism.)
// Starts its own MinIO (or uses S3_ENDPOINT), writes each staged object with a
// multipart upload of one repeated random part, copies it, prints the time.
import { CompleteMultipartUploadCommand, CreateBucketCommand, CreateMultipartUploadCommand, DeleteBucketCommand, DeleteObjectCommand, HeadObjectCommand, UploadPartCommand } from '@aws-sdk/client-s3'
import { randomBytes } from 'node:crypto'
import { copyChecked } from '../lib/direct/promote.ts'
import { startS3 } from '../test/support/s3-server.ts'
import { testClient } from '../test/support/s3.ts'

const MiB = 1024 * 1024
const sizes = (process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['64MiB']).map((arg) => {
  const match = /^(\d+)(MiB|GiB)$/.exec(arg)
  if (match === null) throw new Error(`size like 64MiB or 6GiB, not ${arg}`)
  return Number(match[1]) * (match[2] === 'GiB' ? 1024 * MiB : MiB)
})

const server = await startS3({ quiet: true })
const client = testClient(server)
const bucket = `promotion-${Date.now().toString(36)}`
await client.send(new CreateBucketCommand({ Bucket: bucket }))
const retry = { attempts: 4, baseDelayMs: 200, maxDelayMs: 10_000 }
try {
  for (const size of sizes) {
    const staging = `media/.staging/alice/${randomBytes(4).toString('hex')}/big.bin`
    const final = staging.replace('/.staging/', '/')
    const partSize = 64 * MiB
    const part = randomBytes(partSize)
    const written = Date.now()
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: staging, ContentType: 'application/octet-stream' }))
    const count = Math.ceil(size / partSize)
    const etags: string[] = []
    for (let first = 0; first < count; first += 4) {
      await Promise.all(Array.from({ length: Math.min(4, count - first) }, async (_, i) => {
        const n = first + i
        const body = part.subarray(0, Math.min(partSize, size - n * partSize))
        const answer = await client.send(new UploadPartCommand({ Bucket: bucket, Key: staging, UploadId, PartNumber: n + 1, Body: body }))
        etags[n] = answer.ETag ?? ''
      }))
    }
    await client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: staging, UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }))
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: staging }))
    const writeMs = Date.now() - written
    const started = process.hrtime.bigint()
    const copied = await copyChecked({
      bucket, source: staging, sourceEtag: head.ETag ?? '', size, key: final, contentType: 'application/octet-stream', metadata: { 'original-name': 'big.bin' }, ifNoneMatch: true
    }, {
      client,
      retry,
      ...(process.env.COPY_PART_MIB !== undefined ? { partSize: Number(process.env.COPY_PART_MIB) * MiB } : {}),
      ...(process.env.COPY_CONCURRENCY !== undefined ? { concurrency: Number(process.env.COPY_CONCURRENCY) } : {})
    })
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: staging }))
    const ms = Number(process.hrtime.bigint() - started) / 1e6
    const check = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: final }))
    console.log(`${(size / MiB).toFixed(0)} MiB: promoted in ${ms.toFixed(0)} ms (${copied.parts === 0 ? 'one CopyObject' : `${copied.parts} UploadPartCopy parts`}; copy + delete of staging), ${(size / MiB / (ms / 1000)).toFixed(0)} MiB/s; final size ${check.ContentLength}; staging written in ${writeMs} ms`)
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: final }))
  }
} finally {
  await client.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => {})
  await server.stop()
}
