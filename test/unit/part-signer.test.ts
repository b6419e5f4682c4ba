// The part URLs are signed by hand (one SHA-256 and one HMAC each, the day's
// key cached): checked here against @smithy/signature-v4, the AWS SDK's own
// signer, for the same request — path and virtual-hosted style, a session
// token, a key that needs encoding, with and without a signed length.
import t from 'tap'
import { S3Client } from '@aws-sdk/client-s3'
import { SignatureV4 } from '@smithy/signature-v4'
import { createHash, createHmac } from 'node:crypto'
import { PartSigner } from '../../lib/direct/signing.ts'
import type { S3Settings } from '../../lib/options.ts'

class Sha256 {
  readonly #hash
  constructor (secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#hash = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret))
  }

  update (data: string | ArrayBuffer | ArrayBufferView): void { this.#hash.update(bytes(data)) }
  async digest (): Promise<Uint8Array> { return new Uint8Array(this.#hash.digest()) }
  reset (): void {}
}

function bytes (data: string | ArrayBuffer | ArrayBufferView): string | Uint8Array {
  if (typeof data === 'string') return data
  return ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data)
}

const date = new Date('2026-11-22T05:06:07.890Z')
const credentials = { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' }

async function reference (region: string, creds: typeof credentials & { sessionToken?: string }, hostname: string, port: number | undefined, path: string, uploadId: string, partNumber: number, contentLength?: number): Promise<URLSearchParams> {
  const signer = new SignatureV4({ credentials: creds, region, service: 's3', sha256: Sha256, uriEscapePath: false })
  const host = port === undefined ? hostname : `${hostname}:${port}`
  const headers: Record<string, string> = { host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' }
  if (contentLength !== undefined) headers['content-length'] = String(contentLength)
  const signed = await signer.presign({ method: 'PUT', protocol: 'http:', hostname, ...(port === undefined ? {} : { port }), path, query: { partNumber: String(partNumber), uploadId }, headers }, { expiresIn: 900, signingDate: date })
  return new URLSearchParams(Object.entries(signed.query ?? {}).map(([k, v]): [string, string] => [k, String(v)]))
}

const cases = [
  { name: 'path style, signed length', settings: { endpoint: 'http://127.0.0.1:9000', forcePathStyle: true }, bucket: 'uploads', hostname: '127.0.0.1', port: 9000, prefix: '/uploads', length: 5 * 1024 * 1024 },
  { name: 'path style, no length', settings: { endpoint: 'http://127.0.0.1:9000', forcePathStyle: true }, bucket: 'uploads', hostname: '127.0.0.1', port: 9000, prefix: '/uploads', length: undefined },
  // As the SDK signs it (found in review: built by hand, the host was 'uploads.127.0.0.1').
  { name: 'an IP endpoint without forcePathStyle: path style', settings: { endpoint: 'http://127.0.0.1:9000', forcePathStyle: false }, bucket: 'uploads', hostname: '127.0.0.1', port: 9000, prefix: '/uploads', length: 10 },
  { name: 'virtual-hosted AWS, session token', settings: { forcePathStyle: false }, bucket: 'uploads', hostname: 'uploads.s3.eu-west-3.amazonaws.com', port: undefined, prefix: '', length: 12_345, token: 'FQoGZXIvYXdzE+/token==' },
  // From review (helper-40): the global endpoint signs as us-east-1; FIPS has hosts of its own.
  { name: 'aws-global: signed for us-east-1', settings: { region: 'aws-global', forcePathStyle: false }, bucket: 'uploads', hostname: 'uploads.s3.amazonaws.com', port: undefined, prefix: '', length: 10, signingRegion: 'us-east-1' },
  { name: 'FIPS endpoints', settings: { region: 'us-east-1', useFipsEndpoint: true, forcePathStyle: false }, bucket: 'uploads', hostname: 'uploads.s3-fips.us-east-1.amazonaws.com', port: undefined, prefix: '', length: 10 }
]

for (const c of cases) {
  t.test(c.name, async (t) => {
    const settings = { region: 'eu-west-3', maxAttempts: 1, connectionTimeout: 1, requestTimeout: 1, ...c.settings } as S3Settings
    const creds = { ...credentials, ...(c.token === undefined ? {} : { sessionToken: c.token }) }
    const client = new S3Client({ region: 'eu-west-3', credentials: creds })
    t.teardown(() => client.destroy())
    const signer = new PartSigner(settings, c.bucket, client)
    const key = "media/alice/0a1b/a file (1)!*'.bin"
    const uploadId = 'a.B-c_d~e=f/g+h'
    const url = new URL(await signer.sign(key, uploadId, { number: 7, ...(c.length === undefined ? {} : { contentLength: c.length }) }, 900, date))
    const path = `${c.prefix}/media/alice/0a1b/a%20file%20%281%29%21%2A%27.bin`
    t.equal(url.pathname, path, 'the key, encoded once (RFC 3986)')
    const expected = await reference(c.signingRegion ?? settings.region, creds, c.hostname, c.port, path, uploadId, 7, c.length)
    const ours = url.searchParams
    t.same([...ours.keys()].sort(), [...expected.keys()].sort(), 'the same query parameters')
    for (const [name, value] of expected) t.equal(ours.get(name), value, name)
    t.equal(url.host, c.port === undefined ? c.hostname : `${c.hostname}:${c.port}`)
  })
}
