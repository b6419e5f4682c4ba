// versitygw v1.8.0 (posix, sidecar metadata) stores an object's ETag before it moves the new
// body in, so a GetObject racing a PutObject can answer the old body with the new ETag. A PATCH
// that read the state so (no hold in it) took the hold If-Match that ETag — over the hold another
// PATCH had just written: two requests held one upload, each made its own multipart upload, and
// the one whose last write lost left its upload open (one CI run; reproduced 1 in 104 runs of
// tus-client's cut-and-resume test under load). The state store believes a body only with its
// own ETag. These tests play that store with a fake client.
import t from 'tap'
import { createHash } from 'node:crypto'
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { StateConflict, StateStore, type TusState } from '../../lib/tus/state.ts'

const ID = 'f'.repeat(32)
const md5 = (text: string): string => `"${createHash('md5').update(text).digest('hex')}"`
const state = (offset: number, holder?: string): string => JSON.stringify({
  v: 1, id: ID, key: 'k', offset, metadata: {}, originalName: 'k', expires: 0, partSize: 5, parts: [], tail: 0, gen: 0,
  ...(holder !== undefined ? { lease: { holder, until: 1 } } : {})
} satisfies TusState)

const OPAQUE = '"0123456789abcdef0123456789abcdef"'

/**
 * A store over a client whose GetObject answers `reads` in turn (the last one again after) and
 * whose PutObject answers the body's MD5 as ETag, or an opaque one (SSE-KMS) with `opaquePuts`.
 */
function storeAnswering (reads: Array<{ body: string, etag: string }>, opaquePuts = false): { store: StateStore, gets: () => number, putsOpaque: (opaque: boolean) => void } {
  let gets = 0
  const client = {
    send: async (command: unknown) => {
      if (command instanceof PutObjectCommand) return { ETag: opaquePuts ? OPAQUE : md5(command.input.Body as string) }
      const read = reads[Math.min(gets++, reads.length - 1)] as { body: string, etag: string }
      return { ETag: read.etag, Body: { transformToByteArray: async () => new Uint8Array(Buffer.from(read.body)) } }
    }
  } as unknown as S3Client
  return { store: new StateStore(client, 'b', '', { retry: { attempts: 1, baseDelayMs: 0, maxDelayMs: 0 }, checksums: false }), gets: () => gets, putsOpaque: (opaque) => { opaquePuts = opaque } }
}

t.test('a body with its own ETag: one read', async (t) => {
  const body = state(1)
  const { store, gets } = storeAnswering([{ body, etag: md5(body) }])
  t.same(await store.load(ID), { state: JSON.parse(body), etag: md5(body) })
  t.equal(gets(), 1)
})

t.test('the old body with the new ETag (a read racing a write) is read again: the hold is seen', async (t) => {
  const before = state(1)
  const held = state(1, 'other')
  const { store, gets } = storeAnswering([{ body: before, etag: md5(held) }, { body: held, etag: md5(held) }])
  const loaded = await store.load(ID)
  t.equal(loaded?.etag, md5(held))
  t.same(loaded?.state.lease, { holder: 'other', until: 1 }, 'the ETag comes with the body it names')
  t.equal(gets(), 2)
})

t.test('a store whose writes answer MD5 ETags: a body that never matches its ETag is a conflict, never believed', async (t) => {
  const { store, gets } = storeAnswering([{ body: state(1), etag: md5(state(2)) }])
  await store.save(JSON.parse(state(3)) as TusState, null)
  await t.rejects(store.load(ID), StateConflict)
  t.equal(gets(), 5, 'five reads (about 100 ms), then a conflict (409 to the client)')
})

t.test('a reader that writes nothing (HEAD) takes the last read rather than a conflict', async (t) => {
  const { store, gets } = storeAnswering([{ body: state(7), etag: md5(state(8)) }])
  await store.save(JSON.parse(state(3)) as TusState, null)
  t.equal((await store.load(ID, { forWriting: false }))?.state.offset, 7, 'a recent offset, not a 409 (tus-js-client would start the file over)')
  t.equal(gets(), 5)
})

t.test('a store whose writes answer other ETags (SSE-KMS): a read is believed as it comes', async (t) => {
  const body = state(1)
  const { store, gets } = storeAnswering([{ body, etag: OPAQUE }], true)
  await store.save(JSON.parse(state(3)) as TusState, null)
  t.equal((await store.load(ID))?.state.offset, 1)
  t.equal(gets(), 1)
})

t.test('before any write of the process: five reads ending alike are believed (an SSE-KMS store, ~100 ms once)', async (t) => {
  const body = state(1)
  const { store, gets } = storeAnswering([{ body, etag: OPAQUE }], true)
  t.equal((await store.load(ID))?.state.offset, 1)
  t.equal(gets(), 5)
})

// A store can change under a live upload (bucket-default SSE-KMS switched on, or off): the last write decides.
t.test('what the ETags are follows the store\'s last write, both ways', async (t) => {
  const { store, gets, putsOpaque } = storeAnswering([{ body: state(1), etag: OPAQUE }], true)
  await store.save(JSON.parse(state(3)) as TusState, null)
  t.equal((await store.load(ID))?.state.offset, 1, 'after a write answered an opaque ETag: believed at once')
  t.equal(gets(), 1)
  putsOpaque(false)
  await store.save(JSON.parse(state(3)) as TusState, null)
  await t.rejects(store.load(ID), StateConflict, 'after a write answered its MD5: the same read is no longer believed')
  t.equal(gets(), 1 + 5)
})

t.test('no state: null, one read', async (t) => {
  let gets = 0
  const client = { send: async () => { gets++; throw Object.assign(new Error('NoSuchKey'), { name: 'NoSuchKey', Code: 'NoSuchKey', $metadata: { httpStatusCode: 404 } }) } } as unknown as S3Client
  t.equal(await new StateStore(client, 'b', '', { retry: { attempts: 1, baseDelayMs: 0, maxDelayMs: 0 }, checksums: false }).load(ID), null)
  t.equal(gets, 1)
})
