/**
 * Counts the bytes held in part buffers across every upload of one plugin
 * instance: a part is counted from its allocation until S3 has answered for it.
 */
export class BufferAccounting {
  #bytes = 0
  #peak = 0

  get bytes (): number { return this.#bytes }
  get peak (): number { return this.#peak }

  add (bytes: number): void {
    this.#bytes += bytes
    if (this.#bytes > this.#peak) this.#peak = this.#bytes
  }

  release (bytes: number): void {
    this.#bytes -= bytes
  }
}
