import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyReply } from 'fastify'
import type { ServerHttp2Stream } from 'node:http2'
import type { Socket } from 'node:net'

/**
 * How long the rest of a refused body is read and discarded after the answer, before the
 * connection closes (nginx's `lingering_timeout` default): long enough for a client to read
 * the answer and stop, or to finish a body that was nearly sent; bounded, whatever it sends.
 */
export const LINGER_MS = 5_000

/**
 * And how much of it: a client that never stops sending made the server read ~2.5 GiB per
 * connection in the 5 s, on the main thread (found by an attack run). 64 MiB past the refusal
 * lets a client that writes its whole body before reading finish a body well over the limit.
 */
export const LINGER_BYTES = 64 * 1024 * 1024

/** While the app closes: its server's close waits for every connection, a lingering one too. */
export const CLOSING_LINGER_MS = 1_000

/** How often a lingering connection's deadline and byte count are checked. */
const CHECK_EVERY_MS = 50

type LingeringSocket = Socket & { destroySoon?: () => void, parser?: { onIncoming?: unknown } | null }
type Dumpable = IncomingMessage & { _dump?: () => void, upgrade?: boolean }

/**
 * Lingering closes (RFC 9112 §9.6) for HTTP/1 answers sent before the request's body was read.
 *
 * Closing a TCP connection with unread bytes resets it, and a client still writing its body
 * meets that reset before it reads the answer: a refusal mid-body (a 413 past maxFileSize, a
 * 409) reached it as a network error, and a client that sends its whole body before reading
 * never saw the answer at all. Instead: the answer, then a FIN, then what the client still
 * sends read and discarded — for `LINGER_MS` and about `LINGER_BYTES` at most — then the close.
 * A request after it on the connection is never served (RFC 9112 §9.6): discarded with the rest.
 * Over HTTP/2 the connection stays: the answered stream is reset with NO_ERROR (RFC 9113 §8.1),
 * which tells the client to stop sending (it stayed half-open, the client stalled on flow control).
 */
export class LingeringCloses {
  readonly #sockets = new Set<Socket>()
  readonly #armed = new WeakSet<Socket>()
  readonly #lingerMs: () => number

  constructor (lingerMs: () => number) {
    this.#lingerMs = lingerMs
  }

  /**
   * Answers a request whose body was not read to its end with `Connection: close` — rather than
   * read the rest only to discard it — and arms its connection: Node calls `destroySoon()` once
   * that answer is written, and the connection then lingers.
   */
  closeAfterAnswer (raw: IncomingMessage, reply: FastifyReply): void {
    reply.header('connection', 'close')
    const response = reply.raw
    if (raw.httpVersionMajor === 2) {
      closeStreamAfter(raw, response)
      return
    }
    const socket = raw.socket as LingeringSocket | null
    if (raw.httpVersionMajor !== 1 || socket === null || socket.destroyed || typeof socket.destroySoon !== 'function' || this.#armed.has(socket)) return
    this.#armed.add(socket)
    // The answer will say close: a request after this one is never served (RFC 9112 §9.6). Its
    // body was incomplete now, so whatever the parser finds next comes after it — also before
    // the answer is written (an onSend hook still running, an earlier answer on the connection
    // still going out): its bytes are discarded with the rest. A tus DELETE or an upload
    // pipelined behind a refused body ran, its answer never sent (two attack runs).
    if (socket.parser !== null && socket.parser !== undefined) {
      socket.parser.onIncoming = (incoming: Dumpable) => {
        // Nor an upgrade (or CONNECT): Node's own handler clears the flag when no listener wants
        // it; left set, Node hands the socket to the app's 'upgrade' listener (a WebSocket
        // opened after the answer said close) or, with none, detaches it from the server, its
        // error listener with it — a reset then crashed the process (an attack run).
        incoming.upgrade = false
        incoming._dump?.()
        return 0
      }
    }
    const sockets = this.#sockets
    const lingerMs = this.#lingerMs
    socket.destroySoon = function lingeringClose (this: LingeringSocket) {
      if (this.destroyed) return
      // The answer is flushed, then a FIN; the read side stays open (HTTP servers allow half-open).
      this.end()
      // Node's own way to discard a body nobody reads: the parser drops it, the socket keeps reading.
      ;(raw as Dumpable)._dump?.()
      sockets.add(this)
      const deadline = Date.now() + lingerMs()
      const readBefore = this.bytesRead
      // Checked every CHECK_EVERY_MS: at loopback speed a client gets ~20 MiB more past the bound.
      const check = setInterval(() => {
        if (Date.now() >= deadline || this.bytesRead - readBefore > LINGER_BYTES) this.destroy()
      }, CHECK_EVERY_MS)
      check.unref()
      this.once('close', () => {
        clearInterval(check)
        sockets.delete(this)
      })
    }
    // An app's onSend hook after ours may drop the header: Node then keeps the connection and
    // never calls destroySoon(), and our onResponse destroyed the request with its socket — the
    // reset again, the answer unread. Once the answer is written the linger begins all the same:
    // before Node's own 'finish' listener and Fastify's onResponse (hence prepended).
    response.prependOnceListener('finish', () => {
      if ((response as { _last?: boolean })._last !== true) socket.destroySoon?.()
    })
  }

  /**
   * Fails what still reads the request (an upload waiting for bytes) without resetting a
   * lingering connection: `IncomingMessage.destroy()` destroys its socket too, so the socket is
   * detached for the call. Not lingering: a plain destroy.
   */
  destroyRequest (raw: IncomingMessage): void {
    const socket = raw.socket
    if (socket === null || !this.#sockets.has(socket)) {
      raw.destroy()
      return
    }
    const detached = raw as { socket: Socket | null }
    detached.socket = null
    try {
      raw.destroy()
    } finally {
      detached.socket = socket
    }
  }

  /** Ends every lingering connection now (the app is closing: its server waits for them). */
  endAll (): void {
    for (const socket of this.#sockets) socket.destroy()
  }
}

/** Over HTTP/2: once the answer is sent, the stream is reset with NO_ERROR — the client stops sending. */
function closeStreamAfter (raw: IncomingMessage, response: ServerResponse): void {
  const stream = (raw as unknown as { stream?: ServerHttp2Stream }).stream
  if (stream === undefined) return
  // The stream's own end (the answer's last frame sent): the response's 'finish' waits for the whole stream.
  stream.once('finish', () => {
    // destroy(), not close(): a closed stream waits for its readable side to end, behind bytes
    // nobody reads, and kept the session (and app.close()) open for ever. Without an error,
    // destroy() resets the stream with NO_ERROR too.
    if (!stream.destroyed) stream.destroy()
  })
}
