// Files of every interesting size go through a real server into real S3, in
// both modes, and come back byte-identical.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { startApp } from '../support/app.ts'
import { postMultipart } from '../support/multipart.ts'
import { expectNoPendingUploads, freshBucket, objectDigest, sha256, testClient, testS3 } from '../support/s3.ts'

const MiB = 1024 * 1024
const P = 5 * MiB
const server = await testS3()
const client = testClient(server)

const cases: Array<{ size: number, parts: number }> = [
  { size: 0, parts: 0 },
  { size: 1, parts: 0 },
  { size: P - 1, parts: 0 },
  { size: P, parts: 0 },
  { size: P + 1, parts: 2 },
  { size: 3 * P + 7, parts: 4 },
  { size: 64 * MiB, parts: 13 }
]

for (const mode of ['workers', 'inline'] as const) {
  t.test(`mode ${mode}`, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const { app, url } = await startApp(t, server, { bucket, mode, keyPrefix: 'media', partSize: P })
    for (const { size, parts } of cases) {
      const data = randomBytes(size)
      const response = await postMultipart(`${url}/upload`, [
        { name: 'title', value: 'a test file' },
        { name: 'upload', filename: `data-${size}.bin`, contentType: 'application/x-test', data }
      ])
      t.equal(response.status, 200, `${size} bytes: HTTP 200 ${response.status === 200 ? '' : response.body}`)
      const file = response.json()
      t.match(file, {
        fieldName: 'upload',
        originalName: `data-${size}.bin`,
        bucket,
        size,
        contentType: 'application/x-test',
        parts,
        // s3rver does not form multipart ETags like S3 does.
        etag: parts === 0 || !server.strict ? /^[0-9a-f]{32}/ : new RegExp(`^[0-9a-f]{32}-${parts}$`)
      }, `${size} bytes: the S3File`)
      t.match(file.key, /^media\/data-\d+_\d{8}T\d{9}Z-[0-9a-f]{12}\.bin$/, 'key under keyPrefix with a timestamp')
      t.equal(file.location, `${server.endpoint}/${bucket}/${file.key}`)
      const stored = await objectDigest(client, bucket, file.key)
      t.equal(stored.size, size, `${size} bytes: stored size`)
      t.equal(stored.sha256, sha256(data), `${size} bytes: stored bytes identical (SHA-256)`)
      t.equal(stored.contentType, 'application/x-test', 'content type stored')
    }
    const stats = app.s3Chunk.stats()
    t.equal(stats.uploadsInFlight, 0)
    t.equal(stats.bufferedBytes, 0, 'all part buffers released')
    if (mode === 'workers') t.ok((stats.pool?.completed ?? 0) >= 2 + 4 + 13, `parts went through the worker pool (${stats.pool?.completed} tasks)`)
    else t.equal(stats.pool, null, 'inline mode has no pool')
    await expectNoPendingUploads(t, server, client, bucket)
  })
}
