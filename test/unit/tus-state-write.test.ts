// StateStore.write: a conditional state write whose answer is lost (a 5xx, no answer) may
// have landed, so the state is read back once — and what was read is handed back, so the
// caller (a PATCH's last write) acts on it without reading again. A fake client plays S3.
import t from 'tap'
import { createHash } from 'node:crypto'
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { StateStore, type TusState } from '../../lib/tus/state.ts'

const ID = 'e'.repeat(32)
const state = (offset: number): TusState => ({ v: 1, id: ID, key: 'k', offset, metadata: {}, originalName: 'k', expires: 0, partSize: 5, parts: [], tail: 0, gen: 0 })
const md5 = (text: string): string => `"${createHash('md5').update(text).digest('hex')}"`
const s3Error = (name: string, status: number): Error => Object.assign(new Error(name), { name, Code: name, $metadata: { httpStatusCode: status } })

/** PutObject fails with `putError`; GetObject answers `stored` (a state), or fails with `readError`. */
function storeWhere (putError: Error, stored: TusState | Error): { store: StateStore, gets: () => number } {
  let gets = 0
  const client = {
    send: async (command: unknown) => {
      if (command instanceof PutObjectCommand) throw putError
      gets++
      if (stored instanceof Error) throw stored
      const body = JSON.stringify(stored)
      return { ETag: md5(body), Body: { transformToByteArray: async () => new Uint8Array(Buffer.from(body)) } }
    }
  } as unknown as S3Client
  return { store: new StateStore(client, 'b', '', { retry: { attempts: 1, baseDelayMs: 0, maxDelayMs: 0 }, checksums: false }), gets: () => gets }
}

t.test('answer lost, the write is there: landed, with the stored ETag', async (t) => {
  const { store, gets } = storeWhere(s3Error('InternalError', 500), state(7))
  t.same(await store.write(state(7), '"old"'), { landed: true, etag: md5(JSON.stringify(state(7))) })
  t.equal(gets(), 1)
})

t.test('answer lost, another state there: not landed, and that state handed back (one read)', async (t) => {
  const { store, gets } = storeWhere(s3Error('InternalError', 500), state(3))
  const written = await store.write(state(7), '"old"')
  t.match(written, { landed: false, conflict: false, stored: { state: { offset: 3 }, etag: md5(JSON.stringify(state(3))) } })
  t.equal(gets(), 1)
  await t.rejects(store.save(state(7), '"old"'), { name: 'InternalError' }, 'save() throws the write\'s own error')
})

t.test('answer lost, the state gone: stored is null', async (t) => {
  const { store } = storeWhere(s3Error('InternalError', 500), s3Error('NoSuchKey', 404))
  t.match(await store.write(state(7), '"old"'), { landed: false, conflict: false, stored: null })
})

t.test('answer lost and the read back fails too: stored is undefined, with the read\'s error', async (t) => {
  const { store } = storeWhere(s3Error('InternalError', 500), s3Error('SlowDown', 503))
  const written = await store.write(state(7), '"old"')
  t.match(written, { landed: false, conflict: false, stored: undefined, readError: { name: 'SlowDown' } })
})

t.test('a conflict answer (412) is this write\'s: no read', async (t) => {
  const { store, gets } = storeWhere(s3Error('PreconditionFailed', 412), state(3))
  t.same(await store.write(state(7), '"old"'), { landed: false, conflict: true })
  await t.rejects(store.save(state(7), '"old"'), { name: 'StateConflict' })
  t.equal(gets(), 0)
})
