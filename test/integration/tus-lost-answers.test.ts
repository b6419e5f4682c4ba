// tus uploads when S3 carries a request out but its answer never reaches the plugin (a fault
// proxy between the plugin and S3 drops it): the plugin reads back what S3 stored rather than
// guess, so an upload is neither broken nor left with an open multipart upload.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { startFaultProxy, type FaultRequest } from '../support/fault-proxy.ts'
import { freshBucket, needsStrictS3, pluginS3Options, testClient, testS3 } from '../support/s3.ts'
import { createUpload, expectOnlyObject, patchUpload, startTus, tusRequest } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

/** A conditional rewrite of a tus state object (`.tus/<id>`, not a tail): a hold taken, renewed or given back, or a PATCH's last write. */
const isStateRewrite = (request: FaultRequest): boolean =>
  request.method === 'PUT' && request.path.includes('/.tus/') && !request.path.includes('.tail.') && request.headers['if-match'] !== undefined

// The PATCH's last write (offset, parts, tail) landed, its answer lost. The plugin used to take
// it as lost: it deleted the tail object that state names, and every later PATCH failed (500)
// reading it until the upload expired.
t.test('a PATCH\'s last state write stored but its answer lost: the PATCH counts, the upload goes on', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const proxy = await startFaultProxy({ target: server.endpoint })
  t.teardown(async () => { await proxy.close() })
  const { endpoint } = await startTus(t, server, bucket, { s3: { ...pluginS3Options(server), endpoint: proxy.endpoint } })
  const data = randomBytes(12 * MiB)
  const url = await createUpload(endpoint, data.byteLength)
  // The first PATCH rewrites the state twice: its hold, then its last write (the second).
  let rewrites = 0
  proxy.setRules([{ match: (request) => isStateRewrite(request) && ++rewrites === 2, fault: { kind: 'dropAnswer' } }])
  const first = await patchUpload(url, 0, data.subarray(0, 7 * MiB))
  t.equal(proxy.stats().faults.dropAnswer, 1, 'the last write\'s answer was dropped')
  t.equal(first.status, 204, 'the PATCH is answered as the write that landed says')
  t.equal(first.headers.get('upload-offset'), String(7 * MiB))
  proxy.setRules([])
  t.equal((await tusRequest(url, 'HEAD')).headers.get('upload-offset'), String(7 * MiB), 'HEAD agrees')
  t.equal((await patchUpload(url, 7 * MiB, data.subarray(7 * MiB))).status, 204, 'the next PATCH reads the tail and finishes')
  await expectOnlyObject(t, client, bucket, data)
})
