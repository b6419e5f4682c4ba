// Client filenames are untrusted: they never steer the key out of keyPrefix.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { startApp } from '../support/app.ts'
import { postMultipart } from '../support/multipart.ts'
import { expectNoPendingUploads, freshBucket, listKeys, objectDigest, sha256, testClient, testS3 } from '../support/s3.ts'

const server = await testS3()
const client = testClient(server)

for (const mode of ['workers', 'inline'] as const) {
  t.test(`mode ${mode}: ../../etc/pässwd.bin stays under keyPrefix, originalName kept`, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const { url } = await startApp(t, server, { bucket, mode, keyPrefix: 'media', prefixQueryParam: true })
    const data = randomBytes(6 * 1024 * 1024)
    const hostile = '../../etc/pässwd.bin'
    const response = await postMultipart(`${url}/upload?__prefix=${encodeURIComponent('../../../root/')}`, [
      { name: 'file', filename: hostile, data }
    ])
    t.equal(response.status, 200, response.body)
    const file = response.json()
    t.equal(file.originalName, hostile, 'originalName is what the client sent')
    t.match(file.key, /^media\/root\/pässwd_\d{8}T\d{9}Z-[0-9a-f]{12}\.bin$/, `key ${file.key}`)
    t.notOk(file.key.includes('..'), 'no traversal in the key')
    const keys = await listKeys(client, bucket)
    t.same(keys, [file.key])
    t.ok(keys.every((key) => key.startsWith('media/')), 'every object under keyPrefix')
    t.equal((await objectDigest(client, bucket, file.key)).sha256, sha256(data))
    await expectNoPendingUploads(t, server, client, bucket)
  })
}

t.test('control characters and reserved names are stripped', async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { url } = await startApp(t, server, { bucket, mode: 'inline', appendTimestamp: false })
  for (const [sent, expected] of [['..', 'file'], ['a\tb\u0007c.txt', 'abc.txt'], ['\u202egnp.exe', 'gnp.exe'], ['C:\\temp\\x.bin', 'x.bin']] as const) {
    const response = await postMultipart(`${url}/upload`, [{ name: 'file', filename: sent, data: Buffer.from('x') }])
    t.equal(response.status, 200)
    t.equal(response.json().key, expected, JSON.stringify(sent))
    t.equal(response.json().originalName, sent)
  }
  await expectNoPendingUploads(t, server, client, bucket)
})
