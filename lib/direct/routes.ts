import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  type CompletedPart,
  type Part,
  type S3Client
} from '@aws-sdk/client-s3'
import { createPresignedPost } from '@aws-sdk/s3-presigned-post'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { checkDeclaredType } from '../content-types.js'
import { BadRequestError, ForbiddenError, InvalidPartsError, KeyExistsError, UnauthorizedError, UploadGoneError, UploadHookError, UploadRejectedError } from '../errors.js'
import { MAX_PARTS, type DirectConfig, type DirectUser, type ObjectParams, type S3ChunkConfig } from '../options.js'
import { MAX_ORIGINAL_NAME_BYTES, sanitiseFilename } from '../keys.js'
import { objectParamsFor } from '../object-params.js'
import { etagParts, etagValue, objectUrl } from '../s3-client.js'
import type { S3File } from '../types.js'
import { describeS3Error, isStorageFailure, s3Call, storageFailure } from '../upload/s3-failure.js'
import { abortMultipartUpload, completedDespiteFailure, isNoSuchUpload } from '../upload/multipart-calls.js'
import { CompletionClaims } from './claim.js'
import { assertOwnKey, assertOwnStagingKey, isWellFormed, makeDirectKey, stagingKeyOf } from './keys.js'
import { ORIGINAL_NAME_META, decodedFields, directMetadata, keptMetadata, metadataFromQuery, safeDecode } from './metadata.js'
import { UploadHandles, assertInPlan, declaredPlan, partLength } from './part-plan.js'
import { copyChecked } from './promote.js'
import { PartSigner, type PartToSign } from './signing.js'
import { checkObject, deleteObject, httpStatus, type CheckedObject } from './verify.js'

/** As parsed: a name given twice arrives as an array, so each is checked before use. */
interface Query { filename?: unknown, type?: unknown, key?: unknown, partNumbers?: unknown, [field: string]: unknown }

/**
 * The direct-upload routes, speaking the Companion S3 API so @uppy/aws-s3
 * works against them unchanged. Stateless: every call re-derives what it needs
 * from the request and S3, so any instance can serve any step of an upload.
 * Every route authorises the caller first; every key the client sends back
 * must lie under the caller's own prefix, and every uploadId must belong to
 * that key (checked with S3), or the call is refused with 403.
 */
