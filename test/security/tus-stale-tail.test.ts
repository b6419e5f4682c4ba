// Attack (helper-31, 2026-12-06; failed before the fix): a PATCH's tail is written at generation
// gen+1 with If-None-Match: *, before the state write that names it. When that state write
// failed and S3 could not be read back (S3 briefly unavailable) — or the instance died in between
// — the gen+1 tail stayed (left "for the sweep", which spares tails of a live state), and every
// later PATCH that kept a tail wrote gen+1 again: 412 from S3, 502, on every retry, until the
// upload expired. Now the upload goes on once S3 is back. (The PATCH that met S3 down was also
// a 500; it is a 502 now.)
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { startFaultProxy } from '../support/fault-proxy.ts'
import { freshBucket, needsStrictS3, pluginS3Options, testClient, testS3 } from '../support/s3.ts'
import { createUpload, expectOnlyObject, isTusState, patchUpload, startTus, tusLeftovers, tusRequest } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => { setTimeout(resolve, ms).unref() }) }

t.test('after S3 failed a PATCH\'s last state write (tail written), the upload goes on once S3 is back', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const proxy = await startFaultProxy({ target: server.endpoint })
  t.teardown(async () => { await proxy.close() })
  const { endpoint } = await startTus(t, server, bucket, { s3: { ...pluginS3Options(server), endpoint: proxy.endpoint }, tus: { leaseTimeout: 2 } })
  const data = randomBytes(8 * MiB)
  const url = await createUpload(endpoint, data.byteLength)
  t.equal((await patchUpload(url, 0, data.subarray(0, 1 * MiB))).status, 204, 'first PATCH: 1 MiB kept as the tail (gen 1)')
  // S3 becomes unavailable for state objects right after the second PATCH wrote its tail (gen 2).
  let armed = false
  proxy.setRules([
    { match: (request) => { if (request.method === 'PUT' && request.path.includes('.tail.2')) armed = true; return false }, fault: { kind: 'status', status: 503 } },
    { match: (request) => armed && isTusState(request), fault: { kind: 'status', status: 503, code: 'ServiceUnavailable', message: 'down' }, times: 60 }
  ])
  const failed = await patchUpload(url, 1 * MiB, data.subarray(1 * MiB, 2 * MiB))
  t.comment(`PATCH while S3 is down: ${failed.status} ${await failed.text()}`)
  t.equal(failed.status, 502, 'S3 down: 502, a storage failure')
  proxy.setRules([])
  t.comment(`left in .tus: ${(await tusLeftovers(client, bucket)).join(' ')}`)
  await sleep(2500) // the hold lapses
  const head = await tusRequest(url, 'HEAD')
  t.equal(head.headers.get('upload-offset'), String(1 * MiB), 'HEAD: the offset before the failed PATCH')
  const retry = await patchUpload(url, 1 * MiB, data.subarray(1 * MiB, 2 * MiB))
  t.equal(retry.status, 204, `the retry with S3 healthy: 204 (got ${retry.status} ${await retry.text()})`)
  const rest = await patchUpload(url, 2 * MiB, data.subarray(2 * MiB))
  t.equal(rest.status, 204, 'and the rest finishes the upload')
  await expectOnlyObject(t, client, bucket, data)
})
