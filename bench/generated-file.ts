// The bytes of a generated file, made on demand so no file is ever held whole:
// the scheme of test/support/stream-upload.ts (a shared random MiB, each MiB
// tagged with its file seed and index so no two chunks match), for the
// contender that sends straight to S3 and has no multipart body to stream.
import { randomBytes } from 'node:crypto'

const MiB = 1024 * 1024
const block = randomBytes(MiB)

/** Bytes [offset, offset + length) of file `seed`; `offset` is a whole number of MiB. */
export function fileBytes (seed: number, offset: number, length: number): Buffer {
  const bytes = Buffer.allocUnsafeSlow(length)
  for (let at = 0; at < length; at += MiB) {
    const chunk = Math.min(MiB, length - at)
    block.copy(bytes, at, 0, chunk)
    if (chunk >= 16) {
      const index = (offset + at) / MiB
      bytes.writeUInt32LE(seed, at)
      bytes.writeUInt32LE(index, at + 4)
      bytes.writeDoubleLE(seed * 1e6 + index, at + 8)
    }
  }
  return bytes
}