export async function directRoutes (
  fastify: FastifyInstance,
  options: { config: S3ChunkConfig, direct: DirectConfig, client: S3Client, onStored: (file: S3File, request: FastifyRequest) => Promise<void> }
): Promise<void> {
  const { config, direct, client, onStored } = options
  const bucket = config.bucket
  const signer = new PartSigner(config.s3, bucket, client)
  const handles = new UploadHandles(config, direct)
  const claims = new CompletionClaims(client, bucket, config.keyPrefix)

  async function userOf (request: FastifyRequest): Promise<DirectUser> {
    const user: DirectUser | null | undefined | false = await direct.authorize(request)
    // Any falsy answer (null, undefined, false, '', 0) means "not signed in".
    if (user === null || user === undefined || user === false || !(user as unknown)) throw new UnauthorizedError()
    if (typeof user.userId !== 'string' || user.userId === '') throw new Error('direct.authorize() must return { userId: string } or null')
    return user
  }

  /** The declared filename and type, parsed: 400 for anything malformed, 415 for a type not allowed. */
  function declared (filename: unknown, type: unknown): { filename: string, type: string } {
    if (typeof filename !== 'string' || filename === '') throw new BadRequestError('filename is required')
    if (Buffer.byteLength(filename) > MAX_ORIGINAL_NAME_BYTES) throw new BadRequestError(`filename is longer than ${MAX_ORIGINAL_NAME_BYTES} bytes`)
    if (!isWellFormed(filename)) throw new BadRequestError('filename is not well-formed Unicode')
    const parsed = checkDeclaredType(type === '' ? undefined : type, config.allowedTypes)
    return { filename, type: parsed ?? 'application/octet-stream' }
  }

  /** A plain object of Uppy metadata, or 400. */
  function metadataObject (value: unknown): Record<string, unknown> {
    if (value === undefined || value === null) return {}
    if (typeof value !== 'object' || Array.isArray(value)) throw new BadRequestError('metadata must be an object')
    return value as Record<string, unknown>
  }

  const aclFields: Record<string, string> = direct.acl !== undefined ? { acl: direct.acl } : {}

  /** The S3File of a checked object at `key`. */
  function describe (key: string, checked: CheckedObject, metadata: Record<string, string>, copied: { etag?: string | undefined, versionId?: string | undefined, parts: number }): S3File {
    const encodedName = metadata[ORIGINAL_NAME_META]
    const etag = copied.etag ?? checked.etag
    const file: S3File = {
      fieldName: 'file',
      originalName: encodedName !== undefined ? safeDecode(encodedName) : key.split('/').pop() ?? key,
      key,
      bucket,
      size: checked.size,
      contentType: checked.type,
      etag: etagValue(etag),
      location: objectUrl(config.s3, bucket, key),
      parts: copied.parts
    }
    const versionId = copied.versionId ?? checked.versionId
    if (versionId !== undefined) file.versionId = versionId
    const fields = decodedFields(direct, metadata)
    if (Object.keys(fields).length > 0) file.metadata = fields
    return file
  }

  /**
   * True when an object is at `key` (a store that ignores If-None-Match on copies is caught here).
   * A 403 does not tell: AWS answers it for a key with no object to credentials without
   * s3:ListBucket (the IAM policy the README gives: every completion was 502, found in review),
   * and any store for a key these credentials may write but not read. A listing then tells
   * (a key that is there is listed) — and when it is refused too (no s3:ListBucket) the copy's
   * own If-None-Match decides, which AWS enforces (a 403 taken for "nothing there" let the copy
   * replace an object on MinIO, which ignores it: found in review).
   */
  async function exists (key: string): Promise<boolean> {
    try {
      await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))
      return true
    } catch (error) {
      const status = httpStatus(error)
      if (status === 404) return false
      if (status !== 403) throw storageFailure(describeS3Error('HeadObject', error))
    }
    try {
      const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: key, MaxKeys: 1 }))
      return listed.Contents?.[0]?.Key === key
    } catch (error) {
      if (httpStatus(error) === 403) return false
      throw storageFailure(describeS3Error('ListObjectsV2', error))
    }
  }

  /** One page of an upload's parts; refuses (403) an uploadId that is not an upload of this key (S3 knows; nothing is kept here). */
  async function listParts (key: string, uploadId: string, options: { marker?: string, maxParts?: number } = {}): Promise<{ parts: Part[], next?: string }> {
    try {
      const listed = await client.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumberMarker: options.marker, MaxParts: options.maxParts }))
      return { parts: listed.Parts ?? [], ...(listed.IsTruncated === true ? { next: listed.NextPartNumberMarker } : {}) }
    } catch (error) {
      if (isNoSuchUpload(error)) throw new ForbiddenError('that upload does not belong to that key')
      throw storageFailure(describeS3Error('ListParts', error))
    }
  }

  /** The ownership check alone: one request for one part, whatever the upload's size. */
  async function assertUploadOfKey (key: string, uploadId: string): Promise<void> {
    await listParts(key, uploadId, { maxParts: 1 })
  }

  /** Every part so far (10 pages of 1,000 at most: S3's 10,000-part limit). */
  async function partsOf (key: string, uploadId: string): Promise<Part[]> {
    const parts: Part[] = []
    let marker: string | undefined
    for (let page = 0; page < 10; page++) {
      const listed = await listParts(key, uploadId, marker === undefined ? {} : { marker })
      parts.push(...listed.parts)
      if (listed.next === undefined) break
      marker = listed.next
    }
    return parts
  }

  function partNumber (value: unknown): number {
    const number = Number(value)
    if (!isPartNumber(number)) throw new BadRequestError(`part numbers are integers from 1 to ${MAX_PARTS}`)
    return number
  }

  /**
   * Fires onUploadComplete. When it throws, the object is deleted so that
   * storage and the app's records agree (as for a streamed file), and the
   * client gets 500 FST_S3CHUNK_HOOK_FAILED.
   */
  /**
   * The rule's object settings for a direct upload's final object. SSE-C is
   * left out: the browser would need the customer key (use SSE-KMS or the
   * bucket's default encryption for direct uploads).
   */
  async function settingsFor (request: FastifyRequest, filename: string, declaredType: string | undefined, contentType: string, fields: Record<string, string>): Promise<ObjectParams> {
    const params = await objectParamsFor(config, { fieldName: 'file', originalName: filename, filename: sanitiseFilename(filename), declaredType, contentType, fields, request }, undefined)
    const { SSECustomerAlgorithm: _a, SSECustomerKey: _k, SSECustomerKeyMD5: _m, ...rest } = params
    return rest
  }

  function originalNameOf (checked: CheckedObject): string {
    const encoded = checked.metadata[ORIGINAL_NAME_META]
    return encoded !== undefined ? safeDecode(encoded) : checked.key.split('/').pop() ?? checked.key
  }

  async function stored (file: S3File, request: FastifyRequest): Promise<S3File> {
    try {
      await onStored(file, request)
    } catch (error) {
      if (error instanceof UploadHookError) throw error
      if (config.overwrite && file.versionId === undefined) {
        // Deleting would lose the object this one replaced as well.
        request.log.error({ key: file.key, err: error }, 'fastify-s3-chunk: onUploadComplete threw; the direct upload\'s object stays stored (overwrite is on)')
        throw new UploadHookError()
      }
      request.log.error({ key: file.key, err: error }, 'fastify-s3-chunk: onUploadComplete threw; the direct upload\'s object is deleted')
      // That exact version: on a versioned bucket an older object at the key comes back.
      await deleteObject(client, bucket, file.key, file.versionId).catch((failure: unknown) => {
        request.log.error({ key: file.key, err: failure }, 'fastify-s3-chunk: the object of a failed onUploadComplete could not be deleted')
      })
      throw new UploadHookError()
    }
    return file
  }

  // Presigned POST (SigV4): the policy pins the bucket, the exact staging key, the
  // size range, the type, the metadata, the ACL (when one is set) and the expiry.
  // It can only ever write to staging: /s3/complete checks the staged object and
  // copies it to its final key, so posting the policy again changes nothing recorded.
  fastify.get<{ Querystring: Query }>('/s3/params', async (request) => {
    const user = await userOf(request)
    const { filename, type } = declared(request.query.filename, request.query.type)
    const metadata = directMetadata(direct, filename, metadataFromQuery(request.query))
    const final = await makeDirectKey(config, direct, user, filename, type, request)
    const key = stagingKeyOf(config, final)
    const metaFields = Object.fromEntries(Object.entries(metadata).map(([name, value]) => [`x-amz-meta-${name}`, value]))
    const fields: Record<string, string> = { 'Content-Type': type, ...aclFields, ...metaFields }
    const post = await s3Call('PresignPost', async () => await createPresignedPost(client, {
      Bucket: bucket,
      Key: key,
      Fields: fields,
      Conditions: [
        { bucket },
        ['eq', '$key', key],
        ['content-length-range', 0, config.maxFileSize],
        ['eq', '$Content-Type', type],
        ...(direct.acl !== undefined ? [{ acl: direct.acl }] : []),
        ...Object.entries(metaFields).map(([name, value]) => ['eq', `$${name}`, value] as ['eq', string, string])
      ],
      Expires: direct.expiresIn
    }))
    // `key` (also fields.key, which Uppy hands back as response.body.key) is the staging key: send it to /s3/complete.
    return { method: 'POST', url: post.url, fields: post.fields, expires: direct.expiresIn, key }
  })

  // A POST upload is done: check the staged object, copy it to its final key
  // (conditional, with the checked type), delete the staged one, then record it.
  fastify.post<{ Body: { key?: unknown } | undefined }>('/s3/complete', async (request) => {
    const user = await userOf(request)
    const { staging, final } = assertOwnStagingKey(config, user, request.body?.key)
    // The same upload completed twice at once (a double click, a script) was checked, promoted
    // and recorded twice: one call claims it, the others get 409 — and a call that claims it
    // only after another finished finds no staged object (checked after the claim): 422.
    const claim = await claims.claim(staging, request.log)
    if (claim === null) throw new UploadGoneError()
    // The claim goes once the staged object is gone (promoted, or refused and deleted: nothing is
    // left to promote) or the promotion failed (the staged object stays for a retry). It stays
    // only beside a promoted upload whose staged object could not be deleted: the sweep and the
    // lifecycle rule remove both.
    let keepClaim = false
    try {
      const checked = await checkObject(client, config, staging, request.log)
      const { answer, stagedLeft } = await promote(request, staging, final, checked)
      keepClaim = stagedLeft
      return answer
    } finally {
      if (keepClaim) claim.stop()
      else await claim.release()
    }
  })

  /** Copies a checked staged upload to its final key, deletes the staged one, then records it; `stagedLeft`: that delete failed. */
  async function promote (request: FastifyRequest, staging: string, final: string, checked: CheckedObject): Promise<{ answer: { location: string, key: string, file: S3File }, stagedLeft: boolean }> {
    const conditional = !config.overwrite
    // The staged version checked (a versioned bucket keeps a plain delete's bytes behind a marker).
    const refuse = async (error: Error): Promise<never> => {
      await deleteObject(client, bucket, staging, checked.versionId, { log: request.log })
      throw error
    }
    if (conditional && await exists(final)) await refuse(new KeyExistsError(final))
    const metadata = keptMetadata(direct, checked.metadata)
    const objectParams = await settingsFor(request, originalNameOf(checked), checked.storedType, checked.type, decodedFields(direct, checked.metadata))
    let copied
    try {
      copied = await copyChecked({
        bucket,
        source: staging,
        sourceEtag: checked.etag,
        size: checked.size,
        key: final,
        contentType: checked.type,
        metadata,
        acl: direct.acl,
        objectParams,
        ifNoneMatch: conditional
      }, { client, retry: config.retry, log: request.log })
    } catch (error) {
      if (!isStorageFailure(error) || error.s3.status !== 412) throw error
      // A condition failed: the final key was taken meanwhile, or the staged object was replaced after its check.
      copied = await refuse(await exists(final) ? new KeyExistsError(final) : new UploadRejectedError('it changed while it was checked; it was deleted'))
    }
    // Promoted: a staged copy left behind (a failed delete) is reclaimed by the sweep or the lifecycle rule.
    const stagedLeft = await deleteObject(client, bucket, staging, checked.versionId, { log: request.log }).then(() => false, (error: unknown) => {
      request.log.warn({ key: staging, err: error }, 'fastify-s3-chunk: a promoted upload\'s staged object could not be deleted')
      return true
    })
    const file = describe(final, checked, metadata, copied)
    return { answer: { location: file.location, key: file.key, file: await stored(file, request) }, stagedLeft }
  }

  fastify.post<{ Body: { filename?: unknown, type?: unknown, size?: unknown, partSize?: unknown, metadata?: unknown } | undefined }>('/s3/multipart', async (request) => {
    const user = await userOf(request)
    const metadata = metadataObject(request.body?.metadata)
    const { filename, type } = declared(request.body?.filename ?? metadata.name, request.body?.type ?? metadata.type)
    const objectMetadata = directMetadata(direct, filename, metadata)
    // Top-level, or in Uppy's metadata (set from file.size on the page: the README shows how).
    const plan = declaredPlan(config, direct, { size: request.body?.size ?? metadata.size, partSize: request.body?.partSize ?? metadata.partSize })
    const key = await makeDirectKey(config, direct, user, filename, type, request)
    const objectParams = await settingsFor(request, filename, type, type, decodedFields(direct, objectMetadata))
    const created = await s3Call('CreateMultipartUpload', () => client.send(new CreateMultipartUploadCommand({
      Bucket: bucket,
      Key: key,
      ...objectParams,
      ContentType: type,
      Metadata: { ...objectParams.Metadata, ...objectMetadata },
      ...(direct.acl !== undefined ? { ACL: direct.acl } : {})
    })))
    return { key, uploadId: handles.issue(key, created.UploadId ?? '', plan) }
  })

  // S3 upload ids can be long (MinIO's are ~130 characters) and Fastify refuses
  // parametric segments over its maxParamLength (100) with 414: these routes take
  // the rest of the path as a wildcard and split it themselves.
  fastify.get<{ Params: { '*': string }, Querystring: Query }>('/s3/multipart/*', async (request) => {
    const user = await userOf(request)
    const key = assertOwnKey(config, user, request.query.key)
    const [uploadId, action, handle] = multipartPath(request.params['*'])
    if (action === undefined) return await partsOf(key, uploadId)
    // Each part URL signs its exact length from the plan sealed into the upload id.
    const { plan } = handles.open(key, handle)
    const signable = (number: number): PartToSign => {
      if (plan === undefined) return { number }
      assertInPlan(plan, number)
      return { number, contentLength: partLength(plan, number) }
    }
    if (action === 'batch') {
      const raw = request.query.partNumbers ?? ''
      if (typeof raw !== 'string') throw new BadRequestError('partNumbers is one comma-separated list (given more than once)')
      if (raw.length > direct.maxBatchParts * 6) throw new BadRequestError(`partNumbers lists 1 to ${direct.maxBatchParts} part numbers`)
      const numbers = raw.split(',').filter((n) => n !== '').map(partNumber)
      if (numbers.length === 0 || numbers.length > direct.maxBatchParts) throw new BadRequestError(`partNumbers lists 1 to ${direct.maxBatchParts} part numbers`)
      const parts = numbers.map(signable)
      await assertUploadOfKey(key, uploadId)
      return { presignedUrls: await signer.signMany(key, uploadId, parts, direct.expiresIn) }
    }
    const part = signable(partNumber(action))
    await assertUploadOfKey(key, uploadId)
    return { url: await signer.sign(key, uploadId, part, direct.expiresIn), expires: direct.expiresIn }
  })

  fastify.post<{ Params: { '*': string }, Querystring: Query, Body: { parts?: unknown } | undefined }>('/s3/multipart/*', async (request) => {
    const user = await userOf(request)
    const key = assertOwnKey(config, user, request.query.key)
    const [uploadId, action] = multipartPath(request.params['*'])
    if (action !== 'complete') throw new BadRequestError('POST /s3/multipart/<uploadId>/complete is the only POST here')
    const parts = completedParts(request.body?.parts)
    await assertUploadOfKey(key, uploadId)
    // The same Complete sent several times at once: one call claims it — a store may carry out
    // every one of them (versitygw answered all eight with 200), and each would be recorded.
    const claim = await claims.claim(`multipart ${uploadId}`, request.log)
    if (claim === null) throw new UploadGoneError()
    try {
      return await completeMultipart(request, key, uploadId, parts)
    } finally {
      await claim.release()
    }
  })

  /** Completes a direct multipart upload this call has claimed, checks its object, then records it. */
  async function completeMultipart (request: FastifyRequest, key: string, uploadId: string, parts: CompletedPart[]): Promise<{ location: string, key: string, file: S3File }> {
    const scope = { client, retry: config.retry, target: { bucket, key }, log: request.log }
    try {
      await client.send(new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: parts },
        ...(config.overwrite ? {} : { IfNoneMatch: '*' })
      }))
    } catch (error) {
      // S3 may have completed it with the answer lost: the object says so, and is
      // then checked like any other. Otherwise the upload stays for the client to retry.
      // (With If-None-Match, the SDK's retry of a Complete whose answer was lost meets 412.)
      // But S3's answer to this request's first attempt (a 4xx: NoSuchUpload, 412,
      // InvalidPart) says nothing of this request was carried out: the object there is
      // another request's — the same Complete sent twice at once, which must not be
      // recorded twice (onUploadComplete) — or another object.
      const info = describeS3Error('CompleteMultipartUpload', error)
      const { code, status } = info
      const attempts = (error as { $metadata?: { attempts?: number } }).$metadata?.attempts ?? 1
      const refusedAtOnce = attempts <= 1 && status !== undefined && status < 500
      if (refusedAtOnce || !await completedDespiteFailure(scope, uploadId, parts.map((part) => part.ETag))) {
        if (status !== 412) throw clientFault(code) ?? storageFailure(info)
        // The key is taken (a custom direct.key() made a name twice): this upload can never complete.
        await abortMultipartUpload(scope, uploadId)
        throw new KeyExistsError(key)
      }
      // Stored. An identical older object would match too: leave no upload open either way.
      await abortMultipartUpload(scope, uploadId)
    }
    // The server's own Complete made the final object: checked before it counts,
    // and given the type its bytes were checked against when that differs. The upload
    // is gone now (a retry of this call is refused), so the check's reads are retried.
    const checked = await checkObject(client, config, key, request.log, { retry: config.retry })
    const metadata = keptMetadata(direct, checked.metadata)
    let copied: { etag?: string | undefined, versionId?: string | undefined, parts: number } = { parts: etagParts(checked.etag) }
    if (checked.storedType !== checked.type) {
      // Rewritten in place (pinned to the checked ETag): S3 cannot change an object's type otherwise.
      const objectParams = await settingsFor(request, originalNameOf(checked), checked.storedType, checked.type, decodedFields(direct, checked.metadata))
      const rewritten = await copyChecked({
        bucket, source: key, sourceEtag: checked.etag, size: checked.size, key, contentType: checked.type, metadata, acl: direct.acl, objectParams, ifNoneMatch: false
      }, { client, retry: config.retry, log: request.log })
      copied = { ...rewritten, parts: rewritten.etag !== undefined ? etagParts(rewritten.etag) : rewritten.parts }
    }
    const file = describe(key, checked, metadata, copied)
    return { location: file.location, key, file: await stored(file, request) }
  }

  fastify.delete<{ Params: { '*': string }, Querystring: Query }>('/s3/multipart/*', async (request) => {
    const user = await userOf(request)
    const key = assertOwnKey(config, user, request.query.key)
    const [uploadId, action] = multipartPath(request.params['*'])
    if (action !== undefined) throw new BadRequestError('DELETE /s3/multipart/<uploadId> aborts an upload')
    await assertUploadOfKey(key, uploadId)
    await s3Call('AbortMultipartUpload', () => client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId })))
    return {}
  })
}

