import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'

/**
 * How long the rest of a refused body is read and discarded after the answer, before the
 * connection closes (nginx's `lingering_timeout` default): long enough for a client to read
 * the answer and stop, or to finish a body that was nearly sent; bounded, whatever it sends.
 */
export const LINGER_MS = 5_000

/** While the app closes: its server's close waits for every connection, a lingering one too. */
export const CLOSING_LINGER_MS = 1_000

type LingeringSocket = Socket & { destroySoon?: () => void }
type Dumpable = IncomingMessage & { _dump?: () => void }

/**
 * Lingering closes (RFC 9112 §9.6) for HTTP/1 answers sent before the request's body was read.
 *
 * Closing a TCP connection with unread bytes resets it, and a client still writing its body
 * meets that reset before it reads the answer: a refusal mid-body (a 413 past maxFileSize, a
 * 409) reached it as a network error, and a client that sends its whole body before reading
 * never saw the answer at all. Instead: the answer, then a FIN, then what the client still
 * sends read and discarded for `LINGER_MS` at most, then the close. HTTP/2 needs none of it: a
 * stream is reset on its own, the connection stays.
 */
export class LingeringCloses {
  readonly #sockets = new Set<Socket>()
  readonly #armed = new WeakSet<Socket>()
  readonly #lingerMs: () => number

  constructor (lingerMs: () => number) {
    this.#lingerMs = lingerMs
  }

  /** How many connections linger now. */
  get size (): number {
    return this.#sockets.size
  }

  /**
   * Arms the connection of a request answered with `Connection: close` before its body was read:
   * Node calls `destroySoon()` once that answer is written, and the connection then lingers.
   */
  arm (raw: IncomingMessage): void {
    const socket = raw.socket as LingeringSocket | null
    if (raw.httpVersionMajor !== 1 || socket === null || socket.destroyed || typeof socket.destroySoon !== 'function' || this.#armed.has(socket)) return
    this.#armed.add(socket)
    const sockets = this.#sockets
    const lingerMs = this.#lingerMs
    socket.destroySoon = function lingeringClose (this: Socket) {
      // The answer is flushed, then a FIN; the read side stays open (HTTP servers allow half-open).
      this.end()
      // Node's own way to discard a body nobody reads: the parser drops it, the socket keeps reading.
      ;(raw as Dumpable)._dump?.()
      sockets.add(this)
      const timer = setTimeout(() => { this.destroy() }, lingerMs())
      timer.unref()
      this.once('close', () => {
        clearTimeout(timer)
        sockets.delete(this)
      })
    }
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
