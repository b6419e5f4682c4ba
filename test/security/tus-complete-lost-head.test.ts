// Found by an attack run (helper-49, 2026-12-07; failed before the fix): the finishing PATCH's CompleteMultipartUpload is carried out by S3 but its answer
// is lost; while the plugin recovers (multipart-calls.ts recoverComplete), HeadObject of the key is
// throttled (503 SlowDown). headOf() swallows that as "no object" (null), recoverComplete concludes
// "nothing stored" (502, "nothing was committed"), and the tus route removes the upload's state. The
// object IS stored, carrying the upload's id: the client's retry (HEAD) is then told the upload is
// finished — yet onUploadComplete never ran. The app never learns of a file it holds.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { isComplete } from '../support/fault-proxy.ts'
import { needsStrictS3, freshBucket, listKeys, testClient, testS3 } from '../support/s3.ts'
import { createUpload, patchUpload, startTusBehindProxy, tusRequest } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

// 503: throttled; 408: timed out — a HEAD has no body to carry a code, and 408 looked final (found in review, helper-51).
for (const status of [503, 408]) {
  t.test(`HEAD answered ${status}: a Complete whose answer is lost while HEAD is throttled: the file is never "finished" without onUploadComplete`, { skip }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const hooked: string[] = []
    const { endpoint, proxy } = await startTusBehindProxy(t, server, bucket, {
      retry: { attempts: 3, baseDelayMs: 50, maxDelayMs: 200 },
      tus: { leaseTimeout: 1 },
      onUploadComplete: (file) => { hooked.push(file.key) }
    })
    const data = randomBytes(7 * MiB)
    const url = await createUpload(endpoint, data.byteLength)
    let completeSeen = false
    proxy.setRules([
      { match: (r) => { const hit = isComplete(r); if (hit) completeSeen = true; return hit }, fault: { kind: 'dropAnswer' }, times: 1 },
      { match: (r) => completeSeen && r.method === 'HEAD', fault: { kind: 'status', status, code: status === 408 ? 'RequestTimeout' : 'SlowDown' } }
    ])
    const last = await patchUpload(url, 0, data)
    const text = await last.text()
    proxy.setRules([])
    t.comment(`finishing PATCH: ${last.status} ${text}`)
    t.comment(`keys in the bucket: ${JSON.stringify(await listKeys(client, bucket))}`)
    // (Any hold the failed request left has lapsed twice over: a later request may settle it.)
    await new Promise((resolve) => setTimeout(resolve, 2500))
    const head = await tusRequest(url, 'HEAD')
    t.comment(`HEAD after: ${head.status} offset ${head.headers.get('upload-offset')}`)
    // The client's view: a retry finds the upload finished (or finishes it).
    let finished = head.status === 200 && head.headers.get('upload-offset') === String(data.byteLength)
    if (!finished && head.status === 200) {
      const again = await patchUpload(url, Number(head.headers.get('upload-offset')), data.subarray(Number(head.headers.get('upload-offset'))))
      t.comment(`PATCH again: ${again.status} ${await again.text()}`)
      finished = again.status === 204
    }
    // Now: the Complete's outcome unknown, the state stays marked "completing"; once its hold
    // lapses the next request settles it from the object, and the hook runs (once).
    t.ok(finished, `the client is told the upload is finished (HEAD ${head.status})`)
    t.equal(hooked.length, 1, 'onUploadComplete ran for it, once')
  })
}
