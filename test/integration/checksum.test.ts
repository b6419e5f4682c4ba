// Checksums are computed where the part is sent and verified by S3; the object's checksum comes back.
import t from 'tap'
import { HeadObjectCommand } from '@aws-sdk/client-s3'
import { randomBytes } from 'node:crypto'
import { startApp } from '../support/app.ts'
import { postMultipart } from '../support/multipart.ts'
import { expectNoPendingUploads, freshBucket, needsStrictS3, objectDigest, sha256, testClient, testS3 } from '../support/s3.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

for (const checksum of ['CRC32', 'CRC32C', 'SHA256'] as const) {
  for (const mode of ['workers', 'inline'] as const) {
    t.test(`${checksum}, mode ${mode}`, { skip }, async (t) => {
      const bucket = await freshBucket(t, server, client)
      const { url } = await startApp(t, server, { bucket, mode, checksum })
      for (const size of [1000, 12 * MiB]) {
        const data = randomBytes(size)
        const response = await postMultipart(`${url}/upload`, [{ name: 'file', filename: 'c.bin', data }])
        t.equal(response.status, 200, response.body.slice(0, 300))
        const file = response.json()
        t.match(file.checksum, /^[A-Za-z0-9+/=]+(-\d+)?$/, `${size} bytes: checksum ${file.checksum}`)
        const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: file.key, ChecksumMode: 'ENABLED' }))
        t.equal(head[`Checksum${checksum}`], file.checksum, 'S3 holds the same checksum')
        t.equal((await objectDigest(client, bucket, file.key)).sha256, sha256(data))
      }
      await expectNoPendingUploads(t, server, client, bucket)
    })
  }
}
