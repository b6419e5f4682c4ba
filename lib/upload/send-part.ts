import { UploadPartCommand, type S3Client } from '@aws-sdk/client-s3'
import type { PartDone, PartTask } from './part-task.js'

/** The one UploadPart call, shared by the inline sender and the worker threads. */
export async function sendPart (client: S3Client, task: PartTask): Promise<PartDone> {
  const body = new Uint8Array(task.body, 0, task.length)
  const result = await client.send(new UploadPartCommand({
    Bucket: task.bucket,
    Key: task.key,
    UploadId: task.uploadId,
    PartNumber: task.partNumber,
    Body: body,
    ContentLength: task.length
  }))
  if (result.ETag === undefined) throw Object.assign(new Error('UploadPart answered without an ETag'), { name: 'MissingETag' })
  return { etag: result.ETag }
}
