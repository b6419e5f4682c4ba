import t from 'tap'
import { PartBufferPool } from '../../lib/upload/part-buffer-pool.ts'
import { cutParts, type Part } from '../../lib/upload/part-cutter.ts'

async function * chunked (data: Uint8Array, sizes: number[]): AsyncGenerator<Uint8Array> {
  let offset = 0
  let i = 0
  while (offset < data.byteLength) {
    const size = sizes[i++ % sizes.length] ?? 1
    yield data.subarray(offset, offset + size)
    offset += size
  }
}

async function cut (data: Uint8Array, partSize: number, chunkSizes = [7, 1, 100, 33]): Promise<Part[]> {
  const parts: Part[] = []
  for await (const part of cutParts(chunked(data, chunkSizes), { partSize: () => partSize })) parts.push(part)
  return parts
}

function bytes (n: number): Uint8Array {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = (i * 31 + 7) & 0xff
  return out
}

t.test('an empty stream yields one empty last part (a valid empty object)', async (t) => {
  const parts = await cut(new Uint8Array(0), 64)
  t.equal(parts.length, 1)
  t.equal(parts[0]?.number, 1)
  t.equal(parts[0]?.bytes.byteLength, 0)
  t.equal(parts[0]?.last, true)
})

t.test('part counts and sizes around the part boundary', async (t) => {
  const partSize = 64
  const cases: Array<[number, number[]]> = [
    [1, [1]],
    [partSize - 1, [partSize - 1]],
    [partSize, [partSize]],
    [partSize + 1, [partSize, 1]],
    [3 * partSize + 7, [partSize, partSize, partSize, 7]]
  ]
  for (const [size, expected] of cases) {
    const data = bytes(size)
    const parts = await cut(data, partSize)
    t.same(parts.map((p) => p.bytes.byteLength), expected, `${size} bytes → ${expected.join('+')}`)
    t.same(parts.map((p) => p.number), expected.map((_, i) => i + 1), 'numbered from 1 in order')
    t.same(parts.map((p) => p.last), expected.map((_, i) => i === expected.length - 1), 'only the final part is last')
    t.same(Buffer.concat(parts.map((p) => p.bytes)), Buffer.from(data), 'the parts put together are the input')
  }
})

t.test('whatever the chunking, the bytes survive', async (t) => {
  const data = bytes(10_000)
  for (const sizes of [[1], [10_000], [63, 64, 65], [4096, 3, 8191]]) {
    const parts = await cut(data, 512, sizes)
    t.same(Buffer.concat(parts.map((p) => p.bytes)), Buffer.from(data), `chunks of ${sizes.join(',')}`)
  }
})

t.test('each part owns its ArrayBuffer, never a view of a source chunk', async (t) => {
  const data = bytes(1000)
  const source = data.buffer
  const parts = await cut(data, 256, [1000])
  const buffers = new Set(parts.map((p) => p.bytes.buffer))
  t.equal(buffers.size, parts.length, 'one ArrayBuffer per part')
  for (const part of parts) {
    t.not(part.bytes.buffer, source, `part ${part.number} does not share the chunk's buffer`)
    t.equal(part.bytes.byteOffset, 0, `part ${part.number} starts its buffer`)
    t.equal(part.bytes.buffer.byteLength, 256, 'the buffer is exactly one part size (transferable whole)')
  }
})

t.test('the part size is asked per part number and each part is opened from the pool', async (t) => {
  const pool = new PartBufferPool(1024)
  const opened: number[] = []
  const parts: Part[] = []
  const sizes = new Map([[1, 10], [2, 20], [3, 40]])
  for await (const part of cutParts(chunked(bytes(65), [3]), { partSize: (n) => sizes.get(n) ?? 80, open: async (size) => { opened.push(size); return await pool.open(size) } })) parts.push(part)
  t.same(parts.map((p) => p.bytes.byteLength), [10, 20, 35])
  t.same(opened, [10, 20, 40])
  t.equal(pool.used, 10 + 20 + 40, 'each sealed part holds its buffer until given back')
})

t.test('a part being filled when the source fails gives its memory back', async (t) => {
  const pool = new PartBufferPool(1024)
  async function * failing (): AsyncGenerator<Uint8Array> {
    yield bytes(100)
    throw new Error('socket hang up')
  }
  const seen: Part[] = []
  await t.rejects(async () => {
    for await (const part of cutParts(failing(), { partSize: () => 64, open: async (size) => await pool.open(size) })) seen.push(part)
  }, /socket hang up/)
  for (const part of seen) pool.release(part.bytes.buffer as ArrayBuffer)
  t.equal(pool.used, 0, 'nothing left reserved')
})

t.test('a full part is held back until the stream says whether more follows', async (t) => {
  let ended = false
  async function * source (): AsyncGenerator<Uint8Array> {
    yield bytes(64)
    ended = true
  }
  const iterator = cutParts(source(), { partSize: () => 64 })[Symbol.asyncIterator]()
  const first = await iterator.next()
  t.equal(ended, true, 'the stream was read to its end before the full part was handed out')
  t.equal(first.value?.last, true)
})

t.test('a source error propagates', async (t) => {
  async function * failing (): AsyncGenerator<Uint8Array> {
    yield bytes(100)
    throw new Error('socket hang up')
  }
  await t.rejects(async () => { for await (const _ of cutParts(failing(), { partSize: () => 64 })) { /* read */ } }, /socket hang up/)
})
