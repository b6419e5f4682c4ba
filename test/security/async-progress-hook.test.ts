// Found in review: lib/upload/progress.ts dropped what an onProgress hook throws ("a hook that
// throws is not the upload's problem") — but only a synchronous throw. An async hook (an app that
// awaits its own bookkeeping) that rejects leaves an unhandled rejection, which under Node's
// default (--unhandled-rejections=throw) takes the whole server process down, every upload in it.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { startApp } from '../support/app.ts'
import { postMultipart } from '../support/multipart.ts'
import { freshBucket, needsStrictS3, testS3 } from '../support/s3.ts'

const server = await testS3()
const skip = needsStrictS3(server)

t.test('an async onProgress hook that rejects does not leave an unhandled rejection', { skip }, async (t) => {
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
  // Listening replaces Node's default (crash) for this test, so the test can report it.
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.off('unhandledRejection', onUnhandled) })
  const bucket = await freshBucket(t, server)
  const { url } = await startApp(t, server, { bucket, mode: 'inline', onProgress: async () => { throw new Error('the app\'s progress store is down') } })
  const answer = await postMultipart(`${url}/upload`, [{ name: 'file', filename: 'a.bin', contentType: 'application/octet-stream', data: randomBytes(1024) }])
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(answer.status, 200, 'the upload is stored')
  t.same(unhandled.map(String), [], 'no unhandled rejection (Node\'s default would end the process)')
})
