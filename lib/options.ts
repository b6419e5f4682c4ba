import { availableParallelism } from 'node:os'
import { isAbsolute } from 'node:path'
import { z } from 'zod'
import type { FastifyRequest } from 'fastify'
import type { PutObjectCommandInput } from '@aws-sdk/client-s3'
import { InvalidOptionError } from './errors.js'
import { layerObjectParams } from './object-params.js'

export const MiB = 1024 * 1024
export const GiB = 1024 * MiB
export const TiB = 1024 * GiB
/** S3's floor for every part but the last. */
export const MIN_PART_SIZE = 5 * MiB
/** S3's ceiling for one part. */
export const MAX_PART_SIZE = 5 * GiB
/** S3's ceiling for one object. */
export const MAX_OBJECT_SIZE = 5 * TiB
/** S3's ceiling for the parts of one upload. */
export const MAX_PARTS = 10_000

/** What a `key()` option receives to name an object. */
export interface KeyContext {
  /** The client's filename after sanitising (safe as a key segment). */
  filename: string
  /** The filename exactly as the client sent it (untrusted). */
  originalName: string
  /** The multipart field the file came in. */
  fieldName: string
  /** The content type the client declared for the file, parsed (parameters dropped); `application/octet-stream` when it declared none. */
  mimetype: string
  request: FastifyRequest
}

/** Returns the object key (below `keyPrefix`) for an incoming file. */
export type KeyFunction = (context: KeyContext) => string | Promise<string>

/** Who is uploading, as `direct.authorize` says. */
export interface DirectUser {
  /**
   * Becomes a key segment one-to-one: every key of this user lives under
   * `<keyPrefix>/<segment>/`, where the segment is the id itself for plain ids
   * (ASCII letters and digits, single `-`/`_` between them, ≤ 64 characters)
   * `-<hex of its UTF-8>` for any other up to 99 bytes, and `=<hex SHA-256>` for a longer one;
   * an id over 1024 UTF-8 bytes (or not well-formed Unicode) is refused.
   */
  userId: string
}

/**
 * Decides whether a direct-upload request may go on: the user, or null/undefined/false
 * for "not signed in" (401; `false` so that `session.valid && { userId }` type-checks). Throw
 * ForbiddenError (403) — or any error with a statusCode — to refuse a signed-in user.
 */
export type AuthorizeFunction = (request: FastifyRequest) => DirectUser | null | undefined | false | Promise<DirectUser | null | undefined | false>

/** What a `direct.key()` option receives. */
export interface DirectKeyContext {
  userId: string
  /** The client's filename after sanitising. */
  filename: string
  /** The filename exactly as the client sent it (untrusted). */
  originalName: string
  /** The content type the client declared. */
  type: string
  request: FastifyRequest
}

/** Names a direct upload's object, below `<keyPrefix>/<user segment>/` (enforced). */
export type DirectKeyFunction = (context: DirectKeyContext) => string | Promise<string>

/** Credentials for S3, or a provider of them; the SDK's `AwsCredentialIdentityProvider` fits. */
export type CredentialProvider = () => Promise<{ accessKeyId: string, secretAccessKey: string, sessionToken?: string | undefined, expiration?: Date | undefined }>

/** Called once a file is stored and checked, streamed or direct: where an app records it. */
export type UploadCompleteHook = (file: import('./types.js').S3File, request: FastifyRequest) => void | Promise<void>

/**
 * S3 object settings, by the AWS SDK's own names (its documentation applies):
 * applied alike to the single PutObject of a small file and to
 * CreateMultipartUpload (SSE-C also to every UploadPart), and pinned in
 * direct mode's POST policies and multipart creates.
 */
export type ObjectParams = Pick<PutObjectCommandInput,
| 'Metadata' | 'CacheControl' | 'ContentDisposition' | 'ContentEncoding' | 'ContentLanguage' | 'Expires'
| 'StorageClass' | 'Tagging' | 'ServerSideEncryption' | 'SSEKMSKeyId' | 'SSEKMSEncryptionContext' | 'BucketKeyEnabled'
| 'SSECustomerAlgorithm' | 'SSECustomerKey' | 'SSECustomerKeyMD5' | 'ACL'>

