import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto'
import type { S3Client } from '@aws-sdk/client-s3'
import { SignatureV4 } from '@smithy/signature-v4'
import type { S3Settings } from '../options.js'

/** Part URLs signed between two turns of the event loop: a slice stays well under a millisecond or two. */
const SLICE = 16

/**
 * Signs UploadPart URLs with one SignatureV4 and a plain request, not a full SDK
 * command per URL: `getSignedUrl` builds the whole middleware stack and resolves
 * the endpoint for every URL (10 parallel batches of 1,000 blocked the loop for
 * seconds). The signing key is derived once per day and region by SignatureV4's
 * own cache; a batch yields to the event loop every few URLs, so other requests
 * (health checks, uploads) are never held for long.
 */
export class PartSigner {
  readonly #signer: SignatureV4
  readonly #protocol: string
  readonly #hostname: string
  readonly #port: number | undefined
  readonly #host: string
  readonly #base: string
  readonly #origin: string

  constructor (settings: S3Settings, bucket: string, client: S3Client) {
    this.#signer = new SignatureV4({
      // The client's provider: static credentials, or the default chain's, cached and refreshed by the SDK.
      credentials: client.config.credentials,
      region: settings.region,
      service: 's3',
      sha256: NodeSha256,
      // S3 signs the path as sent: keys are encoded once here, never twice.
      uriEscapePath: false
    })
    // The same URL the SDK makes for this configuration (see objectUrl): path style, or the bucket as a host label.
    const endpoint = new URL(settings.endpoint ?? `https://s3.${settings.region}.amazonaws.com`)
    const pathStyle = settings.forcePathStyle || bucket.includes('.')
    const basePath = endpoint.pathname.replace(/\/$/, '')
    this.#protocol = endpoint.protocol
    this.#hostname = pathStyle ? endpoint.hostname : `${bucket}.${endpoint.hostname}`
    this.#port = endpoint.port === '' ? undefined : Number(endpoint.port)
    this.#host = this.#port === undefined ? this.#hostname : `${this.#hostname}:${this.#port}`
    this.#base = pathStyle ? `${basePath}/${escape(bucket)}` : basePath
    this.#origin = `${this.#protocol}//${this.#host}`
  }

  /**
   * A presigned `PUT` of part `partNumber`. With `contentLength`, the length is a
   * signed header: S3 refuses (403 SignatureDoesNotMatch) a body of any other length.
   */
  async sign (key: string, uploadId: string, partNumber: number, expiresIn: number, contentLength?: number): Promise<string> {
    const path = `${this.#base}/${key.split('/').map(escape).join('/')}`
    const headers: Record<string, string> = {
      host: this.#host,
      // Presigned URLs carry no payload hash: the body is whatever the client sends (within the signed length).
      'x-amz-content-sha256': 'UNSIGNED-PAYLOAD'
    }
    if (contentLength !== undefined) headers['content-length'] = String(contentLength)
    const signed = await this.#signer.presign({
      method: 'PUT',
      protocol: this.#protocol,
      hostname: this.#hostname,
      ...(this.#port === undefined ? {} : { port: this.#port }),
      path,
      query: { partNumber: String(partNumber), uploadId },
      headers
    }, { expiresIn })
    const query = Object.entries(signed.query ?? {})
      .map(([name, value]) => `${escape(name)}=${escape(String(value))}`)
      .join('&')
    return `${this.#origin}${path}?${query}`
  }

  /** Many parts of one upload, yielding to the event loop between slices. */
  async signMany (key: string, uploadId: string, parts: Array<{ number: number, contentLength?: number }>, expiresIn: number): Promise<Record<string, string>> {
    const urls: Record<string, string> = {}
    for (let start = 0; start < parts.length; start += SLICE) {
      if (start > 0) await new Promise((resolve) => setImmediate(resolve))
      for (const part of parts.slice(start, start + SLICE)) {
        urls[part.number] = await this.sign(key, uploadId, part.number, expiresIn, part.contentLength)
      }
    }
    return urls
  }
}

/** RFC 3986 encoding, as SigV4 canonicalises: encodeURIComponent leaves !'()* alone. */
function escape (value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
}

/** SHA-256 and HMAC-SHA256 from node:crypto, in the shape SignatureV4 expects. */
class NodeSha256 {
  readonly #secret: Uint8Array | undefined
  #hash: Hash | Hmac

  constructor (secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#secret = secret === undefined ? undefined : bytes(secret)
    this.#hash = this.#fresh()
  }

  update (data: string | ArrayBuffer | ArrayBufferView): void {
    this.#hash.update(bytes(data))
  }

  async digest (): Promise<Uint8Array> {
    return new Uint8Array(this.#hash.digest())
  }

  reset (): void {
    this.#hash = this.#fresh()
  }

  #fresh (): Hash | Hmac {
    return this.#secret === undefined ? createHash('sha256') : createHmac('sha256', this.#secret)
  }
}

function bytes (data: string | ArrayBuffer | ArrayBufferView): Uint8Array {
  if (typeof data === 'string') return Buffer.from(data, 'utf8')
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  return new Uint8Array(data)
}
