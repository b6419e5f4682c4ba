import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import type { FastifyBaseLogger } from 'fastify'
import { SNIFF_BYTES, sniffType, typeAllowed } from '../content-types.js'
import { UploadRejectedError } from '../errors.js'
import type { S3ChunkConfig } from '../options.js'
import { etagParts, etagValue, objectUrl } from '../s3-client.js'
import type { S3File } from '../types.js'
import { describeS3Error, s3Call, storageFailure } from '../upload/s3-failure.js'

/** Metadata key that carries the client's filename (percent-encoded: S3 metadata is ASCII). */
export const ORIGINAL_NAME_META = 'original-name'

/**
 * Checks an object a browser uploaded straight to S3 — it exists, its size
 * (as S3 counted it, not as the client declared it) is within maxFileSize,
 * and its first bytes are of an allowed type — and describes it. An object
 * that breaks a rule is deleted, and the call fails with 422.
 */
export async function verifyUpload (client: S3Client, config: S3ChunkConfig, key: string, log: FastifyBaseLogger): Promise<S3File> {
  let head
  try {
    head = await client.send(new HeadObjectCommand({ Bucket: config.bucket, Key: key }))
  } catch (error) {
    if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) {
      throw new UploadRejectedError('there is no object at that key')
    }
    throw storageFailure(describeS3Error('HeadObject', error))
  }
  const size = head.ContentLength ?? 0
  const declared = head.ContentType ?? 'application/octet-stream'
  const reject = async (reason: string): Promise<never> => {
    await s3Call('DeleteObject', () => client.send(new DeleteObjectCommand({ Bucket: config.bucket, Key: key })))
    log.info({ key, reason }, 'fastify-s3-chunk: direct upload rejected and deleted')
    throw new UploadRejectedError(reason)
  }
  if (size > config.maxFileSize) await reject(`it is ${size} bytes, more than the ${config.maxFileSize} allowed`)
  if (config.allowedTypes !== undefined) {
    if (!typeAllowed(declared, config.allowedTypes)) await reject(`its declared type ${declared} is not allowed`)
    const sniffed = size === 0 ? undefined : await sniffType(await firstBytes(client, config.bucket, key))
    if (sniffed === undefined) await reject('its content is not of a recognisable allowed type')
    else if (!typeAllowed(sniffed, config.allowedTypes)) await reject(`its content is ${sniffed}, which is not allowed`)
  }
  const encodedName = head.Metadata?.[ORIGINAL_NAME_META]
  const file: S3File = {
    fieldName: 'file',
    originalName: encodedName !== undefined ? safeDecode(encodedName) : key.split('/').pop() ?? key,
    key,
    bucket: config.bucket,
    size,
    contentType: declared,
    etag: etagValue(head.ETag),
    location: objectUrl(config.s3, config.bucket, key),
    parts: etagParts(head.ETag)
  }
  if (head.VersionId !== undefined) file.versionId = head.VersionId
  return file
}

async function firstBytes (client: S3Client, bucket: string, key: string): Promise<Uint8Array> {
  const object = await s3Call('GetObject', () => client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=0-${SNIFF_BYTES - 1}` })))
  return await (object.Body as { transformToByteArray: () => Promise<Uint8Array> }).transformToByteArray()
}

function safeDecode (value: string): string {
  try { return decodeURIComponent(value) } catch { return value }
}