/** S3's upload id, the action and the id as the client sent it (the create route's handle) from `<uploadId>[/<action>]`. */
function multipartPath (rest: string): [string, string | undefined, string] {
  const segments = rest.split('/')
  const handle = segments[0] ?? ''
  if (handle === '' || segments.length > 2 || handle.length > 1024) throw new BadRequestError('expected /s3/multipart/<uploadId>[/<action>]')
  return [UploadHandles.uploadIdOf(handle), segments[1], handle]
}

/**
 * The client's fault, said safely: parts S3 does not have (a forged ETag, a
 * part never uploaded), out of order, or too small; an upload gone meanwhile.
 */
function clientFault (code: string | undefined): Error | undefined {
  switch (code) {
    case 'InvalidPart': return new InvalidPartsError('a part was never uploaded, or its ETag does not match')
    case 'InvalidPartOrder': return new InvalidPartsError('the parts are not in ascending order')
    case 'EntityTooSmall': return new InvalidPartsError('every part but the last must be at least 5 MiB')
    case 'NoSuchUpload': return new UploadGoneError()
    default: return undefined
  }
}

function isPartNumber (value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= MAX_PARTS
}

function completedParts (value: unknown): Array<{ PartNumber: number, ETag: string }> {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_PARTS) throw new BadRequestError('parts must list 1 to 10000 { PartNumber, ETag }')
  return value.map((part: unknown) => {
    const { PartNumber, ETag } = (part ?? {}) as { PartNumber?: unknown, ETag?: unknown }
    if (!isPartNumber(PartNumber) || typeof ETag !== 'string' || ETag === '') {
      throw new BadRequestError('each part needs a PartNumber (1-10000) and an ETag')
    }
    return { PartNumber, ETag }
  }).sort((a, b) => a.PartNumber - b.PartNumber)
}
