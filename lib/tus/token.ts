import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { InvalidOptionError } from '../errors.js'
import type { S3ChunkConfig } from '../options.js'

// `<id>.<seal>`: a random 128-bit id (hex), then the upload's object key sealed with
// AES-256-GCM (IV, ciphertext, tag); the id, the owner, the bucket and the key prefix are
// its associated data. The key is padded to a multiple of 64 bytes (after its 2-byte
// length) so a URL does not tell how long the key is. At most: S3's 1024-byte key
// → 12 + 1088 + 16 bytes → 1488 characters.
const TOKEN = /^([0-9a-f]{32})\.([A-Za-z0-9_-]{123,1500})$/
const PAD = 64
// Before the key was sealed in: `<id>.<mac>`, an HMAC over the id and the owner. Still
// opened, so uploads begun before an upgrade go on (they only lack the key).
const TOKEN_V1 = /^([0-9a-f]{32})\.([A-Za-z0-9_-]{22})$/
const IV_BYTES = 12
const TAG_BYTES = 16

/** What an upload URL holds: the upload id, and the object key when the URL carries it. */
export interface OpenedToken { id: string, key?: string }

/**
 * The upload URLs' last segment. The id names the upload's state object in
 * S3; the object key, sealed beside it, lets a finished upload (whose state is
 * gone) still be answered. Both are bound to their owner (the user
 * `tus.authorize` returned at creation, or nobody): a URL another user holds,
 * or one changed by a single character, opens nothing — 404, as for an upload
 * that never was; the endpoint never says whether someone else's upload
 * exists, and the key is never readable from the URL.
 */
export class UploadTokens {
  readonly #macKey: Buffer
  readonly #sealKey: Buffer
  /** Where this endpoint keeps its uploads: a URL of another endpoint (bucket, key prefix) opens nothing here. */
  readonly #scope: string

  constructor (config: S3ChunkConfig, secret: string | undefined) {
    const credentials = config.s3.credentials
    const base = secret ?? (typeof credentials === 'object' ? credentials.secretAccessKey : undefined)
    if (base === undefined) {
      throw new InvalidOptionError('"tus.secret": required when s3.credentials are not given as a plain object (it seals upload URLs to their owner, and must be the same on every instance)')
    }
    // Keys of their own: the S3 secret is never used as a key directly.
    this.#macKey = createHmac('sha256', base).update('fastify-s3-chunk/tus-upload-url/v1').digest()
    this.#sealKey = createHmac('sha256', base).update('fastify-s3-chunk/tus-upload-url/v2').digest()
    this.#scope = `${config.bucket}\n${config.keyPrefix}`
  }

  issue (owner: string | undefined, key: string): { id: string, token: string } {
    const id = randomBytes(16).toString('hex')
    const iv = randomBytes(IV_BYTES)
    const cipher = createCipheriv('aes-256-gcm', this.#sealKey, iv)
    cipher.setAAD(Buffer.from(`${this.#scope}\n${associated(id, owner).toString()}`))
    const bytes = Buffer.from(key, 'utf8')
    const plain = Buffer.alloc(Math.ceil((bytes.byteLength + 2) / PAD) * PAD)
    plain.writeUInt16BE(bytes.byteLength)
    bytes.copy(plain, 2)
    const sealed = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()])
    return { id, token: `${id}.${sealed.toString('base64url')}` }
  }

  /** What a token made for this owner holds, or null (forged, changed, or someone else's). */
  open (token: string, owner: string | undefined): OpenedToken | null {
    const v1 = TOKEN_V1.exec(token)
    if (v1 !== null) {
      const [, id = '', mac = ''] = v1
      const a = Buffer.from(mac)
      const b = Buffer.from(this.#mac(id, owner))
      return a.length === b.length && timingSafeEqual(a, b) ? { id } : null
    }
    const match = TOKEN.exec(token)
    if (match === null) return null
    const [, id = '', seal = ''] = match
    const sealed = Buffer.from(seal, 'base64url')
    // One spelling per seal: base64url's unused low bits in the last character would otherwise let a changed URL open.
    if (sealed.byteLength < IV_BYTES + PAD + TAG_BYTES || sealed.toString('base64url') !== seal) return null
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#sealKey, sealed.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES })
      decipher.setAAD(Buffer.from(`${this.#scope}\n${associated(id, owner).toString()}`))
      decipher.setAuthTag(sealed.subarray(sealed.byteLength - TAG_BYTES))
      const plain = Buffer.concat([decipher.update(sealed.subarray(IV_BYTES, sealed.byteLength - TAG_BYTES)), decipher.final()])
      const length = plain.readUInt16BE(0)
      return { id, key: plain.subarray(2, 2 + length).toString('utf8') }
    } catch {
      // The tag does not match: not a URL this server made for this owner.
      return null
    }
  }

  #mac (id: string, owner: string | undefined): string {
    return createHmac('sha256', this.#macKey).update(associated(id, owner)).digest().subarray(0, 16).toString('base64url')
  }
}

// Owner "" and no owner differ: authorize() refuses empty ids anyway.
function associated (id: string, owner: string | undefined): Buffer {
  return Buffer.from(`${id}\n${owner === undefined ? '-' : `u:${owner}`}`)
}
