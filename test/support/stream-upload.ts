// Streams a generated file as a multipart POST without holding it in memory,
// hashing it on the way; can stop (disconnect) after a given number of bytes.
import { createHash, randomBytes } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { boundary } from './multipart.ts'

const MiB = 1024 * 1024
const block = randomBytes(MiB)

export interface StreamedUpload {
  status: number | null
  body: string
  /** SHA-256 of the whole file the client meant to send. */
  sha256: string
  size: number
  /** Set when the request failed on the client side (including a deliberate disconnect). */
  error?: Error
}

/** The i-th MiB of file `seed`: a shared random block with its own 16-byte tag, so no two chunks match. */
function chunkOf (seed: number, index: number, length: number): Buffer {
  const chunk = Buffer.allocUnsafe(length)
  block.copy(chunk, 0, 0, length)
  if (length >= 16) {
    chunk.writeUInt32LE(seed, 0)
    chunk.writeUInt32LE(index, 4)
    chunk.writeDoubleLE(seed * 1e6 + index, 8)
  }
  return chunk
}

/** `onSent(bytes)`: body bytes handed to the socket so far, after each write. `hash: false` leaves `sha256` empty (use expectedSha256 later) to spare the CPU while load is measured. */
export async function streamUpload (url: string, options: { seed: number, size: number, filename?: string, disconnectAfter?: number, chunked?: boolean, hash?: boolean, onSent?: (bytes: number) => void }): Promise<StreamedUpload> {
  const { seed, size } = options
  const separator = boundary()
  const head = Buffer.from(`--${separator}\r\nContent-Disposition: form-data; name="file"; filename="${options.filename ?? `file-${seed}.bin`}"\r\nContent-Type: application/octet-stream\r\n\r\n`)
  const tail = Buffer.from(`\r\n--${separator}--\r\n`)
  const hash = createHash('sha256')
  const headers: Record<string, string> = { 'content-type': `multipart/form-data; boundary=${separator}` }
  if (options.chunked !== true) headers['content-length'] = String(head.byteLength + size + tail.byteLength)
  return await new Promise((resolve) => {
    const result: StreamedUpload = { status: null, body: '', sha256: '', size }
    let settled = false
    const finish = (error?: Error): void => {
      if (settled) return
      settled = true
      if (error !== undefined) result.error = error
      resolve(result)
    }
    const req = httpRequest(url, { method: 'POST', headers, agent: false }, (res) => {
      result.status = res.statusCode ?? 0
      const parts: Buffer[] = []
      res.on('data', (chunk: Buffer) => parts.push(chunk))
      res.on('end', () => { result.body = Buffer.concat(parts).toString('utf8'); finish() })
      res.on('error', finish)
    })
    req.on('error', finish)
    void (async () => {
      let sent = 0
      const write = async (chunk: Buffer): Promise<boolean> => {
        if (options.disconnectAfter !== undefined && sent + chunk.byteLength > options.disconnectAfter) {
          req.write(chunk.subarray(0, Math.max(0, options.disconnectAfter - sent)))
          req.destroy(new Error('client disconnected on purpose'))
          return false
        }
        sent += chunk.byteLength
        const written = req.write(chunk)
        options.onSent?.(sent)
        if (!written) {
          await new Promise<void>((resolve) => {
            const done = (): void => { req.off('drain', done); req.off('close', done); resolve() }
            req.on('drain', done)
            req.on('close', done)
          })
        }
        return !req.destroyed
      }
      if (!await write(head)) return
      for (let index = 0, offset = 0; offset < size; index++, offset += MiB) {
        const chunk = chunkOf(seed, index, Math.min(MiB, size - offset))
        if (options.hash !== false) hash.update(chunk)
        if (!await write(chunk)) return
      }
      if (options.hash !== false) result.sha256 = hash.digest('hex')
      if (!await write(tail)) return
      req.end()
    })()
  })
}

/** The SHA-256 of file `seed` of `size` bytes, as streamUpload would send it. */
export function expectedSha256 (seed: number, size: number): string {
  const hash = createHash('sha256')
  for (let index = 0, offset = 0; offset < size; index++, offset += MiB) hash.update(chunkOf(seed, index, Math.min(MiB, size - offset)))
  return hash.digest('hex')
}
