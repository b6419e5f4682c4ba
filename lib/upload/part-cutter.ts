import { allocatePartBuffer } from './part-buffer-pool.js'

/** One S3 part: its number and its bytes, in a buffer of its own. */
export interface Part {
  /** 1-based part number. */
  number: number
  /** The part's bytes: a view from offset 0 of an ArrayBuffer no other part or socket shares. */
  bytes: Uint8Array
  /** True for the stream's final part (known because the cutter reads one byte ahead). */
  last: boolean
}

export interface CutOptions {
  /** Size of part `number` (lets the caller grow parts as numbers rise). */
  partSize: (number: number) => number
  /**
   * Gives the buffer for a part of `size` bytes (from the plugin's pool, within
   * its memory budget); while it waits, the source is not read. Defaults to a
   * fresh allocation.
   */
  allocate?: (size: number) => Promise<ArrayBuffer>
}

/**
 * Cuts a byte stream into parts. Each chunk is copied once into the part's
 * own buffer, so a part never pins a pooled socket slab and its ArrayBuffer
 * can be transferred to a worker whole. A full part is held
 * back until the next byte arrives or the stream ends, so the caller knows
 * which part is the last — and a file of one part can go out as one PutObject.
 * An empty stream yields one empty last part.
 */
export async function * cutParts (source: AsyncIterable<Uint8Array>, options: CutOptions): AsyncGenerator<Part> {
  let current: Uint8Array | null = null
  let filled = 0
  let number = 0
  let full: Uint8Array | null = null

  for await (const chunk of source) {
    let offset = 0
    while (offset < chunk.byteLength) {
      if (full !== null) {
        const part = { number, bytes: full, last: false }
        full = null
        yield part
      }
      if (current === null) {
        number += 1
        const size = options.partSize(number)
        current = new Uint8Array(options.allocate !== undefined ? await options.allocate(size) : allocatePartBuffer(size), 0, size)
        filled = 0
      }
      const take = Math.min(current.byteLength - filled, chunk.byteLength - offset)
      current.set(chunk.subarray(offset, offset + take), filled)
      filled += take
      offset += take
      if (filled === current.byteLength) {
        full = current
        current = null
      }
    }
  }

  if (full !== null) {
    yield { number, bytes: full, last: true }
  } else if (current !== null) {
    yield { number, bytes: current.subarray(0, filled), last: true }
  } else {
    yield { number: 1, bytes: new Uint8Array(0), last: true }
  }
}
