// Attack (found by an attack run): one direct multipart upload's Complete sent eight times at
// once, 3 ms apart, by its own user. Each request passed the ownership check (ListParts) before
// any Complete ran; the losers' Completes failed (NoSuchUpload, 412), and each then found the
// object by its ETag — the lost-answer recovery — and recorded it: onUploadComplete ran up to
// 6 times for one object (an app counting quota or granting credit per upload counts it 6
// times). Only a Complete whose own answer may have been lost is recovered now.
//
// The same for a POST upload's /s3/complete: every call passed the check of the staged object
// and promoted and recorded it (up to 4 times with overwrite on; twice with it off: MinIO does
// not hold CopyObject to If-None-Match). One call claims the promotion now.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { api, MiB, multipartSent, params, postToS3, startDirect } from './direct-support.ts'
import { PutObjectCommand } from '@aws-sdk/client-s3'
import { CLAIM_STALE_MS } from '../../lib/direct/claim.ts'
import { claimKeyOf } from '../../lib/direct/keys.ts'
import { testFaultProxy, type FaultRequest } from '../support/fault-proxy.ts'
import { freshBucket, listKeys, needsStrictS3, pendingUploads, pluginS3Options, testClient, testS3 } from '../support/s3.ts'

const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

for (const overwrite of [false, true]) {
  t.test(`the same Complete sent 8 times at once (overwrite ${String(overwrite)}): one 200, one onUploadComplete`, { skip, timeout: 120_000 }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const { url, stored } = await startDirect(t, server, bucket, { overwrite })
    const data = randomBytes(6 * MiB)
    // Bounded: 4 rounds (the attack recorded twice or more within 4 rounds in every run tried).
    for (let round = 1; round <= 4; round++) {
      stored.length = 0
      const { uploadId, q, parts } = await multipartSent(url, 'alice', `race-${round}.bin`, data)
      const answers = await Promise.all(Array.from({ length: 8 }, async (_, i) => {
        await new Promise((resolve) => setTimeout(resolve, i * 3))
        return await api(`${url}/s3/multipart/${encodeURIComponent(uploadId)}/complete?${q}`, 'alice', 'POST', { parts })
      }))
      const statuses = answers.map((answer) => answer.status)
      t.equal(stored.length, 1, `round ${round}: onUploadComplete once (answers ${statuses.join(',')})`)
      t.equal(statuses.filter((status) => status === 200).length, 1, `round ${round}: one 200`)
      t.same(statuses.filter((status) => status !== 200 && (status < 400 || status >= 500)), [], `round ${round}: the others are refused with a 4xx`)
    }
    t.equal((await listKeys(client, bucket)).length, 4, 'four objects')
    t.same(await pendingUploads(client, bucket), [], 'no upload left open')
  })
}

for (const overwrite of [false, true]) {
  t.test(`a POST upload's /s3/complete sent 8 times at once (overwrite ${String(overwrite)}): one 200, one onUploadComplete`, { skip, timeout: 120_000 }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const { url, stored } = await startDirect(t, server, bucket, { overwrite })
    // Bounded: 4 rounds (the attack recorded twice or more within 4 rounds in every run tried).
    for (let round = 1; round <= 4; round++) {
      stored.length = 0
      const post = await params(url, 'alice', `post-race-${round}.bin`, 'application/octet-stream')
      t.equal((await postToS3(post.json, randomBytes(100_000))).status, 204, `round ${round}: posted to S3`)
      const answers = await Promise.all(Array.from({ length: 8 }, async (_, i) => {
        await new Promise((resolve) => setTimeout(resolve, i * 3))
        return await api(`${url}/s3/complete`, 'alice', 'POST', { key: post.json.key })
      }))
      const statuses = answers.map((answer) => answer.status)
      t.equal(stored.length, 1, `round ${round}: onUploadComplete once (answers ${statuses.join(',')})`)
      t.equal(statuses.filter((status) => status === 200).length, 1, `round ${round}: one 200`)
      t.same(statuses.filter((status) => status !== 200 && (status < 400 || status >= 500)), [], `round ${round}: the others are refused with a 4xx`)
    }
    const keys = await listKeys(client, bucket)
    t.equal(keys.filter((key) => !key.includes('/.staging/')).length, 4, 'four objects')
    t.same(keys.filter((key) => key.includes('/.staging/') && !key.includes('/.claims/')), [], 'no staged object left')
  })
}