/** What the per-file hooks (`onFile`, `objectParams` as a function) receive. */
export interface FileContext {
  /** The multipart field the file came in. */
  fieldName: string
  /** The filename exactly as the client sent it (untrusted). */
  originalName: string
  /** The client's filename after sanitising (safe as a key segment). */
  filename: string
  /** The declared type, parsed (one `type/subtype`), or undefined when none was declared. */
  declaredType: string | undefined
  /** The type the object is stored with, once the first bytes were sniffed (`objectParams` only; the declaration's in `onFile`). */
  contentType: string
  /** The form's non-file fields read so far (those sent before the file). */
  fields: Record<string, string | string[]>
  request: FastifyRequest
}

/** Object settings per file, computed from its context. */
export type ObjectParamsFunction = (file: FileContext) => ObjectParams | Promise<ObjectParams>

/** What `onFile` may change for one file. */
export interface FileOverrides {
  /** The object key (below keyPrefix, sanitised per segment like `key()`'s). */
  key?: string
  /** Object settings, merged over the rule's (Metadata merged name by name). */
  objectParams?: ObjectParams
}

/**
 * Called for each file before anything of it is stored, with the fields read
 * so far: throw to refuse it (the error is the reply: give it a statusCode),
 * or return overrides for this file.
 */
export type OnFileHook = (file: Omit<FileContext, 'contentType'>) => void | FileOverrides | Promise<void | FileOverrides>

/** One upload's progress, as `onProgress` receives it. */
export interface UploadProgress {
  fieldName: string
  originalName: string
  key: string
  /** File bytes read from the client so far. */
  bytesReceived: number
  /** File bytes S3 has acknowledged so far. */
  bytesStored: number
  /** Parts S3 has acknowledged (0 until the end for a single PutObject). */
  partsDone: number
  /** The request body's declared length: an upper bound of the file's (it includes the form's other parts); undefined for a chunked body. */
  total: number | undefined
  /** True for the last call: the file is stored. */
  done: boolean
}

/** Called as an upload goes, at most every 250 ms, and once when the file is stored. */
export type ProgressHook = (progress: UploadProgress) => void

const int = (min: number, max: number) => z.number().int().min(min).max(max)

// S3's bucket naming rules (lowercase DNS-style, 3-63 chars).
const bucketName = z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a valid S3 bucket name (3-63 chars of a-z, 0-9, ".", "-")')

// The S3 settings must be plain data: the worker threads rebuild their own client from them.
const s3Schema = z.strictObject({
  region: z.string().min(1).default('us-east-1'),
  endpoint: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  forcePathStyle: z.boolean().default(false),
  // Not strict: the SDK adds bookkeeping keys (`$source`) to a credentials object it was
  // given, and the same object is often passed to an S3Client of the app's too. Parsing
  // copies the known keys; the app's object is never changed.
  credentials: z.union([
    z.object({
      accessKeyId: z.string().min(1),
      secretAccessKey: z.string().min(1),
      sessionToken: z.string().min(1).optional()
    }),
    // A provider (SSO, assumed roles, container credentials refreshed by the app): resolved
    // on the main thread; worker threads are handed the resolved credentials with each part.
    z.custom<CredentialProvider>((value) => typeof value === 'function', 'must be { accessKeyId, secretAccessKey, sessionToken? } or a provider function')
  ]).optional(),
  /** The SDK's dual-stack (IPv6) endpoints. */
  useDualstackEndpoint: z.boolean().optional(),
  /** The SDK's FIPS endpoints. */
  useFipsEndpoint: z.boolean().optional(),
  /** S3 Transfer Acceleration endpoints. */
  useAccelerateEndpoint: z.boolean().optional(),
  /** The SDK's retry mode for `fastify.s3Chunk.client` (streamed uploads use `retry`). */
  retryMode: z.enum(['standard', 'adaptive']).optional(),
  /** Sockets per client (the main thread's and each worker thread's) to S3. */
  maxSockets: int(1, 10_000).optional(),
  /** Keep connections to S3 open between requests (default true). */
  keepAlive: z.boolean().optional(),
  /**
   * Send `Expect: 100-continue` with bodies of 2 MiB and more (parts, single
   * PUTs), as the AWS SDK does by default: S3 may then refuse a request before
   * its body is sent. Default false: the SDK's HTTP handler
   * (@smithy/node-http-handler 4) sends every request with that header on a
   * connection of its own, without keep-alive (and outside `maxSockets`) — one
   * TCP connection, and over TLS one handshake, per part; without it parts
   * reuse their connections.
   */
  expectContinue: z.boolean().optional(),
  /** Appended to the SDK's user agent, e.g. `my-app/1.2`. */
  userAgent: z.string().regex(/^[\x21-\x7e]+( [\x21-\x7e]+)*$/, 'must be printable ASCII words').max(256).optional(),
  /** Attempts per request of `fastify.s3Chunk.client` (direct routes, maintenance helpers) by the AWS SDK's retry strategy. Streamed uploads use `retry`. */
  maxAttempts: int(1, 20).default(3),
  /** Milliseconds a TCP connection to S3 may take to open. */
  connectionTimeout: int(1, 600_000).default(10_000),
  /** Milliseconds one S3 request may take, body included; a stalled request fails (and a part is retried). */
  requestTimeout: int(1, 3_600_000).default(120_000)
})

