// Option `workers.filename` (a bundled app's own copy of the worker file): an
// absolute path or a file: URL, kept as given (a URL as its href); anything
// else fails boot naming the option. Unset, the worker beside the package.
import t from 'tap'
import { pathToFileURL } from 'node:url'
import { configOf } from '../../lib/options.ts'
import { defaultWorkerFile } from '../../lib/upload/worker-pool-sender.ts'

t.test('absolute paths and file: URLs are accepted', async (t) => {
  t.equal(configOf({ bucket: 'uploads', workers: { filename: '/srv/app/upload-part.js' } }).workers.filename, '/srv/app/upload-part.js')
  const url = pathToFileURL('/srv/app/upload-part.js')
  t.equal(configOf({ bucket: 'uploads', workers: { filename: url } }).workers.filename, url.href)
  t.equal(configOf({ bucket: 'uploads', workers: { filename: url.href } }).workers.filename, url.href)
})

t.test('a relative path fails boot, naming the option', async (t) => {
  t.throws(() => configOf({ bucket: 'uploads', workers: { filename: './upload-part.js' } }), {
    code: 'FST_S3CHUNK_INVALID_OPTION',
    message: /"workers\.filename": must be an absolute path or a file: URL/
  })
})

t.test('unset: the worker file beside the package', async (t) => {
  t.equal(configOf({ bucket: 'uploads' }).workers.filename, undefined)
  // Run from source here (tsx), so the .ts worker; compiled, dist/workers/upload-part.js.
  t.match(defaultWorkerFile(), /\/workers\/upload-part\.ts$/)
})

t.test('a worker file that does not exist fails at register, not as a crashed thread', async (t) => {
  const { createWorkerPoolSender } = await import('../../lib/upload/worker-pool-sender.ts')
  t.throws(() => createWorkerPoolSender(configOf({ bucket: 'uploads', workers: { filename: '/nonexistent/upload-part.js' } })), {
    code: 'FST_S3CHUNK_INVALID_OPTION',
    message: /"workers\.filename": no such file: \/nonexistent\/upload-part\.js/
  })
})
