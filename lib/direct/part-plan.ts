import { createHmac, timingSafeEqual } from 'node:crypto'
import { BadRequestError, FileTooLargeError, ForbiddenError, InvalidOptionError } from '../errors.js'
import { MAX_OBJECT_SIZE, MAX_PARTS, MAX_PART_SIZE, MIN_PART_SIZE, type DirectConfig, type S3ChunkConfig } from '../options.js'

/**
 * How a direct multipart upload's bytes are cut into parts: every part
 * `partSize` bytes, the last one the rest. The part URLs sign each part's exact
 * Content-Length from it, so S3 refuses a body of any other length and the
 * upload can never hold more than the `size` declared at create.
 */
export interface PartPlan {
  /** The file's size in bytes, as declared at create. */
  size: number
  /** Bytes of every part but the last. */
  partSize: number
  /** Parts in the upload (1 for an empty file). */
  count: number
}

/**
 * The plan @uppy/aws-s3 (v5) follows by default, so Uppy works unchanged: its
 * MultipartUploader takes `getChunkSize(file)` — by default
 * `Math.ceil(size / 10000)` — raised to at least 5 MiB, then cuts the file at
 * every multiple of it; a file of 5 MiB or less goes as one part. A client
 * with its own `getChunkSize` declares that size as `partSize` at create.
 */
export function partPlan (size: number, partSize?: number): PartPlan {
  const chunk = Math.max(partSize ?? Math.ceil(size / MAX_PARTS), MIN_PART_SIZE)
  return { size, partSize: chunk, count: Math.max(1, Math.ceil(size / chunk)) }
}

/** Bytes of part `number` (1-based) of the plan; the caller checks the number is within it. */
export function partLength (plan: PartPlan, number: number): number {
  return number < plan.count ? plan.partSize : plan.size - (plan.count - 1) * plan.partSize
}

/** Refuses (400) a part number the declared size has no part for. */
export function assertInPlan (plan: PartPlan, number: number): void {
  if (number > plan.count) throw new BadRequestError(`part ${number} is beyond the ${plan.count} part${plan.count === 1 ? '' : 's'} of the declared size`)
}

/**
 * The create body's `size` (and optional `partSize`) checked: an integer byte
 * count within maxFileSize (413 beyond it), or undefined when the app opted out
 * with `direct.requireSize: false` and none was sent (400 otherwise).
 */
export function declaredPlan (config: S3ChunkConfig, direct: DirectConfig, declared: { size?: unknown, partSize?: unknown }): PartPlan | undefined {
  if (declared.size === undefined || declared.size === null) {
    if (direct.requireSize) throw new BadRequestError('size (the file\'s size in bytes) is required')
    return undefined
  }
  const size = byteCount(declared.size)
  if (size === undefined) throw new BadRequestError('size must be the file\'s size in bytes, an integer ≥ 0')
  if (size > config.maxFileSize || size > MAX_OBJECT_SIZE) throw new FileTooLargeError(Math.min(config.maxFileSize, MAX_OBJECT_SIZE))
  let partSize: number | undefined
  if (declared.partSize !== undefined && declared.partSize !== null) {
    partSize = byteCount(declared.partSize)
    if (partSize === undefined || partSize < MIN_PART_SIZE || partSize > MAX_PART_SIZE) {
      throw new BadRequestError(`partSize must be an integer from ${MIN_PART_SIZE} to ${MAX_PART_SIZE} bytes`)
    }
  }
  const plan = partPlan(size, partSize)
  if (plan.count > MAX_PARTS) throw new BadRequestError(`a partSize of ${plan.partSize} bytes cuts ${size} bytes into more than ${MAX_PARTS} parts`)
  return plan
}

/** A JSON number, or a string of digits (metadata set from a form), as a byte count. */
function byteCount (value: unknown): number | undefined {
  const number = typeof value === 'string' && /^\d{1,16}$/.test(value) ? Number(value) : value
  return typeof number === 'number' && Number.isSafeInteger(number) && number >= 0 ? number : undefined
}

// `<S3 upload id>~<size>~<partSize>~<mac>`: sizes in base 36, the MAC base64url.
const HANDLE = /^(.+)~([0-9a-z]{1,11})~([0-9a-z]{1,11})~([A-Za-z0-9_-]{22})$/
const MAC_BYTES = 16

/**
 * The upload ids the create route hands out carry the part plan with them,
 * sealed with an HMAC: `<S3 upload id>~<size>~<partSize>~<mac>`. Clients pass
 * the id back opaquely (Uppy does), so every instance can sign a part's
 * Content-Length with nothing stored anywhere — S3 keeps no metadata of an
 * upload in progress that ListParts or ListMultipartUploads would return.
 * The MAC binds the plan to the key and S3's upload id, so neither the size
 * nor the id can be changed or moved to another upload.
 */
export class UploadHandles {
  readonly #secret: Buffer | undefined
  readonly #required: boolean

  constructor (config: S3ChunkConfig, direct: DirectConfig) {
    const credentials = config.s3.credentials
    const base = direct.secret ?? (typeof credentials === 'object' ? credentials.secretAccessKey : undefined)
    if (base === undefined && direct.requireSize) {
      throw new InvalidOptionError('"direct.secret": required when s3.credentials are not given as a plain object (it seals the declared size into upload ids, and must be the same on every instance); or set direct.requireSize: false')
    }
    // A key of its own, derived once: the S3 secret is never used as a MAC key directly.
    this.#required = direct.requireSize
    this.#secret = base === undefined ? undefined : createHmac('sha256', base).update('fastify-s3-chunk/direct-upload-handle/v1').digest()
  }

  /** The id the create route returns: S3's id, sealed with the plan when there is one (and a secret to seal it). */
  issue (key: string, uploadId: string, plan: PartPlan | undefined): string {
    if (plan === undefined || this.#secret === undefined) return uploadId
    return `${uploadId}~${plan.size.toString(36)}~${plan.partSize.toString(36)}~${this.#mac(key, uploadId, plan)}`
  }

  /**
   * S3's upload id and the sealed plan from a handle. A handle whose seal does
   * not match (changed size, other key) is refused with 403; one without a
   * plan only when the app opted out of declared sizes.
   */
  open (key: string, handle: string): { uploadId: string, plan?: PartPlan } {
    const match = HANDLE.exec(handle)
    if (match === null) {
      if (this.#required) throw new ForbiddenError('that upload id was not made by this server')
      return { uploadId: handle }
    }
    const [, uploadId = '', size36 = '', partSize36 = '', mac = ''] = match
    const plan = partPlan(parseInt(size36, 36), parseInt(partSize36, 36))
    if (this.#secret === undefined || plan.partSize !== parseInt(partSize36, 36) || !this.#macMatches(mac, this.#mac(key, uploadId, plan))) {
      throw new ForbiddenError('that upload id was not made by this server for that key')
    }
    return { uploadId, plan }
  }

  /** For the routes that need only S3's id (list, complete, abort): the seal is checked by the signing routes. */
  static uploadIdOf (handle: string): string {
    return HANDLE.exec(handle)?.[1] ?? handle
  }

  #mac (key: string, uploadId: string, plan: PartPlan): string {
    return createHmac('sha256', this.#secret as Buffer)
      .update(`${key}\n${uploadId}\n${plan.size}\n${plan.partSize}`)
      .digest().subarray(0, MAC_BYTES).toString('base64url')
  }

  #macMatches (given: string, expected: string): boolean {
    const a = Buffer.from(given)
    const b = Buffer.from(expected)
    return a.length === b.length && timingSafeEqual(a, b)
  }
}
