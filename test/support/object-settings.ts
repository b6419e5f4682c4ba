// Shared by the object-settings tests (issue 11): the `objectParams` contract as
// local types until lib/ exports them, and S3 reads that carry SSE-C keys.
import { GetObjectCommand, HeadObjectCommand, type HeadObjectCommandOutput, type S3Client } from '@aws-sdk/client-s3'
import type { FastifyRequest } from 'fastify'
import type { ObjectParams, S3ChunkOptions, S3File } from 'fastify-s3-chunk'
import { createHash } from 'node:crypto'
import type { Readable } from 'node:stream'
import { boundary, postRaw, type RawResponse } from './multipart.ts'

export type { ObjectParams } from 'fastify-s3-chunk'

/** Register options with objectParams (kept as a helper: the tests read as they were written first). */
export function withObjectParams (options: Partial<S3ChunkOptions> & { bucket: string, objectParams: NonNullable<S3ChunkOptions['objectParams']> }): Partial<S3ChunkOptions> & { bucket: string } {
  return options
}

/** request.s3File({ objectParams }) per call. */
export async function s3FileWith (request: FastifyRequest, options: { objectParams: ObjectParams }): Promise<S3File> {
  return await request.s3File(options)
}

export { attachment } from 'fastify-s3-chunk'

export interface SseC { SSECustomerAlgorithm: 'AES256', SSECustomerKey: string }

/** HeadObject, without the SDK's $metadata. */
export async function head (client: S3Client, bucket: string, key: string, sse?: SseC): Promise<Omit<HeadObjectCommandOutput, '$metadata'>> {
  const { $metadata, ...rest } = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key, ...sse }))
  return rest
}

/** SHA-256 and size of an object read with GetObject (with its SSE-C key when given). */
export async function digest (client: S3Client, bucket: string, key: string, sse?: SseC): Promise<{ sha256: string, size: number }> {
  const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, ...sse }))
  const hash = createHash('sha256')
  let size = 0
  for await (const chunk of object.Body as Readable) {
    hash.update(chunk as Buffer)
    size += (chunk as Buffer).byteLength
  }
  return { sha256: hash.digest('hex'), size }
}

/** The HTTP status an SDK call failed with (HEAD errors have no body, so no name). */
export async function failureStatus (call: Promise<unknown>): Promise<number | 'resolved'> {
  try {
    await call
    return 'resolved'
  } catch (error) {
    return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode ?? -1
  }
}

/** HeadObject's ETag as S3File carries it (quotes stripped). */
export function bareEtag (etag: string | undefined): string {
  return (etag ?? '').replace(/"/g, '')
}

/**
 * A form whose file part names its file with RFC 7578/8187's `filename*`, so
 * the server sees characters a plain quoted `filename` cannot carry (a real
 * double quote, an apostrophe, any Unicode). Fields go first, in order.
 */
export async function postWithFilenameStar (url: string, fields: Array<{ name: string, value: string }>, file: { name: string, filename: string, contentType: string, data: Uint8Array }): Promise<RawResponse> {
  const separator = boundary()
  const chunks: Uint8Array[] = []
  for (const field of fields) {
    chunks.push(Buffer.from(`--${separator}\r\nContent-Disposition: form-data; name="${field.name}"\r\n\r\n${field.value}\r\n`, 'utf8'))
  }
  const star = [...Buffer.from(file.filename, 'utf8')].map((byte) => /[A-Za-z0-9.\-_~]/.test(String.fromCharCode(byte)) ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`).join('')
  chunks.push(Buffer.from(
    `--${separator}\r\nContent-Disposition: form-data; name="${file.name}"; filename*=UTF-8''${star}\r\n` +
    `Content-Type: ${file.contentType}\r\n\r\n`, 'utf8'))
  chunks.push(file.data, Buffer.from(`\r\n--${separator}--\r\n`))
  const length = chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0)
  return await postRaw(url, chunks, { 'content-type': `multipart/form-data; boundary=${separator}`, 'content-length': String(length) })
}

/**
 * Checks a Content-Disposition value is `attachment; filename="<ASCII>";
 * filename*=UTF-8''<RFC 8187 attr-chars and %XX>` and returns both names
 * (the extended one decoded), or null when it is not of that shape.
 */
export function parseAttachment (header: string): { fallback: string, name: string } | null {
  // RFC 8187 attr-char: ALPHA DIGIT ! # $ & + - . ^ _ ` | ~ (no ' ( ) * — encodeURIComponent leaves those).
  const match = /^attachment; filename="([\x20-\x21\x23-\x5b\x5d-\x7e]*)"; filename\*=UTF-8''((?:[A-Za-z0-9!#$&+\-.^_`|~]|%[0-9A-Fa-f]{2})*)$/.exec(header)
  if (match === null) return null
  return { fallback: match[1] ?? '', name: decodeURIComponent(match[2] ?? '') }
}