// One core is left to the main thread (it parses the body and cuts the parts);
// the threads' work is network I/O and hashing, so a few threads go a long way.
// Measured on 2 cores: 1 thread as fast as 2, 50 MiB less RSS, half the event-loop delay.
const defaultThreads = Math.max(1, Math.min(4, availableParallelism() - 1))

const workersSchema = z.strictObject({
  minThreads: int(0, 64).optional(),
  maxThreads: int(1, 64).default(defaultThreads),
  /** Parts one worker thread sends at once (the work is network I/O, not CPU). */
  concurrentTasksPerWorker: int(1, 256).default(16),
  /** Milliseconds an idle thread (and its S3 client and sockets) is kept for reuse. */
  idleTimeout: int(0, 24 * 3600 * 1000).default(60_000),
  /**
   * Whole part buffers are SharedArrayBuffers the threads read in place
   * (measured: far fewer GCs and less CPU with concurrent uploads). They are
   * kept for reuse while idle, within `maxBufferedBytes`: a thread may hold a
   * shared buffer until its next GC, so dropping one would not give its memory
   * back. `false`: buffers are moved to the threads and back, and free ones are
   * given back to the OS after 30 s idle.
   */
  sharedBuffers: z.boolean().default(true),
  /**
   * The worker file (absolute path or file: URL). Default: the one beside the
   * package (`dist/workers/upload-part.js`). A bundled app ships its own bundle of
   * that file and names it here.
   */
  filename: z.union([z.string(), z.instanceof(URL)])
    .transform((value) => typeof value === 'string' ? value : value.href)
    .refine((value) => isAbsolute(value) || value.startsWith('file:'), 'must be an absolute path or a file: URL')
    .optional()
})

const retrySchema = z.strictObject({
  /** Attempts per S3 call of a streamed upload (part, single PUT, create, complete, abort), the first included; retryable failures only (5xx, throttling, resets, timeouts). The direct routes' looks after a commit S3 carried out use it too, on top of `s3.maxAttempts`. */
  attempts: int(1, 20).default(4),
  /** First backoff ceiling in ms; doubles each attempt, full jitter. */
  baseDelayMs: int(0, 60_000).default(200),
  /** Largest backoff in ms. */
  maxDelayMs: int(0, 600_000).default(10_000)
})

