// Found in a new user's review (helper-48, 2026-12-07; failed before the fix): past maxFields,
// @fastify/multipart keeps busboy's fieldsLimit error until the body's end, and busboy goes on
// handing over files (it only drops the extra fields). A file after the limit was passed was
// stored, yielded and recorded, and the 413 listed it among the files "stored before the
// failure"; the extra field was dropped silently. The plugin now counts fields itself: the
// field past the limit is 413 where it stands, and no file after it is stored.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { startApp } from '../support/app.ts'
import { postMultipart } from '../support/multipart.ts'
import { expectNoPendingUploads, freshBucket, listKeys, needsStrictS3, testClient, testS3 } from '../support/s3.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

for (const route of ['/many', '/upload'] as const) {
  t.test(`${route}: a field past maxFields is 413 where it stands; no file after it is stored`, { skip }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const recorded: string[] = []
    const { url } = await startApp(t, server, { bucket, mode: 'inline', maxFields: 1, appendTimestamp: false, onUploadComplete: (file) => { recorded.push(file.key) } })
    const answer = await postMultipart(`${url}${route}`, [
      { name: 'file', filename: 'first.bin', data: randomBytes(1024) },
      { name: 'a', value: '1' },
      { name: 'b', value: '2' },
      { name: 'later', filename: 'after-the-limit.bin', data: randomBytes(6 * MiB) }
    ])
    t.equal(answer.status, 413, `413 (${answer.body.slice(0, 200)})`)
    t.match(answer.body, /more than 1 fields/, 'it says which limit')
    t.notMatch(answer.body, /after-the-limit/, 'the file after the limit is not among those said stored')
    const keys = await listKeys(client, bucket)
    t.notOk(keys.includes('after-the-limit.bin'), `the file after the limit is not stored (stored: ${keys.join(', ')})`)
    t.notOk(recorded.includes('after-the-limit.bin'), 'nor recorded')
    // s3Files() keeps a file stored before the failure; s3File() commits nothing once the body fails.
    t.same(keys, route === '/many' ? ['first.bin'] : [], route === '/many' ? 'the file before the limit stays stored' : 's3File() stored nothing')
    await expectNoPendingUploads(t, server, client, bucket)
  })
}

// The limit itself is kept: exactly maxFields fields pass.
t.test('maxFields fields are accepted', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { url } = await startApp(t, server, { bucket, mode: 'inline', maxFields: 2, appendTimestamp: false })
  const answer = await postMultipart(`${url}/many`, [
    { name: 'a', value: '1' },
    { name: 'file', filename: 'one.bin', data: randomBytes(1024) },
    { name: 'b', value: '2' },
    { name: 'second', filename: 'two.bin', data: randomBytes(1024) }
  ])
  t.equal(answer.status, 200, answer.body.slice(0, 200))
  t.same(answer.json().fields, { a: '1', b: '2' }, 'both fields')
  t.equal(answer.json().files.length, 2, 'both files')
})
