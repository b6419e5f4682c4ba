// Found in review (helper-53, 2026-12-07; failed before the fix): /s3/complete's promotion
// CopyObject is carried out by S3 but its answer is lost; the SDK's retry meets the copy's own
// object (If-None-Match: 412, as AWS enforces it — MinIO does not hold CopyObject to If-None-Match,
// so the proxy answers the retry 412 for it). The plugin then looks at the final key to tell its own
// copy from another object — and that HeadObject is throttled. ownCopy() took "could not look" for
// "not our copy": promote() then found the key taken, answered 409 FST_S3CHUNK_KEY_EXISTS for the
// upload's own object and deleted the staged upload; the promoted object stayed, never recorded.
// Must hold: never 409 for the object this very call promoted. The look is retried with the
// plugin's `retry` policy (one throttled HeadObject: 200, recorded once); when the policy's
// attempts are spent (here: one), S3's failure (502) with the staged upload kept for a retry.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { api, MiB, params, postToS3, startDirect, finalOf } from './direct-support.ts'
import { testFaultProxy, type FaultRequest } from '../support/fault-proxy.ts'
import { freshBucket, listKeys, needsStrictS3, pluginS3Options, testClient, testS3 } from '../support/s3.ts'

const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

const isCopyObject = (r: FaultRequest): boolean => r.method === 'PUT' && r.headers['x-amz-copy-source'] !== undefined && !r.query.has('uploadId')

// One HeadObject throttled (the SDK's three attempts of it), S3 answering again after: the
// plugin's retry policy looks again (3 attempts), or not (1 attempt: the look stays unanswered,
// and exists() after it would find the key taken).
for (const attempts of [3, 1]) {
  t.test(`/s3/complete: a copy whose answer is lost, then one throttled look (retry.attempts ${attempts}), is never "key exists" for the upload's own object`, { skip }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const proxy = await testFaultProxy(t, server.endpoint)
    const { url, stored } = await startDirect(t, server, bucket, { s3: { ...pluginS3Options(server), endpoint: proxy.endpoint }, retry: { attempts, baseDelayMs: 50, maxDelayMs: 200 } })
    const data = randomBytes(1 * MiB)
    const post = await params(url, 'alice', 'a.bin', 'application/octet-stream')
    t.equal((await postToS3(post.json, data)).status, 204, 'posted to staging')
    let copySeen = false
    proxy.setRules([
      // The copy is carried out; its answer never reaches the plugin.
      { match: (r) => { const hit = isCopyObject(r); if (hit) copySeen = true; return hit }, fault: { kind: 'dropAnswer' }, times: 1 },
      // The SDK's retry meets the object the first attempt made: 412, as AWS answers a conditional copy.
      { match: isCopyObject, fault: { kind: 'status', status: 412, code: 'PreconditionFailed', message: 'At least one of the pre-conditions you specified did not hold' }, times: 1 },
      { match: (r) => copySeen && r.method === 'HEAD', fault: { kind: 'status', status: 503, code: 'SlowDown' }, times: 3 }
    ])
    const answer = await api(`${url}/s3/complete`, 'alice', 'POST', { key: post.json.key })
    proxy.setRules([])
    const keys = await listKeys(client, bucket)
    t.comment(`answer: ${answer.status} ${JSON.stringify(answer.json)}; keys ${JSON.stringify(keys)}; onUploadComplete ${stored.length}`)
    t.not(answer.json?.code, 'FST_S3CHUNK_KEY_EXISTS', 'not 409 "key exists" for the object this very call promoted')
    t.ok(keys.includes(finalOf(post.json.key)), '(the copy did land at the final key)')
    if (attempts > 1) {
      t.equal(answer.status, 200, 'the look is retried: 200')
      t.equal(stored.length, 1, 'recorded once')
      t.equal(answer.json?.key, finalOf(post.json.key), 'answered with the final key')
      t.notOk(keys.includes(post.json.key), 'the staged upload is deleted once promoted')
    } else {
      t.equal(answer.status, 502, 'S3 would not say what is at the key: S3\'s failure (502)')
      t.equal(stored.length, 0, 'not recorded')
      t.ok(keys.includes(post.json.key), 'the staged upload is kept for a retry')
    }
  })
}
