import { BadRequestError } from '../errors.js'
import type { DirectConfig } from '../options.js'
import { isWellFormed } from './keys.js'

/** Metadata key that carries the client's filename. */
export const ORIGINAL_NAME_META = 'original-name'

/**
 * S3 allows 2 KiB of user metadata, "the sum of the bytes of each key and
 * value"; counted here with the `x-amz-meta-` prefix, so a store that counts
 * it too is never exceeded.
 */
export const MAX_METADATA_BYTES = 2048

/**
 * The S3 user metadata of a direct upload: the filename, and the Uppy
 * `metadata` fields the app allowed (`direct.metadataFields`); every other
 * field is dropped. Values are percent-encoded (S3 metadata is ASCII, and
 * S3 would store CR/LF or non-ASCII as sent or refuse them). 400 for a value
 * that is not a string, number or boolean, is not well-formed Unicode, or
 * makes the whole exceed 2 KiB.
 */
export function directMetadata (direct: DirectConfig, filename: string, metadata: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = { [ORIGINAL_NAME_META]: encodeValue(ORIGINAL_NAME_META, filename) }
  for (const name of direct.metadataFields) {
    const value = metadata[name]
    if (value === undefined || value === null) continue
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw new BadRequestError(`metadata.${name} must be a string`)
    }
    out[name] = encodeValue(name, String(value))
  }
  let bytes = 0
  for (const [name, value] of Object.entries(out)) bytes += `x-amz-meta-${name}`.length + value.length
  if (bytes > MAX_METADATA_BYTES) throw new BadRequestError(`the filename and metadata take ${bytes} bytes encoded; S3 stores at most ${MAX_METADATA_BYTES}`)
  return out
}

function encodeValue (name: string, value: string): string {
  if (!isWellFormed(value)) throw new BadRequestError(`${name === ORIGINAL_NAME_META ? 'filename' : `metadata.${name}`} is not well-formed Unicode`)
  return encodeURIComponent(value)
}

/**
 * Uppy's metadata from a query string: `@uppy/aws-s3` sends the POST flow's
 * metadata as `metadata[<name>]=<value>` parameters (the multipart flow sends
 * a JSON object instead).
 */
export function metadataFromQuery (query: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(query)) {
    const field = /^metadata\[([^\]]+)\]$/.exec(name)?.[1]
    if (field !== undefined) out[field] = value
  }
  return out
}

/** The metadata an object may carry on: the filename and the allowed fields, as stored (encoded). */
export function keptMetadata (direct: DirectConfig, stored: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  for (const name of [ORIGINAL_NAME_META, ...direct.metadataFields]) {
    const value = stored?.[name]
    if (value !== undefined) out[name] = value
  }
  return out
}

/** Decoded, for the S3File an app records (the filename excluded: it is `originalName`). */
export function decodedFields (direct: DirectConfig, stored: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const name of direct.metadataFields) {
    const value = stored[name]
    if (value !== undefined) out[name] = safeDecode(value)
  }
  return out
}

export function safeDecode (value: string): string {
  try { return decodeURIComponent(value) } catch { return value }
}
