// Review (helper-33, 2026-12-06) of d6d916a, which names tails by writer: a state written before the change (no tailBy, tail `<id>.tail.<gen>`)
// goes on across a PATCH, with and without a tail after it, and the upload finishes byte-identical.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { CopyObjectCommand, DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { freshBucket, needsStrictS3, testClient, testS3 } from '../support/s3.ts'
import { createUpload, expectOnlyObject, patchUpload, startTus, tusLeftovers } from '../support/tus.ts'

const KiB = 1024
const MiB = 1024 * KiB
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

t.test('an old-format state and tail work across PATCHes', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { endpoint } = await startTus(t, server, bucket)
  const total = 6 * MiB
  const data = randomBytes(total)
  const url = await createUpload(endpoint, total)
  t.equal((await patchUpload(url, 0, data.subarray(0, 100 * KiB))).status, 204)
  let left = await tusLeftovers(client, bucket)
  const stateKey = left.find((k) => !k.includes('.tail.')) as string
  const tailKey = left.find((k) => k.includes('.tail.')) as string
  // Rewrite as an earlier version left it.
  const state = JSON.parse(await (await client.send(new GetObjectCommand({ Bucket: bucket, Key: stateKey }))).Body!.transformToString())
  t.ok(state.tailBy, 'the new version names a writer')
  const oldTail = `${stateKey}.tail.${state.gen}`
  await client.send(new CopyObjectCommand({ Bucket: bucket, Key: oldTail, CopySource: `${bucket}/${tailKey}` }))
  await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: tailKey }))
  delete state.tailBy
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: stateKey, Body: JSON.stringify(state), ContentType: 'application/json' }))
  // A PATCH that keeps a tail.
  const r2 = await patchUpload(url, 100 * KiB, data.subarray(100 * KiB, 300 * KiB))
  t.equal(r2.status, 204, `second PATCH (${await r2.text()})`)
  left = await tusLeftovers(client, bucket)
  t.comment(left.join(' '))
  t.notOk(left.includes(oldTail), 'the old-named tail is gone')
  // The rest finishes it.
  const r3 = await patchUpload(url, 300 * KiB, data.subarray(300 * KiB))
  t.equal(r3.status, 204, `last PATCH (${await r3.text()})`)
  await expectOnlyObject(t, client, bucket, data)
})
