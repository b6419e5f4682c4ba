// Tiny files of real formats, for content sniffing tests.
import { crc32, deflateSync } from 'node:zlib'
import { randomBytes } from 'node:crypto'

/** A PNG chunk: length, type, data and its CRC32. */
export function pngChunk (type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8)
  head.writeUInt32BE(data.length, 0)
  head.write(type, 4, 'ascii')
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0)
  return Buffer.concat([head, data, crc])
}

/** A valid w × h grey PNG, padded with a trailing ancillary chunk to about `size` bytes. */
export function pngBytes (size = 1000, w = 4, h = 4): Buffer {
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(w, 0)
  ihdr.writeUInt32BE(h, 4)
  ihdr[8] = 8 // bit depth
  ihdr[9] = 0 // greyscale
  const raw = Buffer.alloc((w + 1) * h, 0x80)
  const body = [Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk('IHDR', ihdr), pngChunk('IDAT', deflateSync(raw))]
  const used = body.reduce((sum, b) => sum + b.length, 0) + 12 + 12
  if (size > used) body.push(pngChunk('teXt', Buffer.concat([Buffer.from('pad\0'), randomBytes(size - used - 4)])))
  body.push(pngChunk('IEND', Buffer.alloc(0)))
  return Buffer.concat(body)
}

function mp4Box (type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8)
  head.writeUInt32BE(8 + data.length, 0)
  head.write(type, 4, 'latin1')
  return Buffer.concat([head, data])
}

/** The start of an MP4 as a phone or ffmpeg writes it: ftyp (isom), then an mdat of `mediaBytes` random bytes. */
export function mp4Bytes (mediaBytes = 4000): Buffer {
  const ftyp = mp4Box('ftyp', Buffer.concat([Buffer.from('isom'), Buffer.from([0, 0, 2, 0]), Buffer.from('isomiso2avc1mp41')]))
  return Buffer.concat([ftyp, mp4Box('free', Buffer.alloc(0)), mp4Box('mdat', randomBytes(mediaBytes))])
}