t.test('/s3/complete: a promotion that fails gives its claim back (a retry succeeds); a claim whose answer was lost is still the call\'s', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const proxy = await testFaultProxy(t, server.endpoint)
  const { url, stored } = await startDirect(t, server, bucket, { s3: { ...pluginS3Options(server), endpoint: proxy.endpoint } })
  const data = randomBytes(100_000)
  const post = await params(url, 'alice', 'retry.bin', 'application/octet-stream')
  t.equal((await postToS3({ ...post.json, url: post.json.url.replace(proxy.endpoint, server.endpoint) }, data)).status, 204)
  // Every copy to the final key refused (the SDK's retries too): the call fails, its claim is given back.
  proxy.setRules([{ match: (request) => request.headers['x-amz-copy-source'] !== undefined, fault: { kind: 'status', status: 500 } }])
  const failed = await api(`${url}/s3/complete`, 'alice', 'POST', { key: post.json.key })
  t.equal(failed.status, 502, 'the promotion failed')
  // The claim's answer lost (S3 stored it): the SDK's retry meets 412, and the claim is recognised as this call's.
  proxy.setRules([{ match: (request) => request.method === 'PUT' && request.path.includes('/.claims/'), fault: { kind: 'dropAnswer' }, times: 1 }])
  const retried = await api(`${url}/s3/complete`, 'alice', 'POST', { key: post.json.key })
  t.equal(proxy.stats().faults.dropAnswer, 1, 'the claim\'s answer was dropped')
  t.equal(retried.status, 200, `the retry promotes it (${JSON.stringify(retried.json).slice(0, 200)})`)
  t.equal(stored.length, 1, 'recorded once')
})

// From review: a claim is never taken over, so one left behind (the server killed mid-promotion,
// or its delete refused) made every later /s3/complete of that upload 409 until the sweep.
t.test('/s3/complete: a claim left by a dead call blocks only while it could still be live', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { url, stored } = await startDirect(t, server, bucket)
  const post = await params(url, 'alice', 'left.bin', 'application/octet-stream')
  t.equal((await postToS3(post.json, randomBytes(10_000))).status, 204)
  const claimKey = claimKeyOf('media', post.json.key as string)
  const leave = async (at: number): Promise<void> => { await client.send(new PutObjectCommand({ Bucket: bucket, Key: claimKey, Body: `deadbeef ${at}` })) }
  await leave(Date.now())
  t.equal((await api(`${url}/s3/complete`, 'alice', 'POST', { key: post.json.key })).status, 409, 'a fresh claim of another call: 409')
  await leave(Date.now() - CLAIM_STALE_MS - 1000)
  const done = await api(`${url}/s3/complete`, 'alice', 'POST', { key: post.json.key })
  t.equal(done.status, 200, 'a stale one is taken over')
  t.equal(stored.length, 1)
  t.same((await listKeys(client, bucket)).filter((key) => key.includes('/.staging/')), [], 'the claim is removed after')
})

t.test('/s3/complete: a claim whose every answer is lost (maxAttempts 1) is still the call\'s; a store refusing conditional writes (501) promotes unclaimed', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const proxy = await testFaultProxy(t, server.endpoint)
  const { url, stored } = await startDirect(t, server, bucket, { s3: { ...pluginS3Options(server), endpoint: proxy.endpoint, maxAttempts: 1 } })
  const isClaimWrite = (request: FaultRequest): boolean => request.method === 'PUT' && request.path.includes('/.claims/')
  for (const [name, fault] of [['answer lost', { kind: 'dropAnswer' }], ['501', { kind: 'status', status: 501, code: 'NotImplemented' }]] as const) {
    const post = await params(url, 'alice', `${name.replace(' ', '-')}.bin`, 'application/octet-stream')
    t.equal((await postToS3({ ...post.json, url: post.json.url.replace(proxy.endpoint, server.endpoint) }, randomBytes(10_000))).status, 204)
    proxy.setRules([{ match: isClaimWrite, fault, times: 1 }])
    const done = await api(`${url}/s3/complete`, 'alice', 'POST', { key: post.json.key })
    t.equal(done.status, 200, `${name}: promoted (${JSON.stringify(done.json).slice(0, 160)})`)
  }
  t.equal(stored.length, 2)
  t.same((await listKeys(client, bucket)).filter((key) => key.includes('/.staging/')), [], 'no claim or staged object left')
})