const directSchema = z.strictObject({
  /** Every direct route calls it first: the user, null → 401, or throw → that error (403). */
  authorize: z.custom<AuthorizeFunction>((value) => typeof value === 'function', 'must be a function (request) => { userId } | null'),
  /** A named rule set (`rules`) the direct routes run by, instead of the registration's own rules. */
  rules: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must name a rule set').optional(),
  /** Route prefix for the direct routes (`<prefix>/s3/...`). */
  prefix: z.string().regex(/^(\/[A-Za-z0-9._~-]+)*$/, 'must be empty or like /api/uploads').default(''),
  /** Custom naming below `<keyPrefix>/<user segment>/`; default `<random id>/<sanitised filename>`. */
  key: z.custom<DirectKeyFunction>((value) => typeof value === 'function', 'must be a function (context) => string').optional(),
  /** Seconds a presigned POST policy or part URL stays valid. */
  expiresIn: int(1, 7 * 24 * 3600).default(900),
  /**
   * A direct multipart create must declare the file's `size` (400 without it; 413 over
   * maxFileSize), and each part URL then signs that part's exact Content-Length, so S3
   * refuses any other body. `false` lets a create go without a size: its parts are then
   * unbounded until the complete route checks the object, the only bound left.
   */
  requireSize: z.boolean().default(true),
  /**
   * Seals the declared size into the upload ids the create route returns, so any
   * instance can sign a part's length without shared state. The same on every
   * instance; default: derived from `s3.credentials.secretAccessKey`, required without it.
   */
  secret: z.string().min(32, 'must be at least 32 characters').optional(),
  /** Most part URLs one `GET /s3/multipart/<uploadId>/batch` signs; more is refused with 400. (@uppy/aws-s3 v5 signs one part a call.) */
  maxBatchParts: int(1, 1000).default(100),
  /**
   * Canned ACL for direct uploads: pinned by presigned POST policies, set on the
   * promoted object, and on multipart uploads at create. Unset (the default): no
   * ACL is sent, which is what a new AWS bucket (ACLs disabled, "bucket owner
   * enforced") requires; the object is then as private as the bucket.
   */
  acl: z.enum(['private', 'public-read', 'authenticated-read', 'bucket-owner-read', 'bucket-owner-full-control']).optional(),
  /**
   * Uppy `metadata` fields stored as S3 user metadata (`x-amz-meta-<name>`),
   * e.g. `['caption']`; any other field is dropped. Values are percent-encoded
   * (S3 metadata is ASCII), pinned in the POST policy, and with the filename
   * bounded to S3's 2 KiB of user metadata (400 beyond it).
   */
  metadataFields: z.array(z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be lowercase letters, digits and "-" (S3 lowercases metadata names)')
    .refine((name) => name !== 'original-name', 'original-name is the plugin\'s own')).max(32).default([])
})

const tusSchema = z.strictObject({
  /** Route prefix of the tus endpoint: `POST <prefix>` creates, `<prefix>/<token>` is an upload's URL. */
  prefix: z.string().regex(/^(\/[A-Za-z0-9._~-]+)+$/, 'must be like /files').default('/files'),
  /** Seconds an upload may go without a PATCH before it expires (410, then swept); renewed by every PATCH (Upload-Expires). */
  expiresIn: int(1, 365 * 24 * 3600).default(24 * 3600),
  /**
   * Seals upload URLs to their upload and owner, so any instance can check them with
   * nothing shared but S3. The same on every instance; default: derived from
   * `s3.credentials.secretAccessKey`, required without it.
   */
  secret: z.string().min(32, 'must be at least 32 characters').optional(),
  /** Called by every tus request: the user (who then alone can see, resume or terminate the upload), null → 401, or throw (403). Unset: anyone holding an upload's URL. */
  authorize: z.custom<AuthorizeFunction>((value) => typeof value === 'function', 'must be a function (request) => { userId } | null').optional(),
  /** A named rule set (`rules`) the tus endpoint runs by, instead of the registration's own rules. */
  rules: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must name a rule set').optional(),
  /** Largest upload (Tus-Max-Size); default and ceiling: the rules' maxFileSize. */
  maxSize: int(0, MAX_OBJECT_SIZE).optional(),
  /**
   * Seconds a PATCH holds its upload without renewing the hold (it renews it
   * every third of this while it runs): how long an upload stays locked after
   * the instance serving it died.
   */
  leaseTimeout: int(1, 3600).default(30)
})

const keyFunction = z.custom<KeyFunction>((value) => typeof value === 'function', 'must be a function (context) => string')
const fn = <T>(message: string) => z.custom<T>((value) => typeof value === 'function', message)

