// tus-js-client (Node) against the tus endpoint on MinIO: whole uploads, chunked PATCHes, deferred length,
// uploads cut at random offsets and resumed from their URL — every object byte-identical, nothing left behind.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import * as tus from 'tus-js-client'
import { freshBucket, listKeys, needsStrictS3, objectDigest, sha256, testClient, testS3 } from '../support/s3.ts'
import { seededRandom } from '../support/seeded-random.ts'
import { clientUpload, expectClean, startTus } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

async function onlyObject (bucket: string): Promise<string> {
  const keys = await listKeys(client, bucket)
  if (keys.length !== 1) throw new Error(`expected one object, found ${keys.join(', ')}`)
  return keys[0] as string
}

t.test('a whole file in one PATCH arrives byte-identical; only the object remains', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const { endpoint } = await startTus(t, server, bucket)
  const data = randomBytes(12 * MiB + 123)
  await clientUpload(endpoint, data)
  const key = await onlyObject(bucket)
  const digest = await objectDigest(client, bucket, key)
  t.equal(digest.size, data.byteLength)
  t.equal(digest.sha256, sha256(data))
  await expectClean(t, client, bucket)
})

t.test('chunked PATCHes (chunkSize smaller than a part, and not a divisor of it) arrive byte-identical', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const { endpoint } = await startTus(t, server, bucket)
  const data = randomBytes(11 * MiB + 7)
  await clientUpload(endpoint, data, { chunkSize: 3 * MiB + 1 })
  const digest = await objectDigest(client, bucket, await onlyObject(bucket))
  t.equal(digest.sha256, sha256(data))
  await expectClean(t, client, bucket)
})

t.test('deferred length: the length comes with the last PATCH', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const { endpoint } = await startTus(t, server, bucket)
  const data = randomBytes(7 * MiB + 5)
  await clientUpload(endpoint, data, { uploadLengthDeferred: true, chunkSize: 2 * MiB })
  const digest = await objectDigest(client, bucket, await onlyObject(bucket))
  t.equal(digest.sha256, sha256(data))
  await expectClean(t, client, bucket)
})

t.test('a small file (less than a part) in one PATCH', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const { endpoint } = await startTus(t, server, bucket)
  const data = randomBytes(1000)
  await clientUpload(endpoint, data)
  const digest = await objectDigest(client, bucket, await onlyObject(bucket))
  t.equal(digest.sha256, sha256(data))
  await expectClean(t, client, bucket)
})

t.test('uploads cut at random offsets and resumed from the stored URL, several times per file, end byte-identical', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const { endpoint } = await startTus(t, server, bucket)
  const random = seededRandom(1313)
  for (const size of [13 * MiB + 17, 6 * MiB + 1]) {
    const data = randomBytes(size)
    let url: string | null = null
    let cuts = 0
    // Bounded: a few cuts, then one run to the end.
    for (let round = 0; round < 5; round++) {
      const cutAt = Math.floor(random() * size)
      const last = round === 4
      const outcome = await new Promise<'done' | 'cut'>((resolve, reject) => {
        let aborted = false
        const upload: tus.Upload = new tus.Upload(data, {
          endpoint,
          ...(url !== null ? { uploadUrl: url } : {}),
          retryDelays: [],
          metadata: { filename: 'cut.bin' },
          onProgress: (sent) => {
            if (!last && !aborted && sent >= cutAt) {
              aborted = true
              url = upload.url
              // Abort the request in flight (true: keep the upload for a resume).
              upload.abort(false).then(() => { resolve('cut') }, reject)
            }
          },
          onError: (error) => { if (!aborted) reject(error) },
          onSuccess: () => { if (!aborted) resolve('done') }
        })
        upload.start()
      })
      if (outcome === 'done') break
      cuts += 1
      // Give the server the moment to see the cut request end and store what arrived.
      await new Promise((resolve) => setTimeout(resolve, 300))
    }
    t.ok(cuts >= 1, `cut ${cuts} times`)
    const keys = await listKeys(client, bucket)
    const key = keys.find((k) => k.includes('cut')) as string
    const digest = await objectDigest(client, bucket, key)
    t.equal(digest.sha256, sha256(data), `${size} bytes byte-identical after ${cuts} cuts`)
    const { DeleteObjectCommand } = await import('@aws-sdk/client-s3')
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }))
  }
  await expectClean(t, client, bucket)
})
