// Found by an attack run (helper-49, 2026-12-07; failed before the fix): abortStaleUploads() read
// each tus state without a checksum (the client's responseChecksumValidation is WHEN_REQUIRED)
// and took a body that was "not JSON" for "no state". One byte changed on the way back is a
// transient fault, not a fact: the state was neither swept nor counted live, and its multipart
// upload was aborted by age — a live upload destroyed. (A byte changed inside its uploadId would
// do the same.) Now the state's CRC32 is asked for; without one (`checksum: 'none'`) the state
// is read twice and believed only when both reads agree. Either way this sweep fails (and says
// so); none aborts a live upload.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { testFaultProxy, isGetObject } from '../support/fault-proxy.ts'
import { freshBucket, needsStrictS3, pluginS3Options, testClient, testS3 } from '../support/s3.ts'
import { createUpload, isTusState, patchUpload, startTus, tusRequest } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

for (const checksum of ['CRC32', 'none'] as const) {
  t.test(`checksum ${checksum}: a sweep whose read of a live tus state comes back corrupted does not abort that upload`, { skip }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const proxy = await testFaultProxy(t, server.endpoint)
    const { app, endpoint } = await startTus(t, server, bucket, { checksum, s3: { ...pluginS3Options(server), endpoint: proxy.endpoint } })
    const data = randomBytes(12 * MiB)
    const url = await createUpload(endpoint, data.byteLength)
    t.equal((await patchUpload(url, 0, data.subarray(0, 6 * MiB))).status, 204, 'the first PATCH stores a part')
    await new Promise((resolve) => setTimeout(resolve, 1500))
    // Every byte of the state in turn would do; the middle one is what the proxy flips.
    proxy.setRules([{ match: (r) => isGetObject(r) && isTusState(r), fault: { kind: 'flipAnswer' }, times: 1 }])
    const failure = await app.s3Chunk.abortStaleUploads({ olderThan: 1000 }).then(() => null, (error: unknown) => error as { swept?: { aborted: unknown[] }, failedBuckets?: Array<{ bucket: string }> })
    proxy.setRules([])
    t.equal(proxy.stats().faults.flipAnswer, 1, 'the state came back with a byte changed')
    t.equal(failure?.failedBuckets?.[0]?.bucket, bucket, 'the sweep says it could not sweep the bucket')
    t.same(failure?.swept?.aborted, [], 'the sweep aborted no live upload')
    t.equal((await tusRequest(url, 'HEAD')).status, 200, 'the upload is alive')
    const rest = await patchUpload(url, 6 * MiB, data.subarray(6 * MiB))
    t.equal(rest.status, 204, `the upload can be finished (got ${rest.status} ${await rest.text()})`)
    // And a sweep with nothing in the way spares it (the upload finished: nothing of it left to sweep).
    t.same((await app.s3Chunk.abortStaleUploads({ olderThan: 1000 })).aborted, [], 'the next sweep goes through')
  })
}
