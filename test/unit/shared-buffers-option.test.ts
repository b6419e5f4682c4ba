// workers.sharedBuffers: whole parts in SharedArrayBuffers (the default in workers mode), or moved ArrayBuffers.
import t from 'tap'
import { Engine } from '../../lib/engine.ts'
import { configOf } from '../../lib/options.ts'

const s3 = { region: 'us-east-1', endpoint: 'http://127.0.0.1:9', forcePathStyle: true, credentials: { accessKeyId: 'k', secretAccessKey: 's' } }

for (const [options, shared] of [
  [{}, true],
  [{ workers: { sharedBuffers: false } }, false],
  [{ mode: 'inline' }, false],
  [{ mode: 'inline', workers: { sharedBuffers: true } }, false]
] as const) {
  t.test(`${JSON.stringify(options)}: the part buffer pool is ${shared ? '' : 'not '}shared`, async (t) => {
    const engine = new Engine(configOf({ bucket: 'uploads', s3, ...options }))
    t.teardown(async () => { await engine.close() })
    t.equal(engine.buffers.shared, shared)
  })
}
