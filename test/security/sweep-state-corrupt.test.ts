// Found by an attack run (helper-49, 2026-12-07; failed before the fix): abortStaleUploads() read
// each tus state without a checksum (the client's responseChecksumValidation is WHEN_REQUIRED)
// and took a body that was "not JSON" for "no state". One byte changed on the way back is a
// transient fault, not a fact: the state was neither swept nor counted live, and its multipart
// upload was aborted by age — a live upload destroyed. (A byte changed inside its uploadId would
// do the same.) Now the state's CRC32 is asked for; without one (`checksum: 'none'`) the state
// is read twice and believed only when both reads agree; a read that fails either is tried again.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { isGetObject } from '../support/fault-proxy.ts'
import { freshBucket, needsStrictS3, testClient, testS3 } from '../support/s3.ts'
import { createUpload, isTusState, patchUpload, startTusBehindProxy, tusRequest } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

// Once: read again, the sweep goes through and spares the upload. Always (with a checksum to
// tell; without one, the same bytes every time are what is stored, as far as anyone can know):
// the sweep of that bucket fails (and says so) rather than guess. No live upload is aborted.
for (const checksum of ['CRC32', 'none'] as const) {
  for (const times of checksum === 'CRC32' ? [1, 1000] : [1]) {
    t.test(`checksum ${checksum}, ${times === 1 ? 'one read' : 'every read'} of a live tus state corrupted: the sweep aborts no live upload`, { skip }, async (t) => {
      const bucket = await freshBucket(t, server, client)
      const { app, endpoint, proxy } = await startTusBehindProxy(t, server, bucket, { checksum })
      const data = randomBytes(12 * MiB)
      const url = await createUpload(endpoint, data.byteLength)
      t.equal((await patchUpload(url, 0, data.subarray(0, 6 * MiB))).status, 204, 'the first PATCH stores a part')
      await new Promise((resolve) => setTimeout(resolve, 1500))
      // The middle byte of the state is what the proxy flips.
      proxy.setRules([{ match: (r) => isGetObject(r) && isTusState(r), fault: { kind: 'flipAnswer' }, times }])
      const outcome = await app.s3Chunk.abortStaleUploads({ olderThan: 1000 }).then((swept) => ({ swept, failure: null }), (error: unknown) => {
        const failure = error as { swept?: { aborted: unknown[] }, failedBuckets?: Array<{ bucket: string }> }
        return { swept: failure.swept, failure }
      })
      proxy.setRules([])
      t.ok(proxy.stats().faults.flipAnswer >= 1, 'the state came back with a byte changed')
      if (times === 1) t.equal(outcome.failure, null, 'read again, the sweep goes through')
      else t.equal(outcome.failure?.failedBuckets?.[0]?.bucket, bucket, 'the sweep says it could not sweep the bucket')
      t.same(outcome.swept?.aborted, [], 'the sweep aborted no live upload')
      t.equal((await tusRequest(url, 'HEAD')).status, 200, 'the upload is alive')
      const rest = await patchUpload(url, 6 * MiB, data.subarray(6 * MiB))
      t.equal(rest.status, 204, `the upload can be finished (got ${rest.status} ${await rest.text()})`)
    })
  }
}
