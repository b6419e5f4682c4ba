import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3'
import type { PayloadSigning, S3Settings } from './options.js'

/** The AWS SDK's default `expectContinueHeader`: bodies of 2 MiB and more. */
const EXPECT_CONTINUE_MIN_BYTES = 2 * 1024 * 1024

/**
 * One place that turns the plain S3 settings into an S3Client, so the main
 * thread and every worker thread talk to S3 the same way.
 */
export function createS3Client (settings: S3Settings | WorkerS3Settings, overrides: { maxAttempts?: number, credentials?: S3ClientConfig['credentials'] } = {}): S3Client {
  const agent = {
    ...(settings.maxSockets !== undefined ? { maxSockets: settings.maxSockets } : {}),
    keepAlive: settings.keepAlive ?? true
  }
  const config: S3ClientConfig = {
    region: settings.region,
    forcePathStyle: settings.forcePathStyle,
    maxAttempts: overrides.maxAttempts ?? settings.maxAttempts,
    requestHandler: {
      connectionTimeout: settings.connectionTimeout,
      requestTimeout: settings.requestTimeout,
      // A stalled S3 request must fail (and be retried), not hang the upload.
      throwOnRequestTimeout: true,
      httpAgent: agent,
      httpsAgent: agent
    },
    // The SDK's default sends Expect: 100-continue with bodies >= 2 MiB, and its HTTP handler
    // sends each such request on a throwaway connection: over TLS, a handshake per part (see options.ts).
    // `true` to the SDK means every body, however small; ours means the SDK's own default threshold.
    expectContinueHeader: settings.expectContinue === true ? EXPECT_CONTINUE_MIN_BYTES : false,
    // Newer SDKs add CRC32 checksums to every upload by default and some
    // S3-compatible stores reject them; checksums are sent only when asked for.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED'
  }
  if (settings.endpoint !== undefined) config.endpoint = settings.endpoint
  if (settings.useDualstackEndpoint !== undefined) config.useDualstackEndpoint = settings.useDualstackEndpoint
  if (settings.useFipsEndpoint !== undefined) config.useFipsEndpoint = settings.useFipsEndpoint
  if (settings.useAccelerateEndpoint !== undefined) config.useAccelerateEndpoint = settings.useAccelerateEndpoint
  if (settings.retryMode !== undefined) config.retryMode = settings.retryMode
  if (settings.userAgent !== undefined) config.customUserAgent = settings.userAgent
  const credentials = overrides.credentials ?? settings.credentials
  // A copy of a plain object: the SDK writes bookkeeping into the object it is given.
  if (credentials !== undefined) config.credentials = typeof credentials === 'function' ? credentials : { ...credentials }
  return new S3Client(config)
}

/**
 * The S3 settings as a worker thread gets them: plain data. A credential
 * provider (a function) cannot cross threads; `credentialsFromParts` says the
 * main thread resolves it and hands each part its credentials.
 */
export type WorkerS3Settings = Omit<S3Settings, 'credentials'> & {
  credentials?: { accessKeyId: string, secretAccessKey: string, sessionToken?: string | undefined }
  credentialsFromParts?: boolean
}

export function workerSettings (settings: S3Settings): WorkerS3Settings {
  const { credentials, ...rest } = settings
  if (typeof credentials === 'function') return { ...rest, credentialsFromParts: true }
  return credentials === undefined ? rest : { ...rest, credentials: { ...credentials } }
}

/**
 * Client for a streamed upload's calls (parts, single PUTs, create, complete, abort): one attempt per call, since the plugin retries each itself (`withRetries`).
 * `payloadSigning: 'unsigned'` sends the bodies of UploadPart and PutObject as UNSIGNED-PAYLOAD.
 */
export function createPartClient (settings: S3Settings | WorkerS3Settings, credentials?: S3ClientConfig['credentials'], payloadSigning: PayloadSigning = 'signed'): S3Client {
  const client = createS3Client(settings, { maxAttempts: 1, ...(credentials !== undefined ? { credentials } : {}) })
  if (payloadSigning === 'unsigned') unsignedBodies(client)
  return client
}

