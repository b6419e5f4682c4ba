// Found by an attack run (helper-49, 2026-12-07; 404 before the fix): a finished tus upload's URL is answered from its object (finishedObject: HeadObject).
// Any 4xx there is read as "no such object" — including 429 (SlowDown/TooManyRequests, which the
// plugin itself treats as retryable throttling) and 408 RequestTimeout: after the retries, HEAD (and a
// finishing PATCH sent again) answers 404, and tus-js-client starts the whole file over.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { needsStrictS3, freshBucket, testClient, testS3 } from '../support/s3.ts'
import { createUpload, patchUpload, startTusBehindProxy, tusRequest } from '../support/tus.ts'

const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

// (And S3 failing outright, 503: the same 502 the README promises.)
for (const status of [429, 408, 503]) {
  t.test(`HEAD of a finished upload while S3 answers ${status}: not 404`, { skip }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const { endpoint, proxy } = await startTusBehindProxy(t, server, bucket, { retry: { attempts: 3, baseDelayMs: 50, maxDelayMs: 200 } })
    const data = randomBytes(1000)
    const url = await createUpload(endpoint, data.byteLength)
    t.equal((await patchUpload(url, 0, data)).status, 204, 'finished')
    proxy.setRules([{ match: (r) => r.method === 'HEAD', fault: { kind: 'status', status, code: status === 408 ? 'RequestTimeout' : 'SlowDown' } }])
    const head = await tusRequest(url, 'HEAD')
    const again = await patchUpload(url, data.byteLength, new Uint8Array(0))
    proxy.setRules([])
    t.equal(head.status, 502, `HEAD: 502, never 404 (got ${head.status})`)
    t.equal(again.status, 502, `the finishing PATCH sent again: 502 (got ${again.status})`)
    t.equal((await tusRequest(url, 'HEAD')).status, 200, 'once S3 answers, HEAD 200')
  })
}
