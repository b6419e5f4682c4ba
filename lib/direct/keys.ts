import { randomBytes } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { ForbiddenError, InvalidKeyError } from '../errors.js'
import { MAX_KEY_BYTES, joinKey, sanitiseFilename, sanitisePrefix } from '../keys.js'
import type { DirectConfig, DirectUser, S3ChunkConfig } from '../options.js'

/** Every key of a user lives under this prefix; the user id is sanitised like a filename. */
export function userPrefix (config: S3ChunkConfig, user: DirectUser): string {
  return joinKey(config.keyPrefix, sanitiseFilename(user.userId))
}

/** The server names the object, never the client: `<keyPrefix>/<userId>/<random id>/<filename>` by default. */
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
  return joinKey(userPrefix(config, user), below)
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
