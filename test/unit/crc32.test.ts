// The CRC32 sent to S3 with every part (and tus's crc32 checksum): the native
// implementation must give zlib's answers, and be the one used when it loads.
import t from 'tap'
import { createRequire } from 'node:module'
import { randomBytes } from 'node:crypto'
import { crc32 as zlibCrc32 } from 'node:zlib'
import { crc32, crc32Implementation } from '../../lib/crc32.ts'

t.test("zlib's answers for every length, whole and continued", async (t) => {
  const bytes = randomBytes(70_001)
  for (const length of [0, 1, 7, 63, 64, 65, 4095, 4096, 65_537, 70_001]) {
    const view = bytes.subarray(0, length)
    t.equal(crc32(view), zlibCrc32(view) >>> 0, `${length} bytes`)
    const half = length >> 1
    t.equal(crc32(view.subarray(half), crc32(view.subarray(0, half))), zlibCrc32(view) >>> 0, `${length} bytes in two calls`)
  }
  t.equal(crc32(Buffer.from('123456789')), 0xcbf43926, 'the check value of CRC-32/ISO-HDLC')
})

t.test('a view of part of a resizable buffer (how part buffers come)', async (t) => {
  const buffer = new ArrayBuffer(1 << 20, { maxByteLength: 1 << 20 })
  const whole = new Uint8Array(buffer)
  whole.set(randomBytes(whole.byteLength))
  buffer.resize(300_000)
  const view = new Uint8Array(buffer, 1000, 200_000)
  t.equal(crc32(view), zlibCrc32(view) >>> 0)
})

t.test('the native implementation is used wherever its package loads', async (t) => {
  let loads = false
  try {
    loads = typeof (createRequire(import.meta.url)('@node-rs/crc32') as { crc32?: unknown }).crc32 === 'function'
  } catch {}
  t.equal(crc32Implementation, loads ? 'native' : 'zlib')
  // On the platforms CI runs (linux x64) the prebuilt binary is installed by npm ci.
  if (process.platform === 'linux' && process.arch === 'x64') t.ok(loads, '@node-rs/crc32 loads here')
})
