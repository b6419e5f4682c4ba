import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { InvalidOptionError } from '../errors.js'
import type { S3ChunkConfig } from '../options.js'

// `<id>.<mac>`: a random 128-bit id (hex) and a MAC over the id and its owner.
const TOKEN = /^([0-9a-f]{32})\.([A-Za-z0-9_-]{22})$/

/**
 * The upload URLs' last segment, sealed with an HMAC: the id names the
 * upload's state object in S3, and the MAC binds it to its owner (the user
 * `tus.authorize` returned at creation, or nobody). A URL another user holds,
 * or one changed by a single character, opens nothing: 404, as for an upload
 * that never was — the endpoint never says whether someone else's upload exists.
 */
export class UploadTokens {
  readonly #secret: Buffer

  constructor (config: S3ChunkConfig, secret: string | undefined) {
    const credentials = config.s3.credentials
    const base = secret ?? (typeof credentials === 'object' ? credentials.secretAccessKey : undefined)
    if (base === undefined) {
      throw new InvalidOptionError('"tus.secret": required when s3.credentials are not given as a plain object (it seals upload URLs to their owner, and must be the same on every instance)')
    }
    // A key of its own: the S3 secret is never used as a MAC key directly.
    this.#secret = createHmac('sha256', base).update('fastify-s3-chunk/tus-upload-url/v1').digest()
  }

  issue (owner: string | undefined): { id: string, token: string } {
    const id = randomBytes(16).toString('hex')
    return { id, token: `${id}.${this.#mac(id, owner)}` }
  }

  /** The upload id of a token made for this owner, or null (forged, changed, or someone else's). */
  open (token: string, owner: string | undefined): string | null {
    const match = TOKEN.exec(token)
    if (match === null) return null
    const [, id = '', mac = ''] = match
    const a = Buffer.from(mac)
    const b = Buffer.from(this.#mac(id, owner))
    return a.length === b.length && timingSafeEqual(a, b) ? id : null
  }

  #mac (id: string, owner: string | undefined): string {
    // Owner "" and no owner differ: authorize() refuses empty ids anyway.
    const who = owner === undefined ? '-' : `u:${owner}`
    return createHmac('sha256', this.#secret).update(`${id}\n${who}`).digest().subarray(0, 16).toString('base64url')
  }
}
