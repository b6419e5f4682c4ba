// tus test helpers: a server with the tus endpoint on MinIO, raw tus requests, and tus-js-client uploads in Node.
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import type { FastifyInstance } from 'fastify'
import { request as httpRequest } from 'node:http'
import { connect as connectHttp2 } from 'node:http2'
import Fastify from 'fastify'
import s3Chunk from 'fastify-s3-chunk'
import * as tus from 'tus-js-client'
import type { Test } from 'tap'
import type { S3ChunkOptions } from 'fastify-s3-chunk'
import { startApp } from './app.ts'
import { testFaultProxy, type FaultProxy, type FaultRequest } from './fault-proxy.ts'
import type { S3Server } from './s3-server.ts'
import { listKeys, objectDigest, pendingUploads, pluginS3Options, sha256 } from './s3.ts'

export interface TusApp { app: FastifyInstance, url: string, endpoint: string }

/** A real server with `tus` enabled (at /files unless the options say otherwise). */
export async function startTus (t: { teardown: (fn: () => unknown) => void }, server: S3Server, bucket: string, options: Partial<S3ChunkOptions> = {}): Promise<TusApp> {
  const { app, url } = await startApp(t, server, { bucket, tus: {}, ...options })
  const prefix = options.tus?.prefix ?? '/files'
  return { app, url, endpoint: `${url}${prefix}` }
}

/** startTus with the plugin's S3 calls going through a fault proxy (its rules set by the test). */
export async function startTusBehindProxy (t: { teardown: (fn: () => unknown) => void }, server: S3Server, bucket: string, options: Partial<S3ChunkOptions> = {}): Promise<TusApp & { proxy: FaultProxy }> {
  const proxy = await testFaultProxy(t, server.endpoint)
  return { ...await startTus(t, server, bucket, { ...options, s3: { ...pluginS3Options(server), ...options.s3, endpoint: proxy.endpoint } }), proxy }
}

