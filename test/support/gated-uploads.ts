// Many multipart uploads made to overlap as much as one process can: every
// request's head is sent first and its route left waiting for the body; only
// once all are connected are the bodies written, in one loop, so the server
// meets every file's part header within a few milliseconds.
import { request as httpRequest } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { boundary, multipartChunks } from './multipart.ts'

export interface GatedAnswer {
  status: number
  body: string
  json: () => any
}

export interface GatedFile {
  filename: string
  data: Uint8Array
  contentType?: string
}

/** POSTs each file to `url` (one connection each), bodies released together; answers in input order. */
export async function gatedUploads (url: string, files: GatedFile[], options: { gateMs?: number, timeoutMs?: number } = {}): Promise<GatedAnswer[]> {
  const timeoutMs = options.timeoutMs ?? 60_000
  const pending = files.map((file) => {
    const separator = boundary()
    const body = Buffer.concat(multipartChunks([{ name: 'file', filename: file.filename, contentType: file.contentType ?? 'application/octet-stream', data: file.data }], separator))
    const req = httpRequest(url, {
      method: 'POST',
      agent: false,
      headers: { 'content-type': `multipart/form-data; boundary=${separator}`, 'content-length': String(body.byteLength) }
    })
    const answer = new Promise<GatedAnswer>((resolve, reject) => {
      const timer = setTimeout(() => { req.destroy(new Error(`no answer within ${timeoutMs} ms`)) }, timeoutMs)
      req.on('response', (res) => {
        const parts: Buffer[] = []
        res.on('data', (chunk: Buffer) => parts.push(chunk))
        res.on('end', () => {
          clearTimeout(timer)
          const text = Buffer.concat(parts).toString('utf8')
          resolve({ status: res.statusCode ?? 0, body: text, json: () => JSON.parse(text) })
        })
      })
      req.on('error', (error) => { clearTimeout(timer); reject(error) })
    })
    req.flushHeaders()
    return { body, req, answer }
  })
  // Let every request head reach the server and its handler start waiting for the file.
  await sleep(options.gateMs ?? 1000)
  for (const upload of pending) upload.req.end(upload.body)
  return await Promise.all(pending.map(async (upload) => await upload.answer))
}
