// Contender (d), the limit: the load client itself sends a generated file
// straight to S3, no server in between — one PutObject when it fits in one
// part (as the plugin and lib-storage do), else a multipart upload with
// `concurrency` parts in flight, aborted on failure.
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client
} from '@aws-sdk/client-s3'
import { fileBytes } from './generated-file.ts'

export interface DirectUpload {
  client: S3Client
  bucket: string
  key: string
  seed: number
  size: number
  partSize: number
  concurrency: number
  signal: AbortSignal
}

export async function directUpload (upload: DirectUpload): Promise<void> {
  const { client, bucket, key, seed, size, partSize, signal } = upload
  const options = { abortSignal: signal }
  if (size <= partSize) {
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: fileBytes(seed, 0, size), ContentLength: size, ContentType: 'application/octet-stream' }), options)
    return
  }
  const created = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: 'application/octet-stream' }), options)
  const uploadId = created.UploadId
  if (uploadId === undefined) throw new Error('CreateMultipartUpload answered without an UploadId')
  const partCount = Math.ceil(size / partSize)
  const completed: CompletedPart[] = []
  let next = 1
  let failed = false
  // `concurrency` senders each take the next part number until none is left (or one failed).
  const sender = async (): Promise<void> => {
    while (next <= partCount && !failed && !signal.aborted) {
      const number = next++
      const offset = (number - 1) * partSize
      const length = Math.min(partSize, size - offset)
      const part = await client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: number, Body: fileBytes(seed, offset, length), ContentLength: length }), options)
      completed.push({ PartNumber: number, ETag: part.ETag })
    }
  }
  try {
    // Settled, not Promise.all: no part may still be in flight when the upload is aborted.
    const senders = await Promise.allSettled(Array.from({ length: Math.min(upload.concurrency, partCount) }, async () => {
      try {
        await sender()
      } catch (error) {
        failed = true
        throw error
      }
    }))
    const rejected = senders.find((outcome) => outcome.status === 'rejected')
    if (rejected !== undefined) throw rejected.reason
    if (signal.aborted) throw signal.reason
    completed.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0))
    await client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: completed } }), options)
  } catch (error) {
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId })).catch(() => {})
    throw error
  }
}
