import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  ListPartsCommand,
  type Part,
  type S3Client
} from '@aws-sdk/client-s3'
import { createPresignedPost } from '@aws-sdk/s3-presigned-post'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { typeAllowed } from '../content-types.js'
import { BadRequestError, ForbiddenError, TypeNotAllowedError, UnauthorizedError } from '../errors.js'
import { MAX_PARTS, type DirectConfig, type DirectUser, type S3ChunkConfig } from '../options.js'
import { MAX_ORIGINAL_NAME_BYTES } from '../keys.js'
import type { S3File } from '../types.js'
import { describeS3Error, s3Call, storageFailure } from '../upload/s3-failure.js'
import { abortMultipartUpload, completedDespiteFailure, isNoSuchUpload } from '../upload/multipart-calls.js'
import { assertOwnKey, makeDirectKey } from './keys.js'
import { UploadHandles, assertInPlan, declaredPlan, partLength } from './part-plan.js'
import { PartSigner, type PartToSign } from './signing.js'
import { ORIGINAL_NAME_META, verifyUpload } from './verify.js'

interface Query { filename?: string, type?: string, key?: string, partNumbers?: string }

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

  async function userOf (request: FastifyRequest): Promise<DirectUser> {
    const user = await direct.authorize(request)
    if (user === null || user === undefined) throw new UnauthorizedError()
    if (typeof user.userId !== 'string' || user.userId === '') throw new Error('direct.authorize() must return { userId: string } or null')
    return user
  }

  function declared (filename: unknown, type: unknown): { filename: string, type: string } {
    if (typeof filename !== 'string' || filename === '') throw new BadRequestError('filename is required')
    if (Buffer.byteLength(filename) > MAX_ORIGINAL_NAME_BYTES) throw new BadRequestError(`filename is longer than ${MAX_ORIGINAL_NAME_BYTES} bytes`)
    const contentType = typeof type === 'string' && type !== '' ? type : 'application/octet-stream'
    if (!typeAllowed(contentType, config.allowedTypes)) throw new TypeNotAllowedError(contentType)
    return { filename, type: contentType }
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

  async function stored (file: S3File, request: FastifyRequest): Promise<S3File> {
    await onStored(file, request)
    return file
  }

  // Presigned POST (SigV4): the policy pins the bucket, the exact key, the size range, the type, the ACL and the expiry.
  fastify.get<{ Querystring: Query }>('/s3/params', async (request) => {
    const user = await userOf(request)
    const { filename, type } = declared(request.query.filename, request.query.type)
    const key = await makeDirectKey(config, direct, user, filename, type, request)
    const fields = {
      'Content-Type': type,
      acl: direct.acl,
      [`x-amz-meta-${ORIGINAL_NAME_META}`]: encodeURIComponent(filename)
    }
    const post = await s3Call('PresignPost', async () => await createPresignedPost(client, {
      Bucket: bucket,
      Key: key,
      Fields: fields,
      Conditions: [
        { bucket },
        ['eq', '$key', key],
        ['content-length-range', 0, config.maxFileSize],
        ['eq', '$Content-Type', type],
        { acl: direct.acl },
        ['eq', `$x-amz-meta-${ORIGINAL_NAME_META}`, fields[`x-amz-meta-${ORIGINAL_NAME_META}`]]
      ],
      Expires: direct.expiresIn
    }))
    return { method: 'POST', url: post.url, fields: post.fields, expires: direct.expiresIn, key }
  })

  // A POST upload is done: check the object, then it counts as stored.
  fastify.post<{ Body: { key?: unknown } | undefined }>('/s3/complete', async (request) => {
    const user = await userOf(request)
    const key = assertOwnKey(config, user, request.body?.key)
    const file = await verifyUpload(client, config, key, request.log)
    return { location: file.location, file: await stored(file, request) }
  })

  fastify.post<{ Body: { filename?: unknown, type?: unknown, size?: unknown, partSize?: unknown, metadata?: Record<string, unknown> } | undefined }>('/s3/multipart', async (request) => {
    const user = await userOf(request)
    const metadata = request.body?.metadata ?? {}
    const { filename, type } = declared(request.body?.filename ?? metadata.name, request.body?.type ?? metadata.type)
    // Top-level, or in Uppy's metadata (set from file.size on the page: the README shows how).
    const plan = declaredPlan(config, direct, { size: request.body?.size ?? metadata.size, partSize: request.body?.partSize ?? metadata.partSize })
    const key = await makeDirectKey(config, direct, user, filename, type, request)
    const created = await s3Call('CreateMultipartUpload', () => client.send(new CreateMultipartUploadCommand({
      Bucket: bucket,
      Key: key,
      ContentType: type,
      Metadata: { [ORIGINAL_NAME_META]: encodeURIComponent(filename) }
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
    try {
      await s3Call('CompleteMultipartUpload', () => client.send(new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: parts }
      })))
    } catch (error) {
      // S3 may have completed it with the answer lost: the object says so, and is
      // then checked like any other. Otherwise the upload stays for the client to retry.
      const scope = { client, retry: config.retry, target: { bucket, key }, log: request.log }
      if (!await completedDespiteFailure(scope, uploadId, parts.map((part) => part.ETag))) throw error
      // Stored. An identical older object would match too: leave no upload open either way.
      await abortMultipartUpload(scope, uploadId)
    }
    const file = await verifyUpload(client, config, key, request.log)
    return { location: file.location, key, file: await stored(file, request) }
  })

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
