import { createHash, createHmac } from 'node:crypto'
import type { S3Client } from '@aws-sdk/client-s3'
import type { S3Settings } from '../options.js'
import { bucketEndpoint } from '../s3-client.js'

/** Part URLs signed between two turns of the event loop (~10 µs each: a slice stays well under a millisecond). */
const SLICE = 32

interface Credentials { accessKeyId: string, secretAccessKey: string, sessionToken?: string }

/** One part to sign; with `contentLength`, the length is a signed header. */
export interface PartToSign { number: number, contentLength?: number }

/**
 * Presigns UploadPart URLs (AWS Signature Version 4, query-string auth) with
 * the signing key derived once a day, straight from node:crypto: one SHA-256
 * and one HMAC per URL. `getSignedUrl` builds a whole SDK command stack and
 * resolves the endpoint for every URL (10 parallel batches of 1,000 blocked
 * the loop for seconds), and even @smithy/signature-v4's presign costs ~7x
 * this per URL; test/unit/part-signer.test.ts checks the URLs against it.
 * A batch yields to the event loop every few URLs, so other requests (health
 * checks, uploads) are never held for long.
 */
export class PartSigner {
  readonly #credentials: () => Promise<Credentials>
  readonly #region: string
  readonly #host: string
  readonly #base: string
  readonly #origin: string
  #key: { id: string, key: Buffer } | undefined

  constructor (settings: S3Settings, bucket: string, client: S3Client) {
    // The client's provider: static credentials, or the default chain's, cached and refreshed by the SDK.
    this.#credentials = client.config.credentials
    // The same URL and signing region the SDK uses for this configuration (its endpoint rules, as
    // objectUrl): path style, or the bucket as a host label (not for an IP endpoint, nor a dotted
    // bucket); `aws-global` signs as us-east-1 (found in review).
    const { url, signingRegion } = bucketEndpoint(settings, bucket)
    this.#region = signingRegion
    // URL.host leaves out a default port, as a browser's Host header does.
    this.#host = url.host
    this.#base = url.pathname.replace(/\/$/, '')
    this.#origin = url.origin
  }

  /** A presigned `PUT` of one part; see signMany. */
  async sign (key: string, uploadId: string, part: PartToSign, expiresIn: number, signingDate = new Date()): Promise<string> {
    return (await this.signMany(key, uploadId, [part], expiresIn, signingDate))[part.number] as string
  }

  /**
   * Presigned `PUT` URLs of parts of one upload, by part number. A part with a
   * `contentLength` gets it as a signed header: S3 refuses (403
   * SignatureDoesNotMatch) a body of any other length.
   */
  async signMany (key: string, uploadId: string, parts: PartToSign[], expiresIn: number, signingDate = new Date()): Promise<Record<string, string>> {
    const credentials = await this.#credentials()
    const longDate = signingDate.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '')
    const shortDate = longDate.slice(0, 8)
    const scope = `${shortDate}/${this.#region}/s3/aws4_request`
    const signingKey = this.#signingKey(credentials, shortDate)
    const path = `${this.#base}/${key.split('/').map(escape).join('/')}`
    // The query of every URL, in canonical (byte) order: X-Amz-* < partNumber < uploadId < x-amz-*.
    const head = [
      ['X-Amz-Algorithm', 'AWS4-HMAC-SHA256'],
      ['X-Amz-Credential', `${credentials.accessKeyId}/${scope}`],
      ['X-Amz-Date', longDate],
      ['X-Amz-Expires', String(expiresIn)],
      ...(credentials.sessionToken === undefined ? [] : [['X-Amz-Security-Token', credentials.sessionToken]])
    ].map(([name, value]) => `${name}=${escape(value as string)}`).join('&')
    // Presigned URLs carry no payload hash: the body is whatever the client sends (within the signed length).
    const tail = `uploadId=${escape(uploadId)}&x-amz-content-sha256=UNSIGNED-PAYLOAD`
    const urls: Record<string, string> = {}
    for (let start = 0; start < parts.length; start += SLICE) {
      if (start > 0) await new Promise((resolve) => setImmediate(resolve))
      for (const part of parts.slice(start, start + SLICE)) {
        const signed = part.contentLength === undefined ? 'host' : 'content-length;host'
        const query = `${head}&X-Amz-SignedHeaders=${escape(signed)}&partNumber=${part.number}&${tail}`
        const headers = part.contentLength === undefined ? `host:${this.#host}\n` : `content-length:${part.contentLength}\nhost:${this.#host}\n`
        const canonicalRequest = `PUT\n${path}\n${query}\n${headers}\n${signed}\nUNSIGNED-PAYLOAD`
        const stringToSign = `AWS4-HMAC-SHA256\n${longDate}\n${scope}\n${createHash('sha256').update(canonicalRequest).digest('hex')}`
        urls[part.number] = `${this.#origin}${path}?${query}&X-Amz-Signature=${createHmac('sha256', signingKey).update(stringToSign).digest('hex')}`
      }
    }
    return urls
  }

  /** The day's signing key, derived once per day and credentials (four HMACs). */
  #signingKey (credentials: Credentials, shortDate: string): Buffer {
    const id = `${shortDate}\n${credentials.accessKeyId}\n${credentials.secretAccessKey}`
    if (this.#key?.id !== id) {
      let key: Buffer = Buffer.from(`AWS4${credentials.secretAccessKey}`)
      for (const part of [shortDate, this.#region, 's3', 'aws4_request']) key = createHmac('sha256', key).update(part).digest()
      this.#key = { id, key }
    }
    return this.#key.key
  }
}

/** RFC 3986 encoding, as SigV4 canonicalises: encodeURIComponent leaves !'()* alone. */
function escape (value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
}