/** A real HTTP/2 (cleartext) server with the tus endpoint at /files, inline mode; returns its base URL. */
export async function startHttp2Tus (t: { teardown: (fn: () => unknown) => void }, server: S3Server, bucket: string, options: Partial<S3ChunkOptions> = {}): Promise<string> {
  const app = Fastify({ http2: true })
  await app.register(s3Chunk, { s3: pluginS3Options(server), bucket, mode: 'inline', tus: { prefix: '/files' }, ...options })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { await app.close() })
  return `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
}

/** One tus request over its own HTTP/2 session: no Content-Length unless given. */
export async function h2 (url: string, method: string, path: string, headers: Record<string, string>, body?: Uint8Array): Promise<{ status: number, headers: Record<string, unknown> }> {
  const session = connectHttp2(url)
  try {
    return await new Promise((resolve, reject) => {
      const request = session.request({ ':method': method, ':path': path, 'tus-resumable': '1.0.0', ...headers })
      let answer = { status: 0, headers: {} as Record<string, unknown> }
      request.on('response', (head) => { answer = { status: Number(head[':status']), headers: head } })
      request.on('data', () => {})
      request.on('end', () => { resolve(answer) })
      request.on('error', reject)
      request.end(body)
    })
  } finally {
    session.close()
  }
}

/** One raw request to the endpoint, Tus-Resumable sent unless given as null. */
export async function tusRequest (url: string, method: string, headers: Record<string, string | null> = {}, body?: Uint8Array): Promise<Response> {
  const sent: Record<string, string> = { 'tus-resumable': '1.0.0' }
  for (const [name, value] of Object.entries(headers)) {
    if (value === null) delete sent[name.toLowerCase()]
    else sent[name.toLowerCase()] = value
  }
  return await fetch(url, { method, headers: sent, ...(body !== undefined ? { body } : {}) })
}

/** Creates an upload; returns its URL. */
export async function createUpload (endpoint: string, length: number | null, headers: Record<string, string | null> = {}): Promise<string> {
  const response = await tusRequest(endpoint, 'POST', { ...(length === null ? { 'upload-defer-length': '1' } : { 'upload-length': String(length) }), ...headers })
  if (response.status !== 201) throw new Error(`create answered ${response.status}: ${await response.text()}`)
  return response.headers.get('location') as string
}

export async function patchUpload (url: string, offset: number, body: Uint8Array, headers: Record<string, string | null> = {}): Promise<Response> {
  return await tusRequest(url, 'PATCH', { 'content-type': 'application/offset+octet-stream', 'upload-offset': String(offset), ...headers }, body)
}

export function metadataHeader (fields: Record<string, string>): string {
  return Object.entries(fields).map(([key, value]) => `${key} ${Buffer.from(value).toString('base64')}`).join(',')
}

/** Objects under the tus prefix (state and tail objects). */
export async function tusLeftovers (client: S3Client, bucket: string): Promise<string[]> {
  return (await listKeys(client, bucket)).filter((key) => key.split('/').includes('.tus'))
}

/** After a test: no multipart upload open and no state or tail object left. */
export async function expectClean (t: Pick<Test, 'same'>, client: S3Client, bucket: string): Promise<void> {
  t.same(await pendingUploads(client, bucket), [], 'no multipart upload left open')
  t.same(await tusLeftovers(client, bucket), [], 'no tus state or tail object left')
}

/** After an upload of `data`: exactly one object, byte-identical, and nothing else left (expectClean). */
export async function expectOnlyObject (t: Pick<Test, 'same' | 'equal'>, client: S3Client, bucket: string, data: Uint8Array): Promise<void> {
  const keys = await listKeys(client, bucket)
  t.equal(keys.length, 1, 'one object')
  t.equal((await objectDigest(client, bucket, keys[0] as string)).sha256, sha256(data), 'byte-identical')
  await expectClean(t, client, bucket)
}

/** tus-js-client in Node: uploads `data`, resolving with the upload URL once done. */
export async function clientUpload (endpoint: string, data: Buffer, options: Partial<tus.UploadOptions> = {}): Promise<string> {
  return await new Promise((resolve, reject) => {
    const upload = new tus.Upload(data, {
      endpoint,
      retryDelays: [],
      metadata: { filename: 'file.bin', filetype: 'application/octet-stream' },
      ...options,
      onError: (error) => { reject(error) },
      onSuccess: () => { resolve(upload.url as string) }
    })
    upload.start()
  })
}

/** Waits (bounded) until no request holds the upload at `url` (its state object carries no lease), then returns its offset; null when it has no state. */
export async function settledOffset (client: S3Client, bucket: string, url: string, keyPrefix = ''): Promise<number | null> {
  const id = (url.split('/').pop() ?? '').split('.')[0] as string
  const key = `${keyPrefix === '' ? '' : `${keyPrefix}/`}.tus/${id}`
  for (let round = 0; round < 200; round++) {
    try {
      const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
      const state = JSON.parse(await answer.Body?.transformToString() ?? '{}') as { offset: number, lease?: unknown }
      if (state.lease === undefined) return state.offset
    } catch (error) {
      if ((error as { name?: string }).name === 'NoSuchKey') return null
      throw error
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`upload ${id} still held after 10 s`)
}

/** A request a fault proxy sees for a tus state object (not a tail). */
export function isTusState (request: FaultRequest): boolean {
  return request.path.includes('/.tus/') && !request.path.includes('.tail.')
}

/**
 * A PATCH whose body comes in two goes: `firstBytes` of it now, the rest after `restAfterMs` —
 * long enough for a test to let its hold lapse and another request take the upload meanwhile.
 */
export async function slowPatch (url: string, offset: number, body: Uint8Array, firstBytes: number, restAfterMs: number): Promise<{ status: number, text: string }> {
  return await new Promise((resolve, reject) => {
    const request = httpRequest(url, { method: 'PATCH', headers: { 'tus-resumable': '1.0.0', 'content-type': 'application/offset+octet-stream', 'upload-offset': String(offset), 'content-length': String(body.byteLength) } }, (response) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { text += chunk })
      response.on('end', () => { resolve({ status: response.statusCode ?? 0, text }) })
    })
    request.on('error', reject)
    request.write(body.subarray(0, firstBytes))
    setTimeout(() => { request.end(body.subarray(firstBytes)) }, restAfterMs).unref()
  })
}
