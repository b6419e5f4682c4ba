// Found by an attack run (helper-39, 2026-12-06; failed before the fix): busboy cuts a file at
// maxFileSize and then drops the rest of it silently, so the plugin learnt of the limit only at
// the file's end. An honest 400 MiB file over a 1 MiB limit was read whole before its 413, and a
// file that never ends made the server read and discard ~3 GiB in 5 s before a 408. The 413 now
// comes as the limit is passed, and the connection closes (the rest is never read).
import t from 'tap'
import { startApp } from '../support/app.ts'
import { expectNoPendingUploads, freshBucket, needsStrictS3, testClient, testS3 } from '../support/s3.ts'
import { openSlowClient } from '../support/slow-client.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

// (1 KiB: found in review, helper-40 — busboy cut the file in the chunk that began it, before the
// plugin listened for the cut.)
for (const [route, limit] of [['/upload', MiB], ['/many', MiB], ['/upload', 1024], ['/many', 1024]] as const) {
  t.test(`${route}: a file past maxFileSize (${limit} bytes) is 413 as the limit is passed, not at the file's end`, { skip }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const { url } = await startApp(t, server, { bucket, mode: 'inline', maxFileSize: limit, bodyTimeout: 10_000 })
    // 3 MiB of file, then silence: the file has not ended, and will not for bodyTimeout.
    const sender = await openSlowClient(url, { declaredLength: 400 * MiB, initialBytes: 3 * MiB, path: route })
    t.teardown(() => { sender.close() })
    const started = Date.now()
    const status = await Promise.race([sender.answered, new Promise<null>((resolve) => { setTimeout(() => { resolve(null) }, 8_000).unref() })])
    t.equal(status, 413, `413 (${sender.answer().split('\r\n')[0] ?? ''})`)
    t.ok(Date.now() - started < 8_000, `before bodyTimeout (${Date.now() - started} ms)`)
    t.match(sender.answer(), /connection: close/i, 'and the rest of the body is not read')
    await expectNoPendingUploads(t, server, client, bucket)
  })
}

// The files s3File() reads through without storing (after the first) are bounded the same way.
t.test('/upload: a second, discarded file past maxFileSize is 413 at once too', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { url } = await startApp(t, server, { bucket, mode: 'inline', maxFileSize: MiB, bodyTimeout: 10_000 })
  const sender = await openSlowClient(url, { declaredLength: 400 * MiB, initialBytes: 100 })
  t.teardown(() => { sender.close() })
  // The first file ends; a second begins and passes the limit, then silence.
  sender.write(Buffer.from(`\r\n--${sender.separator}\r\nContent-Disposition: form-data; name="other"; filename="second.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`))
  sender.write(Buffer.alloc(3 * MiB, 0x61))
  const started = Date.now()
  const status = await Promise.race([sender.answered, new Promise<null>((resolve) => { setTimeout(() => { resolve(null) }, 8_000).unref() })])
  t.equal(status, 413, `413 (${sender.answer().split('\r\n')[0] ?? ''})`)
  t.ok(Date.now() - started < 8_000, `before bodyTimeout (${Date.now() - started} ms)`)
  await expectNoPendingUploads(t, server, client, bucket)
})
