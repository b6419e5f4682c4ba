// The named export: declarations then name `import("@fastify/error").FastifyErrorConstructor`, which every module setting
// resolves (the default import's namespace is only seen as one under node16/nodenext ESM).
import { createError } from '@fastify/error'

// One constant per failure a caller can meet. Codes and statuses are part of the
// public contract (README "Errors"); messages are safe to send to a client.

/** A plugin option is invalid; thrown at register time. `%s` is the option path and rule. */
export const InvalidOptionError = createError<'FST_S3CHUNK_INVALID_OPTION', 500, [string]>(
  'FST_S3CHUNK_INVALID_OPTION',
  'fastify-s3-chunk: invalid option %s',
  500
)

/** The plugin was registered twice in one scope. */
export const AlreadyRegisteredError = createError<'FST_S3CHUNK_ALREADY_REGISTERED', 500, []>(
  'FST_S3CHUNK_ALREADY_REGISTERED',
  'fastify-s3-chunk is already registered in this scope; register it once (or in separate encapsulated scopes)',
  500
)

/** The request body is not multipart/form-data. */
export const NotMultipartError = createError<'FST_S3CHUNK_NOT_MULTIPART', 415, []>(
  'FST_S3CHUNK_NOT_MULTIPART',
  'Expected a multipart/form-data request body with a file field',
  415
)

/** The multipart body held no file part. */
export const NoFileError = createError<'FST_S3CHUNK_NO_FILE', 400, []>(
  'FST_S3CHUNK_NO_FILE',
  'The multipart body contains no file: send the file as a form field with a filename',
  400
)

/** The multipart body is malformed or ended early. `%s` says what was wrong. */
export const BadMultipartError = createError<'FST_S3CHUNK_BAD_MULTIPART', 400, [string]>(
  'FST_S3CHUNK_BAD_MULTIPART',
  'Malformed multipart body: %s',
  400
)

/** A file is larger than `maxFileSize`; nothing was stored. */
export const FileTooLargeError = createError<'FST_S3CHUNK_FILE_TOO_LARGE', 413, [number]>(
  'FST_S3CHUNK_FILE_TOO_LARGE',
  'File exceeds the maximum size of %d bytes; nothing was stored',
  413
)

/** The file needs more S3 parts than `maxParts` allows at the part sizes in use. */
export const PartLimitError = createError<'FST_S3CHUNK_PART_LIMIT', 413, [number]>(
  'FST_S3CHUNK_PART_LIMIT',
  'File too large for the store: it needs more than %d parts; nothing was stored',
  413
)

/** More files, fields or parts than the configured limits allow. */
export const TooManyPartsError = createError<'FST_S3CHUNK_LIMIT_EXCEEDED', 413, [string]>(
  'FST_S3CHUNK_LIMIT_EXCEEDED',
  'Multipart limit exceeded: %s',
  413
)

/** The storage backend refused or failed a request. Details go to the log, not the client. */
export const StorageError = createError<'FST_S3CHUNK_STORAGE', 502, []>(
  'FST_S3CHUNK_STORAGE',
  'The file could not be stored: the storage backend failed; nothing was committed',
  502
)

/** `s3File()` / `s3Files()` was called a second time on the same request. */
export const AlreadyConsumedError = createError<'FST_S3CHUNK_ALREADY_CONSUMED', 500, []>(
  'FST_S3CHUNK_ALREADY_CONSUMED',
  'The request body was already consumed by s3File() or s3Files(); call one of them once per request',
  500
)

/** The S3 key produced by the key() option is unusable. `%s` says why. */
export const InvalidKeyError = createError<'FST_S3CHUNK_INVALID_KEY', 500, [string]>(
  'FST_S3CHUNK_INVALID_KEY',
  'The key() option returned an unusable S3 key: %s',
  500
)

/** The plugin is closing; new uploads are refused. */
export const ClosingError = createError<'FST_S3CHUNK_CLOSING', 503, []>(
  'FST_S3CHUNK_CLOSING',
  'The server is shutting down; the upload was not stored',
  503
)

/** A direct-upload route was called without a signed-in user (authorize() refused). */
export const UnauthorizedError = createError<'FST_S3CHUNK_UNAUTHORIZED', 401, []>(
  'FST_S3CHUNK_UNAUTHORIZED',
  'Sign in to upload',
  401
)

/** The caller may not act on this key or upload (not under their own prefix, or not theirs). `%s` says what. */
export const ForbiddenError = createError<'FST_S3CHUNK_FORBIDDEN', 403, [string]>(
  'FST_S3CHUNK_FORBIDDEN',
  'Not allowed: %s',
  403
)

