import { randomBytes } from 'node:crypto'
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import type { FastifyBaseLogger } from 'fastify'
import { describeS3Error, isNoSuchKey, storageFailure } from '../upload/s3-failure.js'
import { claimKeyOf } from './keys.js'

/** A claim not refreshed for this long is a dead call's (its server stopped mid-completion): another call may take it over. */
export const CLAIM_STALE_MS = 15 * 60_000
/** How often a live completion refreshes its claim (a copy of a very large object can take many minutes). */
const CLAIM_REFRESH_MS = 5 * 60_000
/** Deletes of a claim tried before it is left to go stale (on top of the SDK's own retries). */
const RELEASE_ATTEMPTS = 4

/** A completion this call holds; `release()` removes the claim (best effort), `stop()` only ends its refreshing. */
export interface CompletionClaim {
  release: () => Promise<void>
  stop: () => void
}

interface ClaimRead { token: string, at: number, etag: string | undefined }

/**
 * Claims on completing a direct upload: the same upload completed by two calls at once (a
 * double click, a script) was promoted or completed, and recorded, twice. A claim is a small
 * object (`<keyPrefix>/.staging/.claims/<sha-256 of its subject>`: a staging key, or
 * `multipart <uploadId>`) written conditionally
 * (If-None-Match): one call wins. Its body is the call's token and the time, so a write whose
 * answer was lost is still known as the call's, and a claim a dead server left behind is taken
 * over once it is CLAIM_STALE_MS old (If-Match its ETag) instead of blocking the upload until
 * the sweep.
 */
export class CompletionClaims {
  readonly #client: S3Client
  readonly #bucket: string
  readonly #keyPrefix: string
  #unsupportedLogged = false

  constructor (client: S3Client, bucket: string, keyPrefix: string) {
    this.#client = client
    this.#bucket = bucket
    this.#keyPrefix = keyPrefix
  }

  /**
   * The claim on `subject` (what is being completed), or null when another live call holds it. A store that
   * answers 501 to conditional writes gets an empty claim (completions there are not kept
   * apart, as before claims existed; logged once).
   */
  async claim (subject: string, log: FastifyBaseLogger): Promise<CompletionClaim | null> {
    const key = claimKeyOf(this.#keyPrefix, subject)
    const token = randomBytes(16).toString('hex')
    let etag: string | undefined
    try {
      etag = await this.#write(key, token, { IfNoneMatch: '*' })
    } catch (error) {
      const info = describeS3Error('PutObject', error)
      if (info.status === 501) {
        if (!this.#unsupportedLogged) log.warn({ s3: info }, 'fastify-s3-chunk: this store refuses conditional writes; concurrent completions of one direct upload are not kept apart')
        this.#unsupportedLogged = true
        return { release: async () => {}, stop: () => {} }
      }
      let held: ClaimRead | null
      try {
        held = await this.#read(key)
      } catch {
        // Whether the claim there is this call's (a write whose answer was lost) or a live one's is
        // not known: S3's failure, answered as one (5xx), never "another call holds it" (409).
        throw storageFailure(info)
      }
      if (held?.token === token) {
        etag = held.etag // the write landed; its answer was lost
      } else if (info.status !== 412 && info.status !== 409) {
        throw storageFailure(info)
      } else if (held === null || Date.now() - held.at < CLAIM_STALE_MS) {
        return null
      } else {
        // A dead call's claim: taken over, conditionally (another call may take it first).
        try {
          etag = await this.#write(key, token, { IfMatch: held.etag })
        } catch {
          return null
        }
      }
    }
    let current = etag
    let refreshing: Promise<void> = Promise.resolve()
    const refresh = setInterval(() => {
      refreshing = refreshing.then(async () => { current = await this.#write(key, token, { IfMatch: current }) }).catch(() => {})
    }, CLAIM_REFRESH_MS)
    refresh.unref()
    const stop = (): void => { clearInterval(refresh) }
    return {
      stop,
      release: async () => {
        stop()
        await refreshing
        // Tried again in the background when it fails (the answer does not wait: 4 × the SDK's
        // retries held a 200 back 9.5 s, found in review): a claim left behind refuses every
        // retry of this upload (409) until it is stale.
        const attempt = async (left: number): Promise<void> => {
          try {
            await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: key }))
          } catch (error) {
            if (left === 0) {
              log.warn({ key, s3: describeS3Error('DeleteObject', error) }, 'fastify-s3-chunk: could not release a direct upload\'s completion claim; a retry is refused until it is stale')
              return
            }
            setTimeout(() => { void attempt(left - 1) }, 400 * 2 ** (RELEASE_ATTEMPTS - left)).unref()
          }
        }
        await attempt(RELEASE_ATTEMPTS - 1)
      }
    }
  }

  async #write (key: string, token: string, condition: { IfNoneMatch: string } | { IfMatch: string | undefined }): Promise<string | undefined> {
    const answer = await this.#client.send(new PutObjectCommand({ Bucket: this.#bucket, Key: key, Body: `${token} ${Date.now()}`, ...condition }))
    return answer.ETag
  }

  /** The claim at `key`: its token and time; null when there is none (404); S3's failures are thrown. */
  async #read (key: string): Promise<ClaimRead | null> {
    try {
      const answer = await this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: key }))
      const [token = '', at = ''] = (await answer.Body?.transformToString() ?? '').split(' ')
      return { token, at: Number(at) || 0, etag: answer.ETag }
    } catch (error) {
      if (isNoSuchKey(describeS3Error('GetObject', error))) return null
      throw error
    }
  }
}
