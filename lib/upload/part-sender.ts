import type { S3Client } from '@aws-sdk/client-s3'
import type { ObjectDone, ObjectTask, PartDone, PartPolicy, PartTask } from './part-task.js'
import { failureInfo, putObjectWithRetries, sendPartWithRetries } from './send-part.js'
import { storageFailure } from './s3-failure.js'

/**
 * Sends one part to S3, retries included. Resolves with the part's buffer
 * handed back for reuse (`body`); rejects with a StorageFailure whose
 * `partBuffer`, when set, is the buffer handed back.
 */
export interface PartSender {
  send: (task: PartTask) => Promise<PartDone>
  /** Sends a one-part file as one PutObject, retries included; resolves and rejects as `send` does. */
  put: (task: ObjectTask) => Promise<ObjectDone>
  /** Releases threads and sockets; pending sends finish first. */
  close: () => Promise<void>
  stats: () => { threads: number, queueSize: number, completed: number } | null
}

/** Mode `inline`: the same coordinator, parts and single PUTs sent from the main thread. */
export function createInlineSender (partClient: S3Client, policy: PartPolicy): PartSender {
  return {
    async send (task) {
      try {
        return { ...await sendPartWithRetries(partClient, task, policy), body: task.body }
      } catch (error) {
        throw storageFailure(failureInfo('UploadPart', error), task.body)
      }
    },
    async put (task) {
      try {
        return { ...await putObjectWithRetries(partClient, task, policy), body: task.body }
      } catch (error) {
        throw storageFailure(failureInfo('PutObject', error), task.body)
      }
    },
    // The client is the plugin's, closed with it.
    async close () {},
    stats: () => null
  }
}
