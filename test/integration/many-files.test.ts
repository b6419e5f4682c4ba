// Several files and fields in one request, each file stored as it arrives.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { startApp } from '../support/app.ts'
import { postMultipart, type FormPart } from '../support/multipart.ts'
import { expectNoPendingUploads, freshBucket, listKeys, objectDigest, sha256, testClient, testS3 } from '../support/s3.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)

for (const mode of ['workers', 'inline'] as const) {
  t.test(`mode ${mode}: s3Files() stores every file and s3Fields() has every field`, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const { url } = await startApp(t, server, { bucket, mode, appendTimestamp: false })
    const files = [randomBytes(12 * MiB + 3), randomBytes(10), randomBytes(0), randomBytes(6 * MiB)]
    const parts: FormPart[] = [
      { name: 'album', value: 'holiday' },
      { name: 'a', filename: 'one.bin', data: files[0]! },
      { name: 'tag', value: 'x' },
      { name: 'b', filename: 'two.txt', contentType: 'text/plain', data: files[1]! },
      { name: 'c', filename: 'empty.dat', data: files[2]! },
      { name: 'tag', value: 'y' },
      { name: 'd', filename: 'four.bin', data: files[3]! },
      { name: 'after', value: 'last' }
    ]
    const response = await postMultipart(`${url}/many`, parts)
    t.equal(response.status, 200, response.body.slice(0, 300))
    const body = response.json()
    t.same(body.files.map((f: { fieldName: string }) => f.fieldName), ['a', 'b', 'c', 'd'], 'files in body order')
    t.same(body.files.map((f: { parts: number }) => f.parts), [3, 0, 0, 2])
    t.same(body.fields, { album: 'holiday', tag: ['x', 'y'], after: 'last' }, 'fields, repeated names as arrays')
    t.same(await listKeys(client, bucket), ['empty.dat', 'four.bin', 'one.bin', 'two.txt'])
    for (const [i, file] of body.files.entries()) {
      const stored = await objectDigest(client, bucket, file.key)
      t.equal(stored.sha256, sha256(files[i]!), `${file.key} identical`)
    }
    await expectNoPendingUploads(t, server, client, bucket)
  })

  t.test(`mode ${mode}: s3File() stores the first file only and still reads the fields after it`, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const { url } = await startApp(t, server, { bucket, mode, appendTimestamp: false }, (app) => {
      app.post('/first', async (request) => ({ file: await request.s3File(), fields: request.s3Fields() }))
    })
    const first = randomBytes(7 * MiB)
    const response = await postMultipart(`${url}/first`, [
      { name: 'before', value: '1' },
      { name: 'doc', filename: 'first.bin', data: first },
      { name: 'middle', value: '2' },
      { name: 'doc2', filename: 'second.bin', data: randomBytes(6 * MiB) },
      { name: 'after', value: '3' }
    ])
    t.equal(response.status, 200, response.body.slice(0, 300))
    const body = response.json()
    t.equal(body.file.key, 'first.bin')
    t.same(body.fields, { before: '1', middle: '2', after: '3' })
    t.same(await listKeys(client, bucket), ['first.bin'], 'the second file was not stored')
    t.equal((await objectDigest(client, bucket, 'first.bin')).sha256, sha256(first))
    await expectNoPendingUploads(t, server, client, bucket)
  })
}
