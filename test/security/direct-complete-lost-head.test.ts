// Found by an attack run (helper-49, 2026-12-07; failed before the fix): a direct multipart upload's Complete is carried out by S3 but its answer is lost;
// the SDK's retry meets NoSuchUpload. completedDespiteFailure() then looks for the object with
// headOf(), which answers null for any failure: HEAD throttled (503) reads as "no object", the upload
// is gone, so "not completed" — and NoSuchUpload becomes 409 FST_S3CHUNK_UPLOAD_GONE. The object is
// stored, onUploadComplete never ran, and the client is told (with a 4xx it won't retry) that the
// upload is gone. Now 502. (Still open: the client's retry is then refused 403 — the upload is gone —
// and the object is never recorded; see the README's Known limits.)
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { api, MiB, multipartSent, startDirect } from './direct-support.ts'
import { isComplete, testFaultProxy } from '../support/fault-proxy.ts'
import { freshBucket, listKeys, needsStrictS3, pluginS3Options, testClient, testS3 } from '../support/s3.ts'

const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

// 503: throttled; 408: timed out — a HEAD has no body to carry a code, and 408 looked final (found in review, helper-51).
for (const status of [503, 408]) {
  t.test(`HEAD answered ${status}: a direct Complete whose answer is lost while HEAD is throttled is not answered "gone"`, { skip }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const proxy = await testFaultProxy(t, server.endpoint)
    const { url, stored } = await startDirect(t, server, bucket, { s3: { ...pluginS3Options(server), endpoint: proxy.endpoint }, retry: { attempts: 3, baseDelayMs: 50, maxDelayMs: 200 } })
    const data = randomBytes(6 * MiB)
    const { uploadId, q, parts } = await multipartSent(url, 'alice', 'a.bin', data)
    let completeSeen = false
    proxy.setRules([
      { match: (r) => { const hit = isComplete(r); if (hit) completeSeen = true; return hit }, fault: { kind: 'dropAnswer' }, times: 1 },
      { match: (r) => completeSeen && r.method === 'HEAD', fault: { kind: 'status', status, code: status === 408 ? 'RequestTimeout' : 'SlowDown' } }
    ])
    const answer = await api(`${url}/s3/multipart/${encodeURIComponent(uploadId)}/complete?${q}`, 'alice', 'POST', { parts })
    proxy.setRules([])
    t.comment(`Complete: ${answer.status} ${JSON.stringify(answer.json)}; keys: ${JSON.stringify(await listKeys(client, bucket))}; recorded ${stored.length}`)
    const retry = await api(`${url}/s3/multipart/${encodeURIComponent(uploadId)}/complete?${q}`, 'alice', 'POST', { parts })
    t.comment(`the client's retry once S3 is back: ${retry.status} ${JSON.stringify(retry.json)}; recorded ${stored.length}`)
    t.ok(answer.status >= 500 || answer.status === 200, `S3 failing is answered 200 or a retryable 5xx, never a 4xx (got ${answer.status})`)
  })
}
