// An instance closing (a deploy's restart) while a PATCH is under way: the bytes that arrived
// are kept — parts sent, the tail saved in S3, the offset recorded — so the client's retry
// resumes on another instance instead of sending everything again. Regression: the PATCH
// took the close for a failure and went back to the offset it started from.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { freshBucket, needsStrictS3, testClient, testS3 } from '../support/s3.ts'
import { createUpload, expectOnlyObject, patchUpload, startTus, tusRequest } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

/** Sends `first` as the start of a PATCH body and keeps the request open; resolves with the answer's status or the error's code. */
function openPatch (url: string, offset: number, total: number, first: Uint8Array): { sent: Promise<void>, outcome: Promise<string> } {
  let sent!: () => void
  const written = new Promise<void>((resolve) => { sent = resolve })
  const outcome = new Promise<string>((resolve) => {
    const req = httpRequest(url, {
      method: 'PATCH',
      headers: { 'tus-resumable': '1.0.0', 'content-type': 'application/offset+octet-stream', 'upload-offset': String(offset), 'content-length': String(total) }
    }, (response) => {
      response.resume()
      resolve(String(response.statusCode))
    })
    req.on('error', (error: NodeJS.ErrnoException) => { resolve(error.code ?? error.message) })
    req.write(first, () => { sent() })
  })
  return { sent: written, outcome }
}

t.test('app.close() during a PATCH keeps the bytes that arrived; another instance resumes from them', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const a = await startTus(t, server, bucket)
  const b = await startTus(t, server, bucket)
  const data = randomBytes(24 * MiB + 5)
  const url = await createUpload(a.endpoint, data.byteLength)
  const token = url.split('/').pop() as string

  // 12 MiB + a bit, then the client goes quiet with the rest still owed.
  const firstBytes = 12 * MiB + 12_345
  const patch = openPatch(`${a.endpoint}/${token}`, 0, data.byteLength, data.subarray(0, firstBytes))
  await patch.sent
  // Let the server read what was sent (a wait, not a timing assertion: the check below only needs some bytes kept).
  await sleep(1500)
  await a.app.close()
  const outcome = await patch.outcome
  t.ok(['503', 'ECONNRESET', 'EPIPE', 'socket hang up'].includes(outcome), `the cut PATCH ended retryably (${outcome})`)

  const head = await tusRequest(`${b.endpoint}/${token}`, 'HEAD')
  t.equal(head.status, 200, 'the upload lives on')
  const offset = Number(head.headers.get('upload-offset'))
  t.ok(offset > 0, `the other instance resumes from the bytes kept (${offset} of ${firstBytes} sent)`)
  t.ok(offset <= firstBytes, 'never more than was sent')

  const rest = await patchUpload(`${b.endpoint}/${token}`, offset, data.subarray(offset))
  t.equal(rest.status, 204, 'finished on the other instance')
  await expectOnlyObject(t, client, bucket, data)
})
