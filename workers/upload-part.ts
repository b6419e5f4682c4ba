import type { S3Client } from '@aws-sdk/client-s3'
import { workerData } from 'piscina'
import { createS3Client } from '../lib/s3-client.js'
import type { S3Settings } from '../lib/options.js'
import type { PartEnvelope, PartTask } from '../lib/upload/part-task.js'
import { sendPart } from '../lib/upload/send-part.js'
import { describeS3Error } from '../lib/upload/s3-failure.js'

// One client per thread, kept for the thread's life so its keep-alive sockets are reused.
let client: S3Client | undefined

/**
 * Piscina task: one UploadPart. Never throws — an error's class and metadata
 * would be lost crossing the thread boundary, so it answers an envelope.
 */
export default async function uploadPart (task: PartTask): Promise<PartEnvelope> {
  client ??= createS3Client((workerData as { s3: S3Settings }).s3)
  try {
    const done = await sendPart(client, task)
    return { ok: true, ...done }
  } catch (error) {
    return { ok: false, ...describeS3Error('UploadPart', error) }
  }
}
