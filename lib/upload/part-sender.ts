import type { S3Client } from '@aws-sdk/client-s3'
import type { PartDone, PartTask } from './part-task.js'
import { sendPart } from './send-part.js'
import { describeS3Error, storageFailure } from './s3-failure.js'

/** Sends one part to S3. Rejects with a StorageFailure. */
export interface PartSender {
  send: (task: PartTask) => Promise<PartDone>
  /** Releases threads and sockets; pending sends finish first. */
  close: () => Promise<void>
  stats: () => { threads: number, queueSize: number, completed: number, utilization: number } | null
}

/** Mode `inline`: the same coordinator, parts sent from the main thread's client. */
export function createInlineSender (client: S3Client): PartSender {
  return {
    async send (task) {
      try {
        return await sendPart(client, task)
      } catch (error) {
        throw storageFailure(describeS3Error('UploadPart', error))
      }
    },
    async close () {},
    stats: () => null
  }
}