/** The commands whose body is file bytes: the only ones worth not hashing (the others' bodies are empty or a few hundred bytes of XML). */
const BODY_COMMANDS = new Set(['UploadPartCommand', 'PutObjectCommand'])

/**
 * SigV4 hashes the whole body into the signature (x-amz-content-sha256) unless
 * that header is already set: the signer then signs the header's value as is.
 * `UNSIGNED-PAYLOAD` there spares a SHA-256 over every byte uploaded (≈ 0.6 s/GiB
 * here, against ≈ 0.33 for the CRC32 sent instead), and the checksum header (x-amz-checksum-*),
 * which is signed, lets S3 refuse a body that does not match it.
 */
export function unsignedBodies (client: S3Client): void {
  client.middlewareStack.add((next, context) => async (args) => {
    const request = args.request as { headers?: Record<string, string> } | undefined
    if (BODY_COMMANDS.has(context.commandName ?? '') && request?.headers !== undefined) {
      request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD'
    }
    return await next(args)
  }, { step: 'build', name: 'fastifyS3ChunkUnsignedPayload', override: true })
}

/** An ETag without its quotes, as S3File.etag carries it. */
export function etagValue (etag: string | undefined): string {
  return (etag ?? '').replace(/^"|"$/g, '')
}

/** Parts of a multipart object, read from its ETag (`<md5>-<parts>`); 0 for a single PUT. */
export function etagParts (etag: string | undefined): number {
  const match = /-(\d+)"?$/.exec(etag ?? '')
  return match?.[1] !== undefined ? Number(match[1]) : 0
}

/**
 * The object's URL (not presigned), as the SDK addresses it: its own endpoint rules decide —
 * virtual-hosted or by path (an IP endpoint, a dotted bucket, forcePathStyle), the partition's
 * domain (amazonaws.com.cn) — rather than a URL built by hand (found in two reviews).
 */
export function objectUrl (settings: S3Settings, bucket: string, key: string): string {
  const path = key.split('/').map(encodeURIComponent).join('/')
  return `${bucketEndpoint(settings, bucket).url.href.replace(/\/$/, '')}/${path}`
}

/**
 * The bucket's URL and the region requests to it are signed for (`aws-global` signs as
 * us-east-1), from the SDK's endpoint rules with the client's own FIPS, dual-stack and
 * acceleration settings. Never throws: called after an object is committed (its `location`),
 * where a failure would leave a stored object no hook heard of. An endpoint the rules refuse
 * (one with a query string, which the SDK still sends to: found in review) is addressed by path.
 */
export function bucketEndpoint (settings: S3Settings, bucket: string): { url: URL, signingRegion: string } {
  try {
    const resolved = endpointRules()({
      Bucket: bucket,
      Region: settings.region,
      ForcePathStyle: settings.forcePathStyle,
      UseFIPS: settings.useFipsEndpoint === true,
      UseDualStack: settings.useDualstackEndpoint === true,
      Accelerate: settings.useAccelerateEndpoint === true,
      ...(settings.endpoint !== undefined ? { Endpoint: settings.endpoint } : {})
    })
    const scheme = resolved.properties?.authSchemes?.find((auth) => auth.signingRegion !== undefined)
    return { url: resolved.url, signingRegion: scheme?.signingRegion ?? settings.region }
  } catch {
    // (A region no host can carry falls back further still: requests there fail before any commit.)
    let base: URL
    try { base = new URL(settings.endpoint ?? `https://s3.${settings.region}.amazonaws.com`) } catch { base = new URL('https://s3.amazonaws.com') }
    return { url: new URL(`${base.origin}${base.pathname.replace(/\/$/, '')}/${encodeURIComponent(bucket)}`), signingRegion: settings.region }
  }
}

type EndpointRules = (params: Record<string, unknown>) => { url: URL, properties?: { authSchemes?: Array<{ signingRegion?: string }> } }
let rules: EndpointRules | undefined

/** The SDK's S3 endpoint rules (the same for every client; taken from one, made once, never sending). */
function endpointRules (): EndpointRules {
  rules ??= (new S3Client({ region: 'us-east-1' }).config as unknown as { endpointProvider: EndpointRules }).endpointProvider
  return rules
}
