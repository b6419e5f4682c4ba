// What the direct-mode attack tests share: a real server on 127.0.0.1:0 with
// the plugin's direct routes, a user per `x-user` header (percent-encoded, so
// any userId can be tried), and a browser-like POST to S3.
import Fastify, { type FastifyInstance } from 'fastify'
import s3Chunk, { type S3ChunkOptions, type S3File } from 'fastify-s3-chunk'
import type { S3Server } from '../support/s3-server.ts'
import { pluginS3Options } from '../support/s3.ts'

export const MiB = 1024 * 1024

export interface Direct { app: FastifyInstance, url: string, stored: S3File[] }

type DirectOptions = Partial<NonNullable<S3ChunkOptions['direct']>>

/** A real server on port 0 with the direct routes (user from the `x-user` header unless `direct.authorize` says otherwise); `setup` adds routes before it listens. */
export async function startDirect (t: { teardown: (fn: () => unknown) => void }, server: S3Server, bucket: string, extra: Partial<S3ChunkOptions> = {}, direct: DirectOptions = {}, setup?: (app: FastifyInstance) => void): Promise<Direct> {
  const stored: S3File[] = []
  const app = Fastify()
  await app.register(s3Chunk, {
    bucket,
    keyPrefix: 'media',
    mode: 'inline',
    s3: pluginS3Options(server),
    maxFileSize: 20 * MiB,
    onUploadComplete: (file) => { stored.push(file) },
    direct: {
      authorize: (request) => {
        const header = request.headers['x-user']
        return typeof header === 'string' ? { userId: decodeURIComponent(header) } : null
      },
      ...direct
    },
    ...extra
  })
  setup?.(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const address = app.server.address()
  return { app, url: `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`, stored }
}

/** A JSON call of a direct route as `user` (null: no credentials). */
export async function api (url: string, user: string | null, method = 'GET', body?: unknown): Promise<{ status: number, json: any }> {
  const headers: Record<string, string> = {}
  if (user !== null) headers['x-user'] = encodeURIComponent(user)
  if (body !== undefined) headers['content-type'] = 'application/json'
  const response = await fetch(url, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) })
  const text = await response.text()
  let json: unknown = null
  try { json = text === '' ? null : JSON.parse(text) } catch { json = text }
  return { status: response.status, json }
}

/**
 * A direct multipart upload of `data` begun as `user` and its parts (5 MiB each, the last
 * shorter) sent to S3 with their presigned URLs: what `/complete` needs (`q`: the key's query).
 */
export async function multipartSent (url: string, user: string, filename: string, data: Uint8Array): Promise<{ key: string, uploadId: string, q: string, parts: Array<{ PartNumber: number, ETag: string | null }> }> {
  const created = await api(`${url}/s3/multipart`, user, 'POST', { filename, type: 'application/octet-stream', size: data.byteLength })
  const { key, uploadId } = created.json as { key: string, uploadId: string }
  const q = `key=${encodeURIComponent(key)}`
  const numbers = Array.from({ length: Math.max(1, Math.ceil(data.byteLength / (5 * MiB))) }, (_, i) => i + 1)
  const signed = (await api(`${url}/s3/multipart/${encodeURIComponent(uploadId)}/batch?${q}&partNumbers=${numbers.join(',')}`, user)).json.presignedUrls as Record<string, string>
  const parts: Array<{ PartNumber: number, ETag: string | null }> = []
  for (const number of numbers) {
    const start = (number - 1) * 5 * MiB
    const response = await fetch(signed[String(number)] as string, { method: 'PUT', body: data.subarray(start, Math.min(start + 5 * MiB, data.byteLength)) })
    parts.push({ PartNumber: number, ETag: response.headers.get('etag') })
  }
  return { key, uploadId, q, parts }
}

export interface PostParams { url: string, fields: Record<string, string>, key: string }

/** `/s3/params` for a file, as `@uppy/aws-s3` asks for it. */
export async function params (url: string, user: string, filename: string, type: string, metadata: Record<string, string> = {}): Promise<{ status: number, json: any }> {
  const query = new URLSearchParams({ filename, type })
  for (const [name, value] of Object.entries(metadata)) query.set(`metadata[${name}]`, value)
  return await api(`${url}/s3/params?${query.toString()}`, user)
}

/** Posts a file to S3 with a presigned POST, as a browser form would. */
export async function postToS3 (post: { url: string, fields: Record<string, string> }, data: Uint8Array, overrides: Record<string, string> = {}): Promise<{ status: number, body: string }> {
  const form = new FormData()
  for (const [name, value] of Object.entries({ ...post.fields, ...overrides })) form.append(name, value)
  form.append('file', new Blob([data]), 'upload.bin')
  const response = await fetch(post.url, { method: 'POST', body: form })
  return { status: response.status, body: await response.text() }
}

/** The final key a staging key is promoted to. */
export function finalOf (stagingKey: string): string {
  return stagingKey.replace('/.staging/', '/')
}

/** A PNG whose bytes also hold a page: sniffed as PNG, rendered as HTML if served as HTML. */
export function polyglot (png: Uint8Array, marker: string): Buffer {
  const page = `<html><head><title>${marker}</title></head><body><script>document.title = '${marker}'; window.${marker} = true</script></body></html>`
  return Buffer.concat([png, Buffer.from(page)])
}
