import type { S3Client } from '@aws-sdk/client-s3'
import { move, transferableSymbol, valueSymbol, workerData } from 'piscina'
import { createPartClient } from '../lib/s3-client.js'
import type { PartMemory } from '../lib/upload/part-buffer-pool.js'
import type { ObjectEnvelope, ObjectTask, PartEnvelope, PartTask } from '../lib/upload/part-task.js'
import { failureInfo, putObjectWithRetries, sendPartWithRetries } from '../lib/upload/send-part.js'
import type { UploadWorkerData } from '../lib/upload/worker-pool-sender.js'

const { s3, policy } = workerData as UploadWorkerData
// The newest credentials the main thread handed over, when the app gave a provider.
let handed: PartTask['credentials']
// One client per thread, kept for the thread's life so its keep-alive sockets are reused.
let client: S3Client | undefined

function clientFor (task: PartTask | ObjectTask): S3Client {
  if (task.credentials !== undefined) handed = task.credentials
  client ??= createPartClient(s3, s3.credentialsFromParts === true
    ? async () => { if (handed === undefined) throw new Error('no credentials handed to the worker thread'); return handed }
    : undefined, policy.payloadSigning)
  return client
}

/**
 * Piscina task (the default export): one UploadPart, retries included. Never
 * throws — an error's class and metadata would be lost crossing the thread
 * boundary, so it answers an envelope the main thread rebuilds the error
 * from. A part moved here in an ArrayBuffer goes back with it (moved, not
 * copied) to be reused; a SharedArrayBuffer was read in place and stays where
 * it is.
 */
export default async function uploadPart (task: PartTask): Promise<PartEnvelope> {
  let envelope: PartEnvelope
  try {
    envelope = { ok: true, ...await sendPartWithRetries(clientFor(task), task, policy), body: task.body }
  } catch (error) {
    envelope = { ok: false, ...failureInfo('UploadPart', error), body: task.body }
  }
  return handBack(envelope, task.body)
}

/**
 * Piscina task `putObject`: a file of one part as one PutObject, retries
 * included; answers as uploadPart does. Its body was shared or copied here,
 * never moved: nothing to hand back.
 */
export async function putObject (task: ObjectTask): Promise<ObjectEnvelope> {
  try {
    return { ok: true, ...await putObjectWithRetries(clientFor(task), task, policy) }
  } catch (error) {
    return { ok: false, ...failureInfo('PutObject', error) }
  }
}

/** A shared buffer stays the main thread's: nothing to hand back; an ArrayBuffer is moved back with the answer. */
function handBack<T extends { body?: PartMemory | undefined }> (envelope: T, body: PartMemory): T {
  if (body instanceof SharedArrayBuffer) return { ...envelope, body: undefined }
  return move({ [transferableSymbol]: body, [valueSymbol]: envelope }) as unknown as T
}
