// A client that sends a chunked body that never ends: how much of it a server takes before it
// answers, or before it closes the connection. Bounded by `seconds`; the socket is destroyed then.
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

const MiB = 1024 * 1024

export interface Flooded {
  /** MiB written (as far as the socket took them) before the stop. */
  sentMiB: number
  /** The answer's first line ('' for none). */
  answer: string
  /** Whether the server closed the connection. */
  closed: boolean
  ms: number
}

/**
 * Sends the request line and `headers` (chunked), `head` as its first chunk, then 256 KiB chunks
 * of 'x' (never a multipart boundary) until the server closes the connection — or, with
 * `untilAnswer`, until its first answer bytes — or `seconds` pass.
 */
export async function floodChunked (url: string, request: { method: string, path: string, headers: Record<string, string>, head?: Buffer }, { seconds, untilAnswer = false }: { seconds: number, untilAnswer?: boolean }): Promise<Flooded> {
  const target = new URL(url)
  // Half-open allowed: a server that ends its side after the answer may still read on (the flood measures that).
  const socket = connect({ host: target.hostname, port: Number(target.port), allowHalfOpen: true })
  socket.on('error', () => {})
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => { chunks.push(chunk) })
  let closed = false
  socket.once('close', () => { closed = true })
  await new Promise<void>((resolve) => socket.once('connect', resolve))
  const headers = Object.entries({ host: target.host, ...request.headers, 'transfer-encoding': 'chunked' }).map(([name, value]) => `${name}: ${value}\r\n`).join('')
  socket.write(`${request.method} ${request.path} HTTP/1.1\r\n${headers}\r\n`)
  const chunk = (bytes: Buffer): Buffer => Buffer.concat([Buffer.from(`${bytes.byteLength.toString(16)}\r\n`), bytes, Buffer.from('\r\n')])
  if (request.head !== undefined) socket.write(chunk(request.head))
  const filler = Buffer.alloc(256 * 1024, 'x')
  const framed = chunk(filler)
  const started = Date.now()
  let sent = 0
  while (!closed && !(untilAnswer && chunks.length > 0) && Date.now() - started < seconds * 1000) {
    sent += filler.byteLength
    if (!socket.write(framed)) await Promise.race([new Promise((resolve) => { socket.once('drain', resolve); socket.once('close', resolve) }), sleep(1_000)])
  }
  // The rest of an answer in flight.
  if (untilAnswer) await sleep(200)
  socket.destroy()
  return { sentMiB: Math.round(sent / MiB), answer: Buffer.concat(chunks).toString('latin1').split('\r\n')[0] ?? '', closed, ms: Date.now() - started }
}
