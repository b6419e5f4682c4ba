// A tail object's bytes go from S3 back through the server into the next part: changed on the way
// (plain HTTP to the store), they would have gone into the finished file unseen. readTail()
// checks them at their end against the CRC32 S3 keeps, else against the MD5 its ETag is (found
// by an attack run on the write side, helper-45; the read side is this test's).
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { StateStore, type TusState } from '../../lib/tus/state.ts'
import { crc32Base64 } from '../../lib/upload/send-part.ts'

const ID = 'f'.repeat(32)
const STATE: TusState = { v: 1, id: ID, key: 'k', offset: 0, metadata: {}, originalName: 'k', expires: 0, partSize: 5, parts: [], tail: 1, gen: 1 }
const KMS_ETAG = '"0123456789abcdef0123456789abcdef"'

/** A store whose GetObject answers `body` with `answer`'s checksum and ETag; PutObject answers `putEtags` ('md5': the body's MD5, as a plain bucket; 'kms': 32 hex digits that are not). */
function storeReading (body: Buffer, answer: { ChecksumCRC32?: string, ETag?: string }, checksums: boolean, putEtags: 'md5' | 'kms' = 'md5'): { store: StateStore, modes: Array<string | undefined> } {
  const modes: Array<string | undefined> = []
  const client = {
    send: async (command: unknown) => {
      if (command instanceof PutObjectCommand) return { ETag: putEtags === 'md5' ? `"${createHash('md5').update(command.input.Body as string).digest('hex')}"` : KMS_ETAG }
      if (!(command instanceof GetObjectCommand)) throw new Error('only GetObject and PutObject expected')
      modes.push(command.input.ChecksumMode)
      // In two chunks, as a socket would give them.
      return { ...answer, Body: (async function * () { yield body.subarray(0, 1000); yield body.subarray(1000) })() }
    }
  } as unknown as S3Client
  return { store: new StateStore(client, 'b', '', { retry: { attempts: 1, baseDelayMs: 0, maxDelayMs: 0 }, checksums }), modes }
}

/** What every PATCH does before it reads a tail: it writes the state (its hold), and the store learns its ETags. */
async function readAll (store: StateStore): Promise<Buffer> {
  await store.save(STATE, null)
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
  t.same(await readAll(storeReading(flipped, { ETag: '"not-an-md5"' }, false).store), flipped, 'an ETag that is no MD5 and no checksum: nothing to check against')
})

// Found in review (helper-46): on a bucket whose default encryption is SSE-KMS, ETags are 32 hex
// digits that are not the MD5; every intact tail was refused. The store's own state writes tell.
t.test('an ETag of 32 hex digits on a store whose ETags are not MD5s (SSE-KMS bucket default) is not taken for the MD5', async (t) => {
  t.same(await readAll(storeReading(sent, { ETag: KMS_ETAG }, false, 'kms').store), sent, 'an intact tail is read')
})
