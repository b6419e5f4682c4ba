// Found in review (helper-53, 2026-12-07; failed before the fix): a direct multipart upload's
// Complete succeeds (200, the object is stored), then the check of the object is throttled once —
// its HeadObject (503 through the SDK's three attempts), or the ranged GET of its first bytes. The
// call answered 502 "nothing was committed", and every retry of it was refused (403: the upload is
// gone, the ownership check's ListParts says NoSuchUpload), so the object stayed stored and was
// never recorded (onUploadComplete never ran) nor deleted: ONE S3 failure, after a commit that was
// answered. Must hold: the check's reads after the commit are retried with the plugin's `retry`
// policy — 200, recorded once (the client's retry after that changes nothing).
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { api, MiB, multipartSent, startDirect } from './direct-support.ts'
import { isComplete, testFaultProxy, type FaultRequest } from '../support/fault-proxy.ts'
import { freshBucket, listKeys, needsStrictS3, openUploads, pluginS3Options, testClient, testS3 } from '../support/s3.ts'

const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

const reads: Record<string, (r: FaultRequest) => boolean> = {
  HeadObject: (r) => r.method === 'HEAD',
  'the ranged GetObject': (r) => r.method === 'GET' && r.headers.range !== undefined
}

for (const [read, matches] of Object.entries(reads)) {
  t.test(`a direct Complete answered 200 by S3, then ${read} throttled once: 200, recorded once`, { skip }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const proxy = await testFaultProxy(t, server.endpoint)
    const { url, stored } = await startDirect(t, server, bucket, { s3: { ...pluginS3Options(server), endpoint: proxy.endpoint }, retry: { attempts: 3, baseDelayMs: 50, maxDelayMs: 200 } })
    const data = randomBytes(6 * MiB)
    const { key, uploadId, q, parts } = await multipartSent(url, 'alice', 'a.bin', data)
    let completeSeen = false
    proxy.setRules([
      { match: (r) => { if (isComplete(r)) completeSeen = true; return false }, fault: { kind: 'delay', ms: 0 } },
      // Throttled for the three attempts the SDK makes of one request after the Complete; then S3 is fine again.
      { match: (r) => completeSeen && matches(r), fault: { kind: 'status', status: 503, code: 'SlowDown' }, times: 3 }
    ])
    const answer = await api(`${url}/s3/multipart/${encodeURIComponent(uploadId)}/complete?${q}`, 'alice', 'POST', { parts })
    t.comment(`Complete: ${answer.status} ${JSON.stringify(answer.json)}`)
    proxy.setRules([])
    t.equal(answer.status, 200, 'the check is retried: 200')
    t.equal(answer.json?.key, key, 'answered with the upload\'s key')
    t.equal(stored.length, 1, 'recorded once')
    const retry = await api(`${url}/s3/multipart/${encodeURIComponent(uploadId)}/complete?${q}`, 'alice', 'POST', { parts })
    t.comment(`the client's retry with S3 healthy: ${retry.status} ${JSON.stringify(retry.json)}`)
    t.equal(stored.length, 1, 'a retry after the 200 records nothing again')
    t.same(await listKeys(client, bucket), [key], 'the object is stored')
    t.same(await openUploads(client, bucket), [], 'no upload left open')
  })
}
