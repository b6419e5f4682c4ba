// Memory per upload stays near (partConcurrency + 1) × partSize, however big the file.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { startApp } from '../support/app.ts'
import { postMultipart } from '../support/multipart.ts'
import { expectNoPendingUploads, freshBucket, objectDigest, sha256, testClient, testS3 } from '../support/s3.ts'

const MiB = 1024 * 1024
const P = 5 * MiB
const server = await testS3()
const client = testClient(server)

for (const mode of ['workers', 'inline'] as const) {
  for (const partConcurrency of [1, 3]) {
    t.test(`mode ${mode}, partConcurrency ${partConcurrency}: peak part memory ≤ (partConcurrency + 1) × partSize`, async (t) => {
      const bucket = await freshBucket(t, server, client)
      const { app, url } = await startApp(t, server, { bucket, mode, partSize: P, partConcurrency })
      const data = randomBytes(48 * MiB)
      const response = await postMultipart(`${url}/upload`, [{ name: 'file', filename: 'big.bin', data }])
      t.equal(response.status, 200)
      const stats = app.s3Chunk.stats()
      const bound = (partConcurrency + 1) * P
      t.ok(stats.peakBufferedBytes <= bound, `peak ${stats.peakBufferedBytes / MiB} MiB ≤ ${bound / MiB} MiB for a 48 MiB file`)
      t.ok(stats.peakBufferedBytes >= P, 'parts were buffered (the figure is real)')
      t.equal(stats.bufferedBytes, 0)
      t.equal((await objectDigest(client, bucket, response.json().key)).sha256, sha256(data))
      await expectNoPendingUploads(t, server, client, bucket)
    })
  }
}
