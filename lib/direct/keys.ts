import { createHash, randomBytes } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { ForbiddenError, InvalidKeyError } from '../errors.js'
import { MAX_KEY_BYTES, joinKey, sanitiseFilename, sanitisePrefix } from '../keys.js'
import type { DirectConfig, DirectUser, S3ChunkConfig } from '../options.js'

/**
 * The segment below `keyPrefix` that presigned POSTs write to. It starts with
 * a dot, which the key sanitiser strips from every segment it makes: no
 * streamed upload, direct final key or `key()` result can ever land in it.
 */
export const STAGING_SEGMENT = '.staging'

/** Most UTF-8 bytes of a userId. */
export const MAX_USER_ID_BYTES = 1024
// Ids up to this many bytes are hex-encoded (199 characters: a key segment holds 200 bytes).
const MAX_HEX_USER_ID_BYTES = 99

// Ids kept as they are: ASCII letters and digits, single '-' or '_' between
// them, at most 64 characters. The sanitiser leaves every one of them unchanged.
const PLAIN_USER_ID = /^[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*$/
const MAX_PLAIN_USER_ID = 64

/**
 * The key segment of a user: one-to-one, so two users never share a prefix.
 * Three forms, told apart by their first character:
 * - a plain id (`alice`, `user_42`, `7f3c-…`) is its own segment;
 * - any other id up to 99 UTF-8 bytes (`team-a/alice`, `o'brien@example.com`,
 *   `_alice`, `a b`) is `-` and the hex of its UTF-8 bytes (reversible);
 * - a longer id is `=` and the hex SHA-256 of its UTF-8 bytes (a key segment
 *   holds 200 bytes; two ids with one SHA-256 are not known to exist).
 * The sanitiser leaves every form unchanged. Ids that are not well-formed
 * Unicode (a lone surrogate encodes like U+FFFD) or longer than 1024 bytes
 * are refused: a programming error in `authorize()`, not the client's.
 */
export function userSegment (userId: string): string {
  if (PLAIN_USER_ID.test(userId) && userId.length <= MAX_PLAIN_USER_ID) return userId
  const bytes = Buffer.from(userId, 'utf8')
  if (!isWellFormed(userId) || bytes.byteLength > MAX_USER_ID_BYTES) {
    throw new Error(`direct.authorize() must return a userId of well-formed Unicode, 1 to ${MAX_USER_ID_BYTES} UTF-8 bytes`)
  }
  if (bytes.byteLength <= MAX_HEX_USER_ID_BYTES) return `-${bytes.toString('hex')}`
  return `=${createHash('sha256').update(bytes).digest('hex')}`
}

/** False for strings with a lone surrogate (with the u flag, a pair is one code point and never matches). */
export function isWellFormed (value: string): boolean {
  return !/[\uD800-\uDFFF]/u.test(value)
}

/** Every final key of a user lives under this prefix: `<keyPrefix>/<user segment>`. */
export function userPrefix (config: Pick<S3ChunkConfig, 'keyPrefix'>, user: DirectUser): string {
  return joinKey(config.keyPrefix, userSegment(user.userId))
}

/** Where staged (posted, not yet verified) objects live: `<keyPrefix>/.staging`. */
export function stagingPrefix (keyPrefix: string): string {
  return joinKey(keyPrefix, STAGING_SEGMENT)
}

/**
 * `<keyPrefix>/.staging/.claims/<sha-256 of the subject>`: the object whose conditional write
 * makes one call the one that completes an upload (`subject`: a staging key, or
 * `multipart <uploadId>`; see claim.ts). Under `.staging/`, so the
 * sweep and the lifecycle rule remove it; no POST policy names it, and a dot segment is never
 * the user part of a key, so no client can complete or write it.
 */
export function claimKeyOf (keyPrefix: string, subject: string): string {
  return joinKey(stagingPrefix(keyPrefix), '.claims', createHash('sha256').update(subject).digest('hex'))
}

/** `<keyPrefix>/<user>/<rest>` → `<keyPrefix>/.staging/<user>/<rest>`: the one key a POST policy may write. */
export function stagingKeyOf (config: Pick<S3ChunkConfig, 'keyPrefix'>, finalKey: string): string {
  const below = config.keyPrefix === '' ? finalKey : finalKey.slice(config.keyPrefix.length + 1)
  return joinKey(stagingPrefix(config.keyPrefix), below)
}

/**
 * The server names the object, never the client: `<keyPrefix>/<user>/<random id>/<filename>`
 * by default. Returns the final key; a POST writes to its staging twin.
 */
export async function makeDirectKey (config: S3ChunkConfig, direct: DirectConfig, user: DirectUser, filename: string, type: string, request: FastifyRequest): Promise<string> {
  const clean = sanitiseFilename(filename)
  let below: string
  if (direct.key !== undefined) {
    const custom = await direct.key({ userId: user.userId, filename: clean, originalName: filename, type, request })
    if (typeof custom !== 'string') throw new InvalidKeyError('direct.key() did not return a string')
    below = sanitisePrefix(custom)
    if (below === '') throw new InvalidKeyError(`"${custom}" has no usable segment`)
  } else {
    // Hex: characters the key sanitiser leaves alone (base64url's '_' and '-' runs it would rewrite).
    below = joinKey(randomBytes(12).toString('hex'), clean)
  }
  const key = joinKey(userPrefix(config, user), below)
  // The staging twin is the longer of the two.
  if (Buffer.byteLength(stagingKeyOf(config, key)) > MAX_KEY_BYTES) throw new InvalidKeyError(`the key would be longer than ${MAX_KEY_BYTES} bytes (shorten keyPrefix or direct.key())`)
  return key
}

/**
 * Refuses (403) a key the client sent back unless it is canonical and lies
 * under the caller's own prefix: a user can only ever touch their own uploads.
 */
export function assertOwnKey (config: S3ChunkConfig, user: DirectUser, key: unknown): string {
  if (typeof key !== 'string' || key === '') throw new ForbiddenError('a key is required')
  const own = `${userPrefix(config, user)}/`
  if (!key.startsWith(own) || sanitisePrefix(key) !== key || Buffer.byteLength(key) > MAX_KEY_BYTES) {
    throw new ForbiddenError('that key is not yours')
  }
  return key
}

/**
 * The staging key of a POST upload the client says is done (the `key` field
 * of its policy, which Uppy hands back as `response.body.key`), checked like
 * assertOwnKey, and the final key it is promoted to.
 */
export function assertOwnStagingKey (config: S3ChunkConfig, user: DirectUser, key: unknown): { staging: string, final: string } {
  if (typeof key !== 'string' || key === '') throw new ForbiddenError('a key is required')
  const staging = `${stagingPrefix(config.keyPrefix)}/`
  if (!key.startsWith(staging) || Buffer.byteLength(key) > MAX_KEY_BYTES) throw new ForbiddenError('that key is not one of your uploads')
  const final = joinKey(config.keyPrefix, key.slice(staging.length))
  assertOwnKey(config, user, final)
  return { staging: key, final }
}
