import { allocatePartBuffer, type PartMemory } from './part-buffer-pool.js'

/** One S3 part: its number and its bytes, in a buffer of its own. */
export interface Part {
  /** 1-based part number. */
  number: number
  /** The part's bytes: a view from offset 0 of a buffer no other part or socket shares. */
  bytes: Uint8Array
  /** True for the stream's final part (known because the cutter reads one byte ahead). */
  last: boolean
}

/** A part being filled (the pool's FillingPart, or a plain buffer). */
export interface PartFill {
  /** Bytes that can be written now without waiting. */
  room: () => number
  write: (bytes: Uint8Array) => void
  /** Makes room for more (may wait for memory); called when room() is 0 and the part is not full. */
  grow: () => Promise<void>
  /** Ends the filling; the bytes written. */
  seal: () => Uint8Array
  /** Gives the memory back: the part will not be used. */
  abandon: () => void
}

export interface CutOptions {
  /** Size of part `number` (lets the caller grow parts as numbers rise). */
  partSize: (number: number) => number
  /**
   * Starts a part of `size` bytes (from the plugin's pool, within its memory
   * budget, reserved as bytes arrive); while it waits, the source is not
   * read. Defaults to a whole fresh buffer.
   */
  open?: (size: number) => Promise<PartFill>
  /** Takes back a sealed part's buffer the caller never received (the source failed first). */
  release?: (buffer: PartMemory) => void
}

/**
 * Cuts a byte stream into parts. Each chunk is copied once into the part's
 * own buffer, so a part never pins a pooled socket slab and its ArrayBuffer
 * can be transferred to a worker whole. A full part is held
 * back until the next byte arrives or the stream ends, so the caller knows
 * which part is the last — and a file of one part can go out as one PutObject.
 * An empty stream yields one empty last part. A part being filled when the
 * cutter is abandoned gives its memory back.
 */
export async function * cutParts (source: AsyncIterable<Uint8Array>, options: CutOptions): AsyncGenerator<Part> {
  const open = options.open ?? plainFill
  let current: PartFill | null = null
  let size = 0
  let filled = 0
  let number = 0
  let full: Uint8Array | null = null

  try {
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
          size = options.partSize(number)
          current = await open(size)
          filled = 0
        }
        if (current.room() === 0) await current.grow()
        const take = Math.min(current.room(), size - filled, chunk.byteLength - offset)
        current.write(chunk.subarray(offset, offset + take))
        filled += take
        offset += take
        if (filled === size) {
          full = current.seal()
          current = null
        }
      }
    }
  } catch (error) {
    current?.abandon()
    if (full !== null) options.release?.(full.buffer as PartMemory)
    throw error
  }

  if (full !== null) {
    yield { number, bytes: full, last: true }
  } else if (current !== null) {
    yield { number, bytes: current.seal(), last: true }
  } else {
    yield { number: 1, bytes: new Uint8Array(0), last: true }
  }
}

/** A whole fresh buffer, written in place. */
async function plainFill (size: number): Promise<PartFill> {
  const bytes = new Uint8Array(allocatePartBuffer(size))
  let written = 0
  return {
    room: () => size - written,
    write: (chunk) => { bytes.set(chunk, written); written += chunk.byteLength },
    grow: async () => {},
    seal: () => bytes.subarray(0, written),
    abandon: () => {}
  }
}