const objectParamsSchema = z.strictObject({
  Metadata: z.record(z.string().regex(/^[a-z0-9][a-z0-9-]{0,127}$/i, 'metadata names are letters, digits and "-"'), z.string()).optional(),
  CacheControl: z.string().optional(),
  ContentDisposition: z.string().optional(),
  ContentEncoding: z.string().optional(),
  ContentLanguage: z.string().optional(),
  Expires: z.date().optional(),
  StorageClass: z.string().optional(),
  Tagging: z.string().optional(),
  ServerSideEncryption: z.enum(['AES256', 'aws:kms', 'aws:kms:dsse', 'aws:fsx']).optional(),
  SSEKMSKeyId: z.string().optional(),
  SSEKMSEncryptionContext: z.string().optional(),
  BucketKeyEnabled: z.boolean().optional(),
  SSECustomerAlgorithm: z.string().optional(),
  SSECustomerKey: z.string().optional(),
  SSECustomerKeyMD5: z.string().optional(),
  ACL: z.enum(['private', 'public-read', 'public-read-write', 'authenticated-read', 'aws-exec-read', 'bucket-owner-read', 'bucket-owner-full-control']).optional()
}) as unknown as z.ZodType<ObjectParams, ObjectParams>

/** Object settings computed at upload time, checked by the same schema as static ones (a bad one is the app's bug: 500). */
export function checkObjectParams (params: ObjectParams, where: string): ObjectParams {
  return check(objectParamsSchema, params, where)
}

/**
 * The rule options: what may differ from one route to another (per
 * registration, per named rule set, per route, per call). Every upload draws
 * on the one engine below them.
 */
