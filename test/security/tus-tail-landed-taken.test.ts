// Found in review (helper-33, 2026-12-06; failed before the fix) of d6d916a: a PATCH's final state write lands but its answer is lost; before its
// read-back, another request takes the (now free) hold. The read-back sees the other request's state
// (not byte-equal to the one written), so the PATCH takes its write as "settled without it" and deletes
// its own tail — the tail the state (and the new holder) names.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { GetObjectCommand } from '@aws-sdk/client-s3'
import { startFaultProxy, type FaultRequest } from '../support/fault-proxy.ts'
import { freshBucket, needsStrictS3, pluginS3Options, testClient, testS3 } from '../support/s3.ts'
import { createUpload, isTusState, patchUpload, startTus, tusLeftovers, tusRequest } from '../support/tus.ts'

const KiB = 1024
const MiB = 1024 * KiB
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => { setTimeout(resolve, ms).unref() }) }
const isTail = (request: FaultRequest): boolean => request.path.includes('/.tus/') && request.path.includes('.tail.')

t.test('a final write that landed (answer lost) and was then taken over keeps its tail', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const proxy = await startFaultProxy({ target: server.endpoint })
  t.teardown(async () => { await proxy.close() })
  const { endpoint } = await startTus(t, server, bucket, { s3: { ...pluginS3Options(server), endpoint: proxy.endpoint }, tus: { leaseTimeout: 30 } })
  const total = 8 * MiB
  const url = await createUpload(endpoint, total)

  let statePuts = 0
  let dropped = false
  proxy.setRules([
    // A's PUTs of the state: 1 = taking the hold, 2 = the final write (S3 stores it; A never hears).
    { match: (r) => r.method === 'PUT' && isTusState(r) && ++statePuts === 2 && (dropped = true), fault: { kind: 'dropAnswer' }, times: 1 },
    // A's read-back after the lost answer is slow (S3 slow for it).
    { match: (r) => r.method === 'GET' && isTusState(r) && dropped, fault: { kind: 'delay', ms: 1500 }, times: 1 },
    // B's read of the tail comes after A's read-back.
    { match: (r) => r.method === 'GET' && isTail(r), fault: { kind: 'delay', ms: 3000 }, times: 1 }
  ])

  const aBody = randomBytes(100 * KiB)
  const aAnswer = patchUpload(url, 0, aBody).then(async (r) => ({ status: r.status, text: await r.text() }))
  for (let i = 0; i < 100 && !dropped; i++) await sleep(20)
  t.ok(dropped, 'A\'s final write went (answer dropped)')
  await sleep(150)
  t.comment(`after A's final write landed: ${(await tusLeftovers(client, bucket)).join(' ')}`)
  const head0 = await tusRequest(url, 'HEAD')
  t.comment(`HEAD now: offset ${head0.headers.get('upload-offset')}`)

  // B: the client (its answer from A not come) resumes from the offset HEAD gives.
  const bBody = randomBytes(100 * KiB)
  const bAnswer = patchUpload(url, 100 * KiB, bBody).then(async (r) => ({ status: r.status, text: await r.text() }))
  const a = await aAnswer
  t.comment(`A answered ${a.status} ${a.text}`)
  t.comment(`after A: ${(await tusLeftovers(client, bucket)).join(' ')}`)
  const b = await bAnswer
  t.comment(`B answered ${b.status} ${b.text}`)
  t.equal(b.status, 204, 'B\'s PATCH (after the offset HEAD gave) succeeds')

  const left = await tusLeftovers(client, bucket)
  t.comment(`after B: ${left.join(' ')}`)
  const stateKey = left.find((key) => !key.includes('.tail.'))
  if (stateKey !== undefined) {
    const state = JSON.parse(await (await client.send(new GetObjectCommand({ Bucket: bucket, Key: stateKey }))).Body!.transformToString()) as { tail: number, gen: number, tailBy?: string, offset: number }
    t.comment(`state: offset ${state.offset} tail ${state.tail} gen ${state.gen} tailBy ${state.tailBy}`)
    if (state.tail > 0) {
      const named = `${stateKey}.tail.${state.gen}${state.tailBy !== undefined ? `.${state.tailBy}` : ''}`
      t.ok(left.includes(named), `the tail the state names (${named}) exists`)
    }
  }
  const head = await tusRequest(url, 'HEAD')
  const offset = Number(head.headers.get('upload-offset'))
  t.comment(`HEAD: offset ${offset}`)
  const rest = randomBytes(total - offset)
  const last = await patchUpload(url, offset, rest)
  t.equal(last.status, 204, `the rest finishes the upload (got ${last.status} ${await last.text()})`)
})
