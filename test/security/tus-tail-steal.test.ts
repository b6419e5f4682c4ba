// Found in review (helper-32, 2026-12-06) of 576ff32, which had a PATCH delete a tail of its
// generation it met on 412 (a stray left by a failed write) and write its own. The 412 is also
// what a writer whose hold was taken over meets: the new holder wrote that generation's tail and
// its state names it. The stale writer (its renewal slow, so it had not noticed) deleted the
// holder's tail, wrote its own, then — its hold gone — deleted that too: the state named a tail
// that no longer existed, the bytes answered 204 were lost, and every later PATCH was a 500.
// Tails now carry their writer's hold in their name: no writer meets, or removes, another's.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { GetObjectCommand } from '@aws-sdk/client-s3'
import { startFaultProxy } from '../support/fault-proxy.ts'
import { freshBucket, needsStrictS3, pluginS3Options, testClient, testS3 } from '../support/s3.ts'
import { createUpload, isTusState, patchUpload, slowPatch, startTus, tusLeftovers, tusRequest } from '../support/tus.ts'

const KiB = 1024
const MiB = 1024 * KiB
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => { setTimeout(resolve, ms).unref() }) }

t.test('a PATCH whose hold was taken over does not delete the new holder\'s tail', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const proxy = await startFaultProxy({ target: server.endpoint })
  t.teardown(async () => { await proxy.close() })
  const { endpoint } = await startTus(t, server, bucket, { s3: { ...pluginS3Options(server), endpoint: proxy.endpoint }, tus: { leaseTimeout: 2 } })
  const total = 8 * MiB
  const url = await createUpload(endpoint, total)

  // A: a PATCH whose body comes slowly (300 KiB: 100 now, 200 later).
  const aBody = randomBytes(300 * KiB)
  const aAnswer = slowPatch(url, 0, aBody, 100 * KiB, 3500)
  await sleep(200)
  // A's next renewal is slow (S3 slow for it): the hold lapses meanwhile.
  proxy.setRules([{ match: (request) => request.method === 'PUT' && isTusState(request), fault: { kind: 'delay', ms: 6000 }, times: 1 }])
  await sleep(2400)

  // B: the client's retry (a new connection) takes the lapsed hold and stores 200 KiB as the tail.
  const bBody = randomBytes(200 * KiB)
  const b = await patchUpload(url, 0, bBody)
  t.equal(b.status, 204, `B's PATCH: 204 (${await b.text()})`)
  t.comment(`after B: ${(await tusLeftovers(client, bucket)).join(' ')}`)

  const a = await aAnswer
  t.comment(`A answered ${a.status} ${a.text}`)
  const left = await tusLeftovers(client, bucket)
  t.comment(`after A: ${left.join(' ')}`)
  const head = await tusRequest(url, 'HEAD')
  t.equal(head.headers.get('upload-offset'), String(200 * KiB), 'HEAD: B\'s 200 KiB')
  const tailKey = left.find((key) => key.includes('.tail.'))
  t.ok(tailKey !== undefined, 'the tail B\'s state names still exists')
  if (tailKey !== undefined) {
    const got = Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: bucket, Key: tailKey }))).Body!.transformToByteArray())
    t.ok(got.equals(bBody), `the tail holds B's bytes (got ${got.byteLength} bytes, A's: ${got.equals(aBody)})`)
  }
  const rest = randomBytes(total - 200 * KiB)
  const last = await patchUpload(url, 200 * KiB, rest)
  t.equal(last.status, 204, `the rest finishes the upload (got ${last.status} ${await last.text()})`)
})

t.test('the other order: the stale PATCH wrote its tail first, the new holder replaced it, the stale one then deletes it', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const proxy = await startFaultProxy({ target: server.endpoint })
  t.teardown(async () => { await proxy.close() })
  const { endpoint } = await startTus(t, server, bucket, { s3: { ...pluginS3Options(server), endpoint: proxy.endpoint }, tus: { leaseTimeout: 2 } })
  const total = 8 * MiB
  const url = await createUpload(endpoint, total)
  // A's renewals are slow from the start (its hold lapses while it still runs).
  let aHeld = false
  proxy.setRules([
    { match: (request) => { if (request.method === 'PUT' && isTusState(request)) { if (!aHeld) { aHeld = true; return false } return true } return false }, fault: { kind: 'delay', ms: 6000 }, times: 1 }
  ])
  const aBody = randomBytes(300 * KiB)
  const aAnswer = patchUpload(url, 0, aBody)
  await sleep(2600)
  t.comment(`A's tail is written: ${(await tusLeftovers(client, bucket)).join(' ')}`)
  const bBody = randomBytes(200 * KiB)
  const b = await patchUpload(url, 0, bBody)
  t.equal(b.status, 204, `B's PATCH: 204 (${await b.text()})`)
  const a = await aAnswer
  t.comment(`A answered ${a.status} ${await a.text()}`)
  const left = await tusLeftovers(client, bucket)
  t.comment(`after A: ${left.join(' ')}`)
  const head = await tusRequest(url, 'HEAD')
  const offset = Number(head.headers.get('upload-offset'))
  t.comment(`HEAD offset ${offset}`)
  const done = offset === 200 * KiB ? bBody : Buffer.alloc(0)
  const last = await patchUpload(url, offset, randomBytes(total - offset))
  t.equal(last.status, 204, `the rest finishes the upload after B's 204 (got ${last.status} ${await last.text()}; ${done.byteLength} bytes acknowledged)`)
})
