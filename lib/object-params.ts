import { BadRequestError } from './errors.js'
import { checkObjectParams, type FileContext, type ObjectParams, type S3ChunkConfig } from './options.js'

/** S3's bound on user metadata: names and values together, as sent. */
export const MAX_METADATA_BYTES = 2048

/**
 * The object settings of one file: the rule's (static, or computed from the
 * file), then `onFile`'s, Metadata merged name by name. Metadata values are
 * made safe for S3 (ASCII only: anything else percent-encoded) and bounded
 * (2 KiB), or the file is refused (400) before anything is stored.
 */
export async function objectParamsFor (config: Pick<S3ChunkConfig, 'objectParams'>, file: FileContext, overrides: ObjectParams | undefined): Promise<ObjectParams> {
  const base = typeof config.objectParams === 'function' ? await config.objectParams(file) : config.objectParams
  // What a function (or onFile) returns is checked like a static setting: no Key, Bucket or other field slips in.
  const merged = checkObjectParams(mergeObjectParams(base, overrides), 'objectParams (as computed for a file)')
  if (merged.Metadata !== undefined) merged.Metadata = safeMetadata(merged.Metadata)
  return merged
}

/** `overrides` over `base`, Metadata merged name by name. */
export function mergeObjectParams (base: ObjectParams | undefined, overrides: ObjectParams | undefined): ObjectParams {
  const merged: ObjectParams = { ...base, ...overrides }
  const metadata = { ...base?.Metadata, ...overrides?.Metadata }
  if (Object.keys(metadata).length > 0) merged.Metadata = metadata
  else delete merged.Metadata
  return merged
}

/**
 * A rule layer's objectParams over the layer below's: merged (Metadata name
 * by name), also when either is a function of the file.
 */
export function layerObjectParams (base: S3ChunkConfig['objectParams'], over: S3ChunkConfig['objectParams']): S3ChunkConfig['objectParams'] {
  if (base === undefined || over === undefined) return over ?? base
  if (typeof base !== 'function' && typeof over !== 'function') return mergeObjectParams(base, over)
  return async (file) => mergeObjectParams(
    typeof base === 'function' ? await base(file) : base,
    typeof over === 'function' ? await over(file) : over
  )
}

/**
 * Metadata as S3 can carry it: lowercase names; a value of printable ASCII
 * without `%` as it is, any other percent-encoded (so every value reads back
 * with decodeURIComponent); 2 KiB in all, as sent.
 */
export function safeMetadata (metadata: Record<string, string>): Record<string, string> {
  const safe: Record<string, string> = {}
  let bytes = 0
  for (const [name, value] of Object.entries(metadata)) {
    if (typeof value !== 'string') throw new BadRequestError(`metadata "${name}" is not a string`)
    const key = name.toLowerCase()
    const encoded = /^[\x20-\x24\x26-\x7e]*$/.test(value) ? value : encodeURIComponent(value)
    bytes += Buffer.byteLength(key) + Buffer.byteLength(encoded)
    safe[key] = encoded
  }
  if (bytes > MAX_METADATA_BYTES) throw new BadRequestError(`the object's metadata is ${bytes} bytes, more than S3's ${MAX_METADATA_BYTES}`)
  return safe
}

/** True when S3 gives the object an ETag that is no MD5 of its bytes (SSE-KMS, SSE-C). */
export function etagIsOpaque (params: ObjectParams | undefined): boolean {
  return params?.SSECustomerKey !== undefined || (params?.ServerSideEncryption?.startsWith('aws:kms') ?? false)
}

/** The SSE-C headers of the settings, which S3 needs on every request that touches the object's bytes. */
export function customerKeyOf (params: ObjectParams | undefined): Pick<ObjectParams, 'SSECustomerAlgorithm' | 'SSECustomerKey' | 'SSECustomerKeyMD5'> {
  if (params?.SSECustomerKey === undefined) return {}
  const { SSECustomerAlgorithm, SSECustomerKey, SSECustomerKeyMD5 } = params
  return {
    SSECustomerAlgorithm: SSECustomerAlgorithm ?? 'AES256',
    SSECustomerKey,
    ...(SSECustomerKeyMD5 !== undefined ? { SSECustomerKeyMD5 } : {})
  }
}

/**
 * A safe `Content-Disposition: attachment` for a client's filename: an ASCII
 * fallback with quotes, backslashes and control characters replaced, and the
 * exact name percent-encoded in `filename*` (RFC 6266 / RFC 8187).
 */
export function attachment (filename: string): string {
  const name = filename
  const fallback = name.normalize('NFKD').replace(/[^\x20-\x7e]/g, '').replace(/["\\]/g, '_').replace(/[\x00-\x1f\x7f]/g, '').trim() || 'file'
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`
}
