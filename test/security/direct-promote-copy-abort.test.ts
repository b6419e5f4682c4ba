// Found in review (helper-53, 2026-12-07; failed before the fix): a promotion of an object over
// the copy limit is a multipart copy (UploadPartCopy, then Complete). S3 refuses the Complete
// (500: not carried out, the upload stays) while it throttles HeadObject and ListParts too:
// completedDespiteFailure() cannot tell whether the Complete stored the object and throws
// OutcomeUnknown — which skipped the abort after it, leaving the copy's multipart upload (a whole
// copy of the object's bytes, up to 5 TiB) open. It also said "the upload is gone" when ListParts
// had only been throttled. Must hold: the copy fails with S3's (retryable) failure, its multipart
// upload is aborted (ListParts confirms none is left), and nothing claims the upload was gone.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { copyChecked } from '../../lib/direct/promote.ts'
import { MiB } from './direct-support.ts'
import { isComplete, testFaultProxy } from '../support/fault-proxy.ts'
import { freshBucket, needsStrictS3, openUploads, pluginS3Options, testClient, testS3 } from '../support/s3.ts'

const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

t.test('a multipart copy whose Complete fails while S3 throttles the look-ups leaves no multipart upload open', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const proxy = await testFaultProxy(t, server.endpoint)
  const data = randomBytes(12 * MiB)
  const put = await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'media/.staging/u/a.bin', Body: data, ContentType: 'application/octet-stream' }))
  // One attempt per request (the plugin's `retry` alone retries), through the proxy.
  const viaProxy = new S3Client({ ...pluginS3Options(server), endpoint: proxy.endpoint, maxAttempts: 1, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' })
  t.teardown(() => { viaProxy.destroy() })
  let completeSeen = false
  proxy.setRules([
    // S3 refuses the Complete (not carried out: the upload stays)…
    { match: (r) => { const hit = isComplete(r); if (hit) completeSeen = true; return hit }, fault: { kind: 'status', status: 500, code: 'InternalError' } },
    // …and throttles the look-ups after it (HeadObject, ListParts); aborts go through.
    { match: (r) => completeSeen && (r.method === 'HEAD' || (r.method === 'GET' && r.query.has('uploadId'))), fault: { kind: 'status', status: 503, code: 'SlowDown' } }
  ])
  const failure = await copyChecked({
    bucket,
    source: 'media/.staging/u/a.bin',
    sourceEtag: put.ETag as string,
    size: data.byteLength,
    key: 'media/u/a.bin',
    contentType: 'application/octet-stream',
    metadata: {},
    ifNoneMatch: true
  }, { client: viaProxy, retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 20 }, copyLimit: 5 * MiB, partSize: 5 * MiB })
    .then(() => null, (error: unknown) => error as { code?: string, s3?: { code?: string, message?: string, retryable?: boolean } })
  proxy.setRules([])
  t.equal(failure?.code, 'FST_S3CHUNK_STORAGE', `the copy fails with S3's failure (${failure?.s3?.code ?? 'no error'}: ${failure?.s3?.message ?? ''})`)
  t.equal(failure?.s3?.retryable, true, 'retryable: S3 would not say whether the Complete stored the object')
  t.notMatch(failure?.s3?.message ?? '', /upload is gone/, 'not "the upload is gone": ListParts was only throttled')
  t.same(await openUploads(client, bucket), [], 'no multipart upload of the copy left open (ListParts confirms it)')
})