/** The file's type (declared, or sniffed from its bytes) is not in `allowedTypes`. `%s` is the type. */
export const TypeNotAllowedError = createError<'FST_S3CHUNK_TYPE_NOT_ALLOWED', 415, [string]>(
  'FST_S3CHUNK_TYPE_NOT_ALLOWED',
  'File type not allowed: %s',
  415
)

/** A direct upload broke the rules once in S3 (size, type); it was deleted. `%s` is the reason. */
export const UploadRejectedError = createError<'FST_S3CHUNK_UPLOAD_REJECTED', 422, [string]>(
  'FST_S3CHUNK_UPLOAD_REJECTED',
  'Upload rejected: %s',
  422
)

/** A direct-upload route got a request it cannot use. `%s` says what is missing or wrong. */
export const BadRequestError = createError<'FST_S3CHUNK_BAD_REQUEST', 400, [string]>(
  'FST_S3CHUNK_BAD_REQUEST',
  'Bad request: %s',
  400
)

/** A declared Content-Type is not exactly one `type/subtype`. `%s` says what was wrong. */
export const BadContentTypeError = createError<'FST_S3CHUNK_BAD_CONTENT_TYPE', 400, [string]>(
  'FST_S3CHUNK_BAD_CONTENT_TYPE',
  'Bad Content-Type: %s',
  400
)

/** An object already exists at the upload's key and `overwrite` is off; nothing was replaced. `%s` is the key. */
export const KeyExistsError = createError<'FST_S3CHUNK_KEY_EXISTS', 409, [string]>(
  'FST_S3CHUNK_KEY_EXISTS',
  'An object already exists at %s; nothing was replaced (set overwrite: true to replace objects)',
  409
)

/** The client sent nothing for `bodyTimeout` ms; the upload was aborted. `%d` is the timeout. */
export const BodyTimeoutError = createError<'FST_S3CHUNK_BODY_TIMEOUT', 408, [number]>(
  'FST_S3CHUNK_BODY_TIMEOUT',
  'The request body stalled: nothing arrived for %d ms; the upload was aborted and nothing was stored',
  408
)

/** The app's onUploadComplete hook threw; the stored object was deleted so storage and the app's records agree. */
export const UploadHookError = createError<'FST_S3CHUNK_HOOK_FAILED', 500, []>(
  'FST_S3CHUNK_HOOK_FAILED',
  // True whatever became of the object: deleted, or kept where deleting would lose more (or failed; the log says which).
  'The upload could not be recorded by the application; it does not count as uploaded',
  500
)

/**
 * Never thrown (kept for apps that import it): an s3Files() request that fails after some files
 * were stored fails with its own error, its message listing the keys kept (`storedKeys`).
 */
export const PartiallyStoredError = createError<'FST_S3CHUNK_PARTIALLY_STORED', 400, [string]>(
  'FST_S3CHUNK_PARTIALLY_STORED',
  'The request failed after some files were stored; these stay stored: %s',
  400
)

/** A bucket-level call of a maintenance helper (lifecycle, CORS, sweep) failed. `%s` is the S3 operation. */
export const BucketCallError = createError<'FST_S3CHUNK_BUCKET_CALL', 502, [string]>(
  'FST_S3CHUNK_BUCKET_CALL',
  'The storage backend failed a bucket request (%s); see the log for details',
  502
)

/** Every byte of the memory budget is held by uploads that are all waiting for more; this one was failed so the others can go on. Retry later. */
export const ServerBusyError = createError<'FST_S3CHUNK_BUSY', 503, []>(
  'FST_S3CHUNK_BUSY',
  'The server has no memory for this upload right now; nothing was stored. Retry later',
  503
)

/** A direct multipart Complete named parts S3 does not have, out of order, or too small. `%s` says which. */
export const InvalidPartsError = createError<'FST_S3CHUNK_INVALID_PARTS', 400, [string]>(
  'FST_S3CHUNK_INVALID_PARTS',
  'The parts do not make a complete upload: %s',
  400
)

/** A direct upload was completed or aborted by another request meanwhile. */
export const UploadGoneError = createError<'FST_S3CHUNK_UPLOAD_GONE', 409, []>(
  'FST_S3CHUNK_UPLOAD_GONE',
  'That upload no longer exists: it was completed or aborted meanwhile',
  409
)

