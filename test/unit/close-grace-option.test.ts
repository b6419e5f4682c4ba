// closeGracePeriod: an engine option (one close for the one engine), 0 by default.
import t from 'tap'
import Fastify from 'fastify'
import s3Chunk from '../../lib/index.ts'
import { configOf, ENGINE_OPTIONS } from '../../lib/options.ts'

const s3 = { region: 'us-east-1', endpoint: 'http://127.0.0.1:9', forcePathStyle: true, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } }

t.test('defaults to 0 (abort at once, as before) and is checked like every option', async (t) => {
  t.equal(configOf({ bucket: 'uploads' }).closeGracePeriod, 0)
  t.equal(configOf({ bucket: 'uploads', closeGracePeriod: 20_000 }).closeGracePeriod, 20_000)
  for (const value of [-1, 1.5, '5000', 3_600_001]) {
    t.throws(() => configOf({ bucket: 'uploads', closeGracePeriod: value as number }), { code: 'FST_S3CHUNK_INVALID_OPTION', message: /"closeGracePeriod"/ }, String(value))
  }
  t.ok(ENGINE_OPTIONS.includes('closeGracePeriod'), 'an engine option')
})

t.test('a later registration may not change it: one engine, one close', async (t) => {
  const app = Fastify({ pluginTimeout: 60_000 })
  t.teardown(async () => { await app.close() })
  await app.register(s3Chunk, { bucket: 'uploads', s3, mode: 'inline', closeGracePeriod: 5_000 })
  await t.rejects(async () => {
    await app.register(async (child) => { await child.register(s3Chunk, { closeGracePeriod: 1_000 }) })
  }, { code: 'FST_S3CHUNK_INVALID_OPTION', message: /"closeGracePeriod"/ })
})
