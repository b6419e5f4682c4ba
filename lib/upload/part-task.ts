import type { S3FailureInfo } from './s3-failure.js'

/** One UploadPart to perform; crosses to a worker thread with `body` transferred. */
export interface PartTask {
  bucket: string
  key: string
  uploadId: string
  partNumber: number
  /** The part's own ArrayBuffer (transferred, not copied, to a worker). */
  body: ArrayBuffer
  /** Bytes of `body` that belong to the part (the last part's buffer is not full). */
  length: number
}

export interface PartDone {
  etag: string
}

/** What a worker answers: plain data, since errors lose their class crossing threads. */
export type PartEnvelope =
  | ({ ok: true } & PartDone)
  | ({ ok: false } & S3FailureInfo)
