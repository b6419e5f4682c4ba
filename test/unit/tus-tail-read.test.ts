// A tail object's bytes go from S3 back through the server into the next part: changed on the way
// (plain HTTP to the store), they would have gone into the finished file unseen. readTail()
// checks them at their end against the CRC32 S3 keeps, else against the MD5 its ETag is (found
// by an attack run on the write side, helper-45; the read side is this test's).
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { StateStore } from '../../lib/tus/state.ts'
import { crc32Base64 } from '../../lib/upload/send-part.ts'

const ID = 'f'.repeat(32)

function storeReading (body: Buffer, answer: { ChecksumCRC32?: string, ETag?: string }, checksums: boolean): { store: StateStore, modes: Array<string | undefined> } {
  const modes: Array<string | undefined> = []
  const client = {
    send: async (command: unknown) => {
      if (!(command instanceof GetObjectCommand)) throw new Error('only GetObject expected')
      modes.push(command.input.ChecksumMode)
      // In two chunks, as a socket would give them.
      return { ...answer, Body: (async function * () { yield body.subarray(0, 1000); yield body.subarray(1000) })() }
    }
  } as unknown as S3Client
  return { store: new StateStore(client, 'b', '', { retry: { attempts: 1, baseDelayMs: 0, maxDelayMs: 0 }, checksums }), modes }
}

async function readAll (store: StateStore): Promise<Buffer> {
  const chunks: Uint8Array[] = []
  for await (const chunk of store.readTail(ID, 1, 'h')) chunks.push(chunk)
  return Buffer.concat(chunks)
}

const sent = randomBytes(4096)
const flipped = Buffer.from(sent)
flipped[2000] = (flipped[2000] as number) ^ 0xff
const md5Etag = `"${createHash('md5').update(sent).digest('hex')}"`

t.test('with checksums: the CRC32 S3 keeps is asked for and checked', async (t) => {
  const intact = storeReading(sent, { ChecksumCRC32: crc32Base64(sent), ETag: '"opaque-kms-etag"' }, true)
  t.same(await readAll(intact.store), sent, 'intact bytes pass')
  t.same(intact.modes, ['ENABLED'], 'ChecksumMode: ENABLED')
  const changed = storeReading(flipped, { ChecksumCRC32: crc32Base64(sent), ETag: '"opaque-kms-etag"' }, true)
  await t.rejects(readAll(changed.store), { code: 'FST_S3CHUNK_STORAGE' }, 'a flipped byte fails the read (a storage failure: the PATCH changes nothing)')
})

t.test('without a checksum: the MD5 ETag of a plain single PUT', async (t) => {
  t.same(await readAll(storeReading(sent, { ETag: md5Etag }, false).store), sent, 'intact bytes pass')
  await t.rejects(readAll(storeReading(flipped, { ETag: md5Etag }, false).store), { code: 'FST_S3CHUNK_STORAGE' }, 'a flipped byte fails the read')
  t.same(await readAll(storeReading(flipped, { ETag: '"not-an-md5"' }, false).store), flipped, 'an ETag that is no MD5 (SSE-KMS) and no checksum: nothing to check against')
})
