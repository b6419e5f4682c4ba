// Found in review (helper-33, 2026-12-06; failed before the fix) of d6d916a: a PATCH whose hold was taken over, then refused (its bytes not of an
// allowed type), removes the upload unconditionally — the new holder's state and, by the listing
// remove() now does, the new holder's tail: bytes answered 204 are gone and the upload is 404.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { startFaultProxy } from '../support/fault-proxy.ts'
import { freshBucket, needsStrictS3, pluginS3Options, testClient, testS3 } from '../support/s3.ts'
import { pngBytes } from '../support/samples.ts'
import { createUpload, isTusState, patchUpload, slowPatch, startTus, tusLeftovers, tusRequest } from '../support/tus.ts'

const KiB = 1024
const MiB = 1024 * KiB
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => { setTimeout(resolve, ms).unref() }) }

t.test('a refused PATCH whose hold was taken over leaves the new holder\'s upload', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const proxy = await startFaultProxy({ target: server.endpoint })
  t.teardown(async () => { await proxy.close() })
  const { endpoint } = await startTus(t, server, bucket, { allowedTypes: ['image/png'], s3: { ...pluginS3Options(server), endpoint: proxy.endpoint }, tus: { leaseTimeout: 2 } })
  const total = 8 * MiB
  const url = await createUpload(endpoint, total)

  // A: 100 bytes now, the rest (not a PNG) later.
  const aBody = randomBytes(300 * KiB)
  const aAnswer = slowPatch(url, 0, aBody, 100, 3500)
  await sleep(200)
  proxy.setRules([{ match: (request) => request.method === 'PUT' && isTusState(request), fault: { kind: 'delay', ms: 6000 }, times: 1 }])
  await sleep(2400)

  // B takes the lapsed hold and stores 200 KiB of PNG as the tail.
  const bBody = pngBytes(200 * KiB)
  const b = await patchUpload(url, 0, bBody)
  t.equal(b.status, 204, `B's PATCH: 204 (${await b.text()})`)
  t.comment(`after B: ${(await tusLeftovers(client, bucket)).join(' ')}`)
  const a = await aAnswer
  t.comment(`A answered ${a.status} ${a.text}`)
  t.comment(`after A: ${(await tusLeftovers(client, bucket)).join(' ')}`)
  const head = await tusRequest(url, 'HEAD')
  t.equal(head.status, 200, `HEAD: the upload B holds bytes of is still there (got ${head.status})`)
  t.equal(head.headers.get('upload-offset'), String(bBody.byteLength), 'offset: B\'s bytes')
})
