// tus.maxSize above the rules' maxFileSize was capped silently (Tus-Max-Size said less than the
// app configured; found in a new user's review, helper-48): it is a boot error now.
import t from 'tap'
import Fastify from 'fastify'
import s3Chunk from '../../lib/index.ts'

const s3 = { region: 'us-east-1', endpoint: 'http://127.0.0.1:9', forcePathStyle: true, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } }
const MiB = 1024 * 1024

t.test('tus.maxSize above maxFileSize fails boot, naming both', async (t) => {
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await t.rejects(async () => {
    await app.register(s3Chunk, { bucket: 'uploads', s3, mode: 'inline', maxFileSize: MiB, tus: { maxSize: 2 * MiB } })
    await app.ready()
  }, { code: 'FST_S3CHUNK_INVALID_OPTION', message: /"tus\.maxSize": 2097152 is above the maxFileSize its rules allow \(1048576\)/ })
})

t.test('and above its rule set\'s, naming the set', async (t) => {
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await t.rejects(async () => {
    await app.register(s3Chunk, { bucket: 'uploads', s3, mode: 'inline', maxFileSize: 10 * MiB, rules: { small: { maxFileSize: MiB } }, tus: { rules: 'small', maxSize: 2 * MiB } })
    await app.ready()
  }, { code: 'FST_S3CHUNK_INVALID_OPTION', message: /rule set "small"/ })
})

t.test('within maxFileSize (or unset) it boots, and OPTIONS says it', async (t) => {
  for (const [maxSize, expected] of [[MiB, MiB], [undefined, 4 * MiB]] as const) {
    const app = Fastify()
    t.teardown(async () => { await app.close() })
    await app.register(s3Chunk, { bucket: 'uploads', s3, mode: 'inline', maxFileSize: 4 * MiB, tus: maxSize === undefined ? {} : { maxSize } })
    const answer = await app.inject({ method: 'OPTIONS', url: '/files', headers: { 'tus-resumable': '1.0.0' } })
    t.equal(answer.headers['tus-max-size'], String(expected), `tus.maxSize ${String(maxSize)}: Tus-Max-Size ${expected}`)
  }
})
