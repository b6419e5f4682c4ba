// Builds multipart/form-data bodies by hand, so tests control every byte
// (hostile filenames, truncation, disconnects) and can stream large files.
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { randomBytes } from 'node:crypto'

export type FormPart =
  | { name: string, value: string }
  /** `contentType: null` sends no Content-Type line (as Python requests does for a file). */
  | { name: string, filename: string, contentType?: string | null, data: Uint8Array }

export function boundary (): string {
  return `----fastify-s3-chunk-${randomBytes(8).toString('hex')}`
}

/** The parts of a multipart body, in order, as buffers (file data is not copied). */
export function multipartChunks (parts: FormPart[], separator: string): Uint8Array[] {
  const chunks: Uint8Array[] = []
  for (const part of parts) {
    if ('filename' in part) {
      chunks.push(Buffer.from(
        `--${separator}\r\nContent-Disposition: form-data; name="${part.name}"; filename="${part.filename.replace(/"/g, '%22')}"\r\n` +
        (part.contentType === null ? '\r\n' : `Content-Type: ${part.contentType ?? 'application/octet-stream'}\r\n\r\n`), 'utf8'))
      chunks.push(part.data)
      chunks.push(Buffer.from('\r\n'))
    } else {
      chunks.push(Buffer.from(`--${separator}\r\nContent-Disposition: form-data; name="${part.name}"\r\n\r\n${part.value}\r\n`, 'utf8'))
    }
  }
  chunks.push(Buffer.from(`--${separator}--\r\n`))
  return chunks
}

export interface RawResponse {
  status: number
  headers: IncomingMessage['headers']
  body: string
  json: () => any
}

/** POSTs a multipart body, writing `chunks` in order; resolves with the whole response. */
export async function postMultipart (url: string, parts: FormPart[], options: { headers?: Record<string, string> } = {}): Promise<RawResponse> {
  const separator = boundary()
  const chunks = multipartChunks(parts, separator)
  const length = chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0)
  return await postRaw(url, chunks, {
    'content-type': `multipart/form-data; boundary=${separator}`,
    'content-length': String(length),
    ...options.headers
  })
}

export async function postRaw (url: string, chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>, headers: Record<string, string>, method = 'POST'): Promise<RawResponse> {
  return await sendRequest(url, { method, headers, chunks })
}

export interface SendOptions {
  method?: string
  headers?: Record<string, string>
  /** Written in order; an async iterable can hold the body back part-way (the request stays in flight). */
  chunks?: Iterable<Uint8Array> | AsyncIterable<Uint8Array>
  /** Runs after every chunk is written, before the request is ended. */
  beforeEnd?: () => Promise<void>
}

/**
 * One HTTP request on its own connection, writing `chunks` in order. It keeps
 * the response when the server answers (and closes) before the whole body was
 * written: it stops writing then, and ignores the write errors that follow.
 */
export async function sendRequest (url: string, options: SendOptions = {}): Promise<RawResponse> {
  const { method = 'POST', headers = {}, chunks = [], beforeEnd } = options
  return await new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers, agent: false })
    let responded = false
    const timer = setTimeout(() => { req.destroy(new Error(`${method} ${url}: no response within 30 s`)) }, 30_000)
    req.on('response', (res: IncomingMessage) => {
      responded = true
      const body: Buffer[] = []
      res.on('data', (chunk: Buffer) => body.push(chunk))
      res.on('end', () => {
        clearTimeout(timer)
        req.destroy()
        const text = Buffer.concat(body).toString('utf8')
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, json: () => JSON.parse(text) })
      })
      res.on('error', (error) => { clearTimeout(timer); reject(error) })
    })
    req.on('error', (error) => {
      if (responded) return
      clearTimeout(timer)
      reject(error)
    })
    void (async () => {
      for await (const chunk of chunks) {
        if (responded || req.destroyed) return
        if (!req.write(chunk)) {
          // Both listeners go once either fires: a 'close' listener left per chunk warned of a leak.
          await new Promise<void>((resolve) => {
            const done = (): void => { req.off('drain', done); req.off('close', done); resolve() }
            req.on('drain', done)
            req.on('close', done)
          })
        }
      }
      if (beforeEnd !== undefined) await beforeEnd()
      if (!req.destroyed) req.end()
    })().catch((error: unknown) => { req.destroy(error as Error) })
  })
}