const ruleShape = {
  /** Bucket every object goes to. */
  bucket: bucketName.optional(),
  /** Key prefix every object lives under (the "document root"). */
  keyPrefix: z.string().max(512).default(''),
  /** Put a UTC timestamp (and random bits) before the file extension, so uploads of a name never collide. */
  appendTimestamp: z.boolean().default(true),
  /** Query parameter naming a sub-prefix below keyPrefix; `true` means `__prefix`. Off by default. */
  prefixQueryParam: z.union([z.boolean(), z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be a query parameter name')]).default(false),
  /**
   * Replace an object that already exists at a key. Off by default: every write is
   * conditional (`If-None-Match: *`), so an upload whose key is taken fails with 409
   * FST_S3CHUNK_KEY_EXISTS and nothing is replaced. Turn it on for stores without
   * conditional writes, or where replacing is the point.
   */
  overwrite: z.boolean().default(false),
  /**
   * Milliseconds an upload may wait for the client's next bytes; past it the upload is
   * aborted with 408 FST_S3CHUNK_BODY_TIMEOUT. Time the plugin itself spends not reading
   * (parts in flight, memory budget) does not count.
   */
  bodyTimeout: int(1000, 24 * 3600 * 1000).default(30_000),
  /** Custom key naming; its result is sanitised per segment and placed below keyPrefix. */
  key: keyFunction.optional(),
  /** Bytes per S3 part (S3 needs ≥ 5 MiB for every part but the last). */
  partSize: int(MIN_PART_SIZE, MAX_PART_SIZE).default(MIN_PART_SIZE),
  /** Parts of one file in flight at once; beyond it the request body is not read (TCP backpressure). */
  partConcurrency: int(1, 64).default(4),
  /** Largest accepted file in bytes; beyond it the upload is aborted with 413. */
  maxFileSize: int(0, MAX_OBJECT_SIZE).default(MAX_OBJECT_SIZE),
  /** Most parts the store allows in one upload (S3: 10,000; some stores fewer). Part sizes grow to fit. */
  maxParts: int(1, MAX_PARTS).default(MAX_PARTS),
  /** Every part but the last the same size (stores such as R2 require it); part sizes then never grow mid-upload. */
  equalParts: z.boolean().default(false),
  /** Most files accepted in one request. */
  maxFiles: int(1, 10_000).default(100),
  /** Most non-file fields accepted in one request. */
  maxFields: int(0, 10_000).default(100),
  /** Largest non-file field value in bytes. */
  maxFieldSize: int(0, 64 * MiB).default(MiB),
  /**
   * Most bytes of all non-file field values of one request together: fields are held in
   * memory until the request ends, outside maxBufferedBytes. Unset: maxFieldSize, at least 1 MiB.
   */
  maxFieldsSize: int(0, 256 * MiB).optional(),
  /**
   * Allowed content types (`image/png`, `image/*`, `video/*`): declared types are checked
   * when signing, and each stored file's first bytes are sniffed (file-type); a file of
   * another type is refused (streamed) or deleted (direct). Unset: any type.
   */
  allowedTypes: z.array(z.string().regex(/^[a-z0-9!#$&^_.+-]+\/([a-z0-9!#$&^_.+-]+|\*)$/i, 'must be a type like image/png or image/*')).min(1).optional(),
  /** S3 object settings (the SDK's names), or a function of the file that returns them. */
  objectParams: z.union([objectParamsSchema, fn<ObjectParamsFunction>('must be object settings or a function (file) => object settings')]).optional(),
  /** Called for each file before anything is stored: throw to refuse it, or return overrides (key, objectParams). */
  onFile: fn<OnFileHook>('must be a function (file) => void | { key?, objectParams? }').optional(),
  /** Called for every stored file, streamed or direct, once it is committed and checked. */
  onUploadComplete: fn<UploadCompleteHook>('must be a function (file, request) => void').optional(),
  /** Called as each upload goes (throttled), and once when its file is stored. */
  onProgress: fn<ProgressHook>('must be a function (progress) => void').optional()
}

/**
 * The engine options: one worker pool, one memory budget and one set of S3
 * clients per app, shared by every route and every registration. The first
 * registration sets them; a later one may leave them out or repeat them
 * unchanged.
 */
const engineShape = {
  /** S3 client settings; credentials omitted → the AWS default provider chain. */
  s3: s3Schema.default({ region: 'us-east-1', forcePathStyle: false, maxAttempts: 3, connectionTimeout: 10_000, requestTimeout: 120_000 }),
  /** Bytes held in part buffers by all uploads of the process at once; a new part waits for room. */
  maxBufferedBytes: int(MIN_PART_SIZE, 64 * GiB).default(256 * MiB),
  /**
   * Checksum of every part and single PUT, computed where it is sent (CRC32:
   * @node-rs/crc32, else Node's zlib.crc32) and verified by S3, which refuses a body corrupted on the way; the
   * object's checksum is S3File.checksum. 'none' for stores that reject or ignore
   * checksum headers (payloads are then signed, see `payloadSigning`).
   */
  checksum: z.enum(['none', 'CRC32', 'CRC32C', 'SHA256']).default('CRC32'),
  /**
   * What SigV4 signs of a part's (or single PUT's) body. `'unsigned'`
   * (`x-amz-content-sha256: UNSIGNED-PAYLOAD`): the body's integrity rests on
   * `checksum`, which S3 verifies — less CPU per GiB, since no
   * SHA-256 of the payload is computed. `'signed'`: a SHA-256 of every body goes
   * into the signature, as the SDK does by default. Default: `'unsigned'` with a
   * checksum, `'signed'` with `checksum: 'none'`; `'unsigned'` needs a checksum.
   */
  payloadSigning: z.enum(['unsigned', 'signed']).optional(),
  /** Retries of every S3 call of a streamed upload: parts and single PUTs (their buffered bytes re-sent), create, complete, abort. */
  retry: retrySchema.default({ attempts: 4, baseDelayMs: 200, maxDelayMs: 10_000 }),
  /** `workers`: parts sent from a Piscina thread pool; `inline`: from the main thread. */
  mode: z.enum(['workers', 'inline']).default('workers'),
  /** Worker pool sizing (mode `workers`). */
  workers: workersSchema.default({ maxThreads: defaultThreads, concurrentTasksPerWorker: 16, idleTimeout: 60_000, sharedBuffers: true }),
  /**
   * Milliseconds `app.close()` lets uploads in flight finish before it aborts
   * them; new uploads are refused (503 FST_S3CHUNK_CLOSING, `Retry-After`) from
   * the start of the close. 0 (the default): aborted at once.
   */
  closeGracePeriod: int(0, 3_600_000).default(0)
}

/** Names of the engine options (set once per app). */
export const ENGINE_OPTIONS = Object.keys(engineShape) as Array<keyof typeof engineShape>
/** Names of the rule options (per registration, rule set, route or call). */
export const RULE_OPTIONS = Object.keys(ruleShape) as Array<keyof typeof ruleShape>

// The same rule options with no defaults: an override says only what it changes.
const ruleOverridesSchema = z.strictObject(Object.fromEntries(Object.entries(ruleShape).map(([name, schema]) =>
  [name, (schema instanceof z.ZodDefault ? schema.unwrap() : schema).optional()])) as unknown as { [K in keyof typeof ruleShape]: z.ZodOptional<z.ZodType<z.output<typeof ruleShape[K]>, z.input<typeof ruleShape[K]>>> })

const ruleSetName = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be a name of letters, digits, "_" and "-"')

export const optionsSchema = z.strictObject({
  ...engineShape,
  ...ruleShape,
  /** Named rule sets, layered over this registration's rules: `request.s3File({ rules: 'avatars' })`, `config: { s3Chunk: 'avatars' }`, `direct.rules`. */
  rules: z.record(ruleSetName, ruleOverridesSchema).optional(),
  /** Direct browser-to-S3 uploads (presigned POST and multipart, Uppy-compatible). Off unless set. */
  direct: directSchema.optional(),
  /** The tus 1.0.0 resumable-upload endpoint (`tus: {}` → at /files). Off unless set. */
  tus: tusSchema.optional()
})

/** Options accepted by `app.register(s3Chunk, options)`. */
export type S3ChunkOptions = z.input<typeof optionsSchema>
/** Rule options as an override says them: any subset, by their register names. */
export type RuleOptions = z.input<typeof ruleOverridesSchema>
/** Options of `request.s3File(options)` / `request.s3Files(options)`. */
export interface UploadOptions extends RuleOptions {
  /** A named rule set declared at register (`rules`), layered under these options. */
  rules?: string
  /** Aborting it aborts the upload in flight, as a client disconnect does: nothing is left open. */
  signal?: AbortSignal
}
/** A route's `config.s3Chunk`: a rule set's name, or rule options (with `rules` naming a set to layer them over). */
export type RouteRules = string | (RuleOptions & { rules?: string })
/** Options after validation and defaults, with a bucket; frozen. The view every upload reads: engine and rules together. */
export type S3ChunkConfig = Readonly<Omit<z.output<typeof optionsSchema>, 'bucket' | 'rules'> & { bucket: string }>
/** The engine options after validation. */
export type EngineConfig = Pick<S3ChunkConfig, typeof ENGINE_OPTIONS[number]>
/** Plain-data S3 settings (shared with worker threads). */
export type S3Settings = z.output<typeof s3Schema>
/** Direct-upload settings after validation. */
export type DirectConfig = z.output<typeof directSchema>
/** tus endpoint settings after validation. */
export type TusConfig = z.output<typeof tusSchema>
/** Retry policy of a streamed upload's S3 calls. */
export type RetryPolicy = z.output<typeof retrySchema>
/** Checksum algorithm, or 'none'. */
export type ChecksumSetting = z.output<typeof optionsSchema>['checksum']
/** What SigV4 signs of a part's body, resolved: never undefined. */
export type PayloadSigning = 'unsigned' | 'signed'

/** `payloadSigning` as set, or its default: unsigned when S3 verifies a checksum instead, signed without one. */
export function payloadSigningOf (config: { checksum: ChecksumSetting, payloadSigning?: PayloadSigning | undefined }): PayloadSigning {
  return config.payloadSigning ?? (config.checksum === 'none' ? 'signed' : 'unsigned')
}

/** A registration's options, validated: its resolved config, its named rule sets, and which options it gave. */
export interface ParsedOptions {
  /** Engine and rules with defaults filled in (bucket may be missing: inherited from an outer registration). */
  config: Omit<S3ChunkConfig, 'bucket'> & { bucket?: string | undefined }
  /** Named rule sets as given (overrides, validated). */
  rules: Record<string, RuleOptions>
  /** Option names the registration set itself. */
  given: Set<string>
}

/** Validates a registration's options once, at register time; throws InvalidOptionError naming the option path and rule. */
export function parseOptions (input: S3ChunkOptions): ParsedOptions {
  const data = check(optionsSchema, input ?? {}, '')
  checkEngineCombination(data)
  const { rules, ...config } = data
  config.keyPrefix = normalisePrefix(config.keyPrefix)
  for (const set of Object.values(rules ?? {})) {
    if (set.keyPrefix !== undefined) set.keyPrefix = normalisePrefix(set.keyPrefix)
  }
  return {
    config: deepFreeze(config),
    rules: deepFreeze(rules ?? {}),
    given: new Set(Object.keys(input ?? {}).filter((name) => (input as Record<string, unknown>)[name] !== undefined))
  }
}

/**
 * Layers rule options over a config (a route's, a call's): validated by the
 * same schema as at register, so a bad one names where it came from and the
 * option; the result is frozen.
 */
export function layerRules (base: S3ChunkConfig, overrides: RuleOptions, where: string): S3ChunkConfig {
  const parsed = check(ruleOverridesSchema, overrides, where)
  const layered: Record<string, unknown> = { ...base }
  for (const [name, value] of Object.entries(parsed)) {
    if (value === undefined) continue
    if (name === 'keyPrefix') layered[name] = normalisePrefix(value as string)
    else if (name === 'objectParams') layered[name] = layerObjectParams(base.objectParams, value as S3ChunkConfig['objectParams'])
    else layered[name] = value
  }
  const config = layered as S3ChunkConfig
  checkCombination(config, where)
  return deepFreeze(config)
}

/** Rules that hold between options (also when they come from different layers). */
export function checkCombination (config: Pick<S3ChunkConfig, 'partSize' | 'maxBufferedBytes'>, where: string): void {
  if (config.maxBufferedBytes < config.partSize) {
    throw new InvalidOptionError(`${where === '' ? '' : `${where}: `}"maxBufferedBytes": must be at least partSize (${config.partSize} bytes)`)
  }
}

/** Engine options that hold together: an unsigned body must be covered by a checksum S3 verifies. */
function checkEngineCombination (config: Pick<S3ChunkConfig, 'checksum' | 'payloadSigning'>): void {
  if (config.payloadSigning === 'unsigned' && config.checksum === 'none') {
    throw new InvalidOptionError('"payloadSigning": \'unsigned\' needs a checksum S3 verifies (checksum: \'CRC32\', \'CRC32C\' or \'SHA256\'); with checksum: \'none\' use \'signed\', or nothing would check the bytes S3 stores')
  }
}

function check<T> (schema: z.ZodType<T>, input: unknown, where: string): T {
  const result = schema.safeParse(input)
  if (result.success) return result.data
  const problems = result.error.issues.flatMap((issue) => explain(issue, []))
  throw new InvalidOptionError(`${where === '' ? '' : `${where}: `}${problems.join('; ')}`)
}

// A union (credentials: an object or a provider) says only "Invalid input": name what its first form lacks instead.
function explain (issue: z.core.$ZodIssue, prefix: PropertyKey[]): string[] {
  const path = [...prefix, ...issue.path]
  if (issue.code === 'invalid_union' && issue.errors.length > 0 && (issue.errors[0]?.length ?? 0) > 0) {
    return (issue.errors[0] ?? []).flatMap((inner) => explain(inner, path))
  }
  return [`"${path.length > 0 ? path.map(String).join('.') : '(options)'}": ${issue.message}`]
}

// "/media//photos/" → "media/photos": keys never start with "/" and segments never empty.
function normalisePrefix (prefix: string): string {
  return prefix.split('/').filter((segment) => segment !== '' && segment !== '.' && segment !== '..').join('/')
}

function deepFreeze<T extends object> (value: T): Readonly<T> {
  for (const inner of Object.values(value)) {
    if (inner !== null && typeof inner === 'object') deepFreeze(inner)
  }
  return Object.freeze(value)
}

/** A registration's config as the first registration in an app makes it (a bucket required): for tests and tools. */
export function configOf (input: S3ChunkOptions): S3ChunkConfig {
  const { config } = parseOptions(input)
  checkRootConfig(config)
  return config
}

/** What only the first registration must have: a bucket, and rules that fit the engine. */
export function checkRootConfig (config: ParsedOptions['config']): asserts config is S3ChunkConfig {
  if (config.bucket === undefined) throw new InvalidOptionError('"bucket": required (where objects go)')
  checkCombination(config, '')
}
