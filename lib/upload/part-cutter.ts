import { allocatePartBuffer } from './part-buffer-pool.js'

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
}

/**
 * Cuts a byte stream into parts. Each chunk is copied once into the part's
 * own buffer, so a part never pins a pooled socket slab and its ArrayBuffer
 * can be transferred to a worker whole. A full part is held
 * back until the next byte arrives or the stream ends, so the caller knows
 * which part is the last — and a file of one part can go out as one PutObject.
 * It is held unsealed: to the pool it is still filling, waiting on its client,
 * so a client that stops right after a whole part can be asked to give its
 * memory back like any slow one (sealed, it counted as on its way to S3 and
 * escaped that: found by an attack run). An empty stream yields one empty last
 * part. A part being filled when the cutter is abandoned gives its memory back.
 */
export async function * cutParts (source: AsyncIterable<Uint8Array>, options: CutOptions): AsyncGenerator<Part> {
  const open = options.open ?? plainFill
  let current: PartFill | null = null
  let size = 0
  let filled = 0
  let number = 0

  try {
    for await (const chunk of source) {
      let offset = 0
      while (offset < chunk.byteLength) {
        if (current !== null && filled === size) {
          // More bytes: the full part is not the last.
          const bytes = current.seal()
          current = null
          yield { number, bytes, last: false }
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
      }
    }
  } catch (error) {
    current?.abandon()
    throw error
  }

  if (current !== null) {
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
