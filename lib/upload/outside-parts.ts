import type { IncomingMessage } from 'node:http'
import { BadMultipartError } from '../errors.js'

/** Besides one field's value: a preamble, part headers (busboy keeps 80 KiB of each), boundaries. */
const SLACK_BYTES = 8 * 1024 * 1024

/**
 * Bounds the body's bytes that come while no part is being read: between parts (a field's value,
 * headers, boundaries), before the first (the preamble) and after the last (the epilogue, which
 * busboy discards until the body ends). maxFileSize bounds a file and maxFieldSize a field, but
 * nothing bounded the epilogue: a file, its closing boundary, then bytes for ever — the request
 * never answered, the main thread reading ~1 GiB/s of it (an attack run). Past `maxFieldSize` +
 * 8 MiB in one gap the read fails with a 400, and the lingering close discards the rest.
 *
 * Counting costs one listener call per socket chunk; the bytes of a part being read are not counted.
 */
export class OutsideParts {
  readonly #raw: IncomingMessage
  readonly #limit: number
  readonly #fail: (error: Error) => void
  #between = true
  #bytes = 0
  readonly #count = (chunk: Buffer): void => {
    if (!this.#between) return
    this.#bytes += chunk.byteLength
    if (this.#bytes > this.#limit) {
      this.stop()
      this.#fail(new BadMultipartError(`more than ${this.#limit} bytes of the body lie outside its parts (a preamble, headers, or bytes after the closing boundary)`))
    }
  }

  constructor (raw: IncomingMessage, maxFieldSize: number, fail: (error: Error) => void) {
    this.#raw = raw
    this.#limit = maxFieldSize + SLACK_BYTES
    this.#fail = fail
    raw.on('data', this.#count)
  }

  /** The parts, counting what arrives while the next one is awaited (and a field's value, read before it is handed over). */
  async * around<T> (parts: AsyncIterable<T>): AsyncGenerator<T, void, undefined> {
    for await (const part of parts) {
      this.#between = false
      yield part
      this.#between = true
      this.#bytes = 0
    }
  }

  stop (): void {
    this.#raw.off('data', this.#count)
  }
}