/** s3File()/s3Files() was called in a scope where the plugin is not registered. */
export const NotRegisteredError = createError<'FST_S3CHUNK_NOT_REGISTERED', 500, []>(
  'FST_S3CHUNK_NOT_REGISTERED',
  'fastify-s3-chunk is not registered in this route\'s scope: register it in the scope (or an outer one) before its routes',
  500
)

/** The body was read before s3File()/s3Files() could stream it (@fastify/multipart's attachFieldsToBody). */
export const BodyAlreadyReadError = createError<'FST_S3CHUNK_BODY_ALREADY_READ', 500, []>(
  'FST_S3CHUNK_BODY_ALREADY_READ',
  'The multipart body was already read before s3File()/s3Files(): by request.file() or request.parts(), or by @fastify/multipart registered with attachFieldsToBody (which reads it into memory before the handler); read the body with s3File()/s3Files() only, and register @fastify/multipart without attachFieldsToBody (or let fastify-s3-chunk register it)',
  500
)

/** s3File()/s3Files() was called before Fastify parsed the request (an onRequest or preParsing hook). */
export const BodyNotParsedError = createError<'FST_S3CHUNK_BODY_NOT_PARSED', 500, []>(
  'FST_S3CHUNK_BODY_NOT_PARSED',
  's3File()/s3Files() was called before Fastify parsed the request (in an onRequest or preParsing hook): call it in the route handler, or in a preValidation or preHandler hook',
  500
)

/** The app aborted an upload in flight (the `signal` option); nothing was stored. */
export const UploadCancelledError = createError<'FST_S3CHUNK_CANCELLED', 499, []>(
  'FST_S3CHUNK_CANCELLED',
  'The upload was cancelled; nothing was stored',
  499
)

/** tus: a request without `Tus-Resumable: 1.0.0` (the version this server speaks, named in the answer's Tus-Version). */
export const TusVersionError = createError<'FST_S3CHUNK_TUS_VERSION', 412, []>(
  'FST_S3CHUNK_TUS_VERSION',
  'Unsupported tus version: send Tus-Resumable: 1.0.0',
  412
)

/** tus: no upload at that URL (never made, finished, terminated, or not the caller's). */
export const TusNotFoundError = createError<'FST_S3CHUNK_TUS_NOT_FOUND', 404, []>(
  'FST_S3CHUNK_TUS_NOT_FOUND',
  'No such upload',
  404
)

/** tus: the upload expired (Upload-Expires passed); its parts are removed by the stale-upload sweep. */
export const TusExpiredError = createError<'FST_S3CHUNK_TUS_EXPIRED', 410, []>(
  'FST_S3CHUNK_TUS_EXPIRED',
  'The upload expired',
  410
)

/** tus: the PATCH's Upload-Offset is not the upload's offset. `%d` is the upload's offset. */
export const TusOffsetMismatchError = createError<'FST_S3CHUNK_TUS_OFFSET_MISMATCH', 409, [number]>(
  'FST_S3CHUNK_TUS_OFFSET_MISMATCH',
  'Upload-Offset does not match the upload\'s offset (%d); ask with HEAD and resume from there',
  409
)

/** tus: another PATCH of the upload is in progress (on this instance or another); nothing of this one was kept. */
export const TusLockedError = createError<'FST_S3CHUNK_TUS_LOCKED', 409, []>(
  'FST_S3CHUNK_TUS_LOCKED',
  'Another request is writing to this upload; retry once it ends (HEAD gives the offset)',
  409
)

/** tus: the PATCH's body does not match its Upload-Checksum; the upload stays at its previous offset. */
export const TusChecksumMismatchError = createError<'FST_S3CHUNK_TUS_CHECKSUM_MISMATCH', 460, []>(
  'FST_S3CHUNK_TUS_CHECKSUM_MISMATCH',
  'Checksum Mismatch: the upload stays at its previous offset',
  460
)

/** tus: a PATCH (or a creation with upload) whose body is not `application/offset+octet-stream`. */
export const TusContentTypeError = createError<'FST_S3CHUNK_TUS_CONTENT_TYPE', 415, []>(
  'FST_S3CHUNK_TUS_CONTENT_TYPE',
  'Send the bytes as Content-Type: application/offset+octet-stream',
  415
)

/** tus: more bytes than the upload's Upload-Length (or the server's Tus-Max-Size). `%d` is the bound. */
export const TusTooLargeError = createError<'FST_S3CHUNK_TUS_TOO_LARGE', 413, [number]>(
  'FST_S3CHUNK_TUS_TOO_LARGE',
  'The upload would exceed %d bytes; nothing of this request was kept',
  413
)
