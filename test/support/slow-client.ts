// A hostile or stalled client on a raw TCP socket: it sends a multipart request
// head declaring a body of any length (5 TiB if you like), the first bytes of a
// file, then nothing — or one byte every `dripMs`. For the security tests of
// memory reservation and idle timeouts. Loopback only; close() ends it.
import { connect, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'

export interface SlowClient {
  socket: Socket
  /** The multipart boundary of the body (to write its delimiters by hand). */
  separator: string
  /** Bytes of the body written so far (head of the part included). */
  sent: () => number
  /** The raw answer so far ('' while none came). */
  answer: () => string
  /** The answer's body parsed as JSON, or undefined while it is incomplete. */
  answerJson: () => any
  /** HTTP status of the answer, or null while none came. */
  status: () => number | null
  /** True once the server closed the connection or it failed. */
  closed: () => boolean
  /** Resolves with the status once an answer's head arrived, or null when the socket closed without one. */
  answered: Promise<number | null>
  /** Writes more file bytes (no-op once closed). */
  write: (bytes: Uint8Array) => void
  /** Stops the drip and destroys the socket. */
  close: () => void
}

export interface SlowClientOptions {
  /** Content-Length to declare for the whole body. */
  declaredLength: number
  filename?: string
  /** File bytes sent right after the part head (default 1 KiB). */
  initialBytes?: number
  /** Then one byte every `dripMs` ms; unset: nothing more. */
  dripMs?: number
  path?: string
}

/** Opens the connection and sends the head and first bytes; resolves once they are written. */
export async function openSlowClient (baseUrl: string, options: SlowClientOptions): Promise<SlowClient> {
  const url = new URL(options.path ?? '/upload', baseUrl)
  const separator = `----slow-${randomBytes(8).toString('hex')}`
  const partHead = `--${separator}\r\nContent-Disposition: form-data; name="file"; filename="${options.filename ?? 'slow.bin'}"\r\nContent-Type: application/octet-stream\r\n\r\n`
  const head = `POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: multipart/form-data; boundary=${separator}\r\nContent-Length: ${options.declaredLength}\r\n\r\n`
  const socket = connect({ host: url.hostname, port: Number(url.port) })
  socket.setNoDelay(true)
  let sent = 0
  let answer = ''
  let closed = false
  let drip: NodeJS.Timeout | undefined
  let resolveAnswered: (status: number | null) => void = () => {}
  const answered = new Promise<number | null>((resolve) => { resolveAnswered = resolve })
  const statusOf = (): number | null => {
    const match = /^HTTP\/1\.1 (\d{3})/.exec(answer)
    return match === null ? null : Number(match[1])
  }
  socket.on('data', (chunk: Buffer) => {
    answer += chunk.toString('latin1')
    const status = statusOf()
    if (status !== null) resolveAnswered(status)
  })
  socket.on('error', () => {})
  socket.on('close', () => {
    closed = true
    if (drip !== undefined) clearInterval(drip)
    resolveAnswered(statusOf())
  })
  const write = (bytes: Uint8Array): void => {
    if (closed || socket.destroyed) return
    sent += bytes.byteLength
    socket.write(bytes)
  }
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  socket.write(head)
  write(Buffer.from(partHead))
  // Bytes that can never form a boundary ("\r\n--…").
  write(Buffer.alloc(options.initialBytes ?? 1024, 0x61))
  if (options.dripMs !== undefined) {
    drip = setInterval(() => { write(Buffer.from('a')) }, options.dripMs)
    drip.unref()
  }
  return {
    socket,
    separator,
    sent: () => sent,
    answer: () => answer,
    status: statusOf,
    answerJson: () => {
      const at = answer.indexOf('\r\n\r\n')
      if (at < 0) return undefined
      try { return JSON.parse(answer.slice(at + 4)) } catch { return undefined }
    },
    closed: () => closed,
    answered,
    write,
    close: () => {
      if (drip !== undefined) clearInterval(drip)
      socket.destroy()
    }
  }
}

/** Samples a figure every `everyMs` until stopped; keeps the largest seen. */
export function sampleMax (read: () => number, everyMs = 50): { max: () => number, reset: () => void, stop: () => void } {
  let max = read()
  const timer = setInterval(() => { max = Math.max(max, read()) }, everyMs)
  timer.unref()
  return {
    max: () => Math.max(max, read()),
    reset: () => { max = read() },
    stop: () => { clearInterval(timer) }
  }
}
