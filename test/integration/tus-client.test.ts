// tus-js-client (Node) against the tus endpoint on MinIO: whole uploads, chunked PATCHes, deferred length,
// uploads cut at random offsets and resumed from their URL — every object byte-identical, nothing left behind.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import * as tus from 'tus-js-client'
import { freshBucket, listKeys, needsStrictS3, objectDigest, sha256, testClient, testS3 } from '../support/s3.ts'
import { seededRandom } from '../support/seeded-random.ts'
import { startFaultProxy } from '../support/fault-proxy.ts'
import { clientUpload, expectClean, expectOnlyObject, settledOffset, startTus, tusRequest } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

async function onlyObject (bucket: string): Promise<string> {
  const keys = await listKeys(client, bucket)
  if (keys.length !== 1) throw new Error(`expected one object, found ${keys.join(', ')}`)
  return keys[0] as string
}

t.test('a whole file in one PATCH arrives byte-identical; only the object remains', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const { endpoint } = await startTus(t, server, bucket)
  const data = randomBytes(12 * MiB + 123)
  await clientUpload(endpoint, data)
  const key = await onlyObject(bucket)
  const digest = await objectDigest(client, bucket, key)
  t.equal(digest.size, data.byteLength)
  t.equal(digest.sha256, sha256(data))
  await expectClean(t, client, bucket)
})

t.test('chunked PATCHes (chunkSize smaller than a part, and not a divisor of it) arrive byte-identical', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const { endpoint } = await startTus(t, server, bucket)
  const data = randomBytes(11 * MiB + 7)
  await clientUpload(endpoint, data, { chunkSize: 3 * MiB + 1 })
  const digest = await objectDigest(client, bucket, await onlyObject(bucket))
  t.equal(digest.sha256, sha256(data))
  await expectClean(t, client, bucket)
})

t.test('deferred length: the length comes with the last PATCH', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const { endpoint } = await startTus(t, server, bucket)
  const data = randomBytes(7 * MiB + 5)
  await clientUpload(endpoint, data, { uploadLengthDeferred: true, chunkSize: 2 * MiB })
  const digest = await objectDigest(client, bucket, await onlyObject(bucket))
  t.equal(digest.sha256, sha256(data))
  await expectClean(t, client, bucket)
})

t.test('a small file (less than a part) in one PATCH', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const { endpoint } = await startTus(t, server, bucket)
  const data = randomBytes(1000)
  await clientUpload(endpoint, data)
  const digest = await objectDigest(client, bucket, await onlyObject(bucket))
  t.equal(digest.sha256, sha256(data))
  await expectClean(t, client, bucket)
})

/** One tus-js-client run: 'done', or 'cut' when the connection was reset under it (the URL kept for a resume). */
async function run (endpoint: string, data: Buffer, filename: string, uploadUrl: string | null, options: Partial<tus.UploadOptions> = {}): Promise<{ outcome: 'done' | 'cut', url: string | null }> {
  return await new Promise((resolve) => {
    const upload: tus.Upload = new tus.Upload(data, {
      endpoint,
      ...(uploadUrl !== null ? { uploadUrl } : {}),
      retryDelays: [],
      metadata: { filename },
      ...options,
      onError: () => { resolve({ outcome: 'cut', url: upload.url }) },
      onSuccess: () => { resolve({ outcome: 'done', url: upload.url }) }
    })
    upload.start()
  })
}

// The connection of a PATCH is reset by a proxy at a seeded-random share of its body, as a
// network drop would: the server sees a body end early, the client an error. The cut is
// always before the body's last byte: a PATCH cut after its whole body would finish the
// upload unseen, and the client, told 404 for it, would start the file over as a new upload.
t.test('uploads cut at random offsets and resumed from the stored URL, several times per file, end byte-identical', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const { url } = await startTus(t, server, bucket)
  const proxy = await startFaultProxy({ target: url })
  t.teardown(async () => { await proxy.close() })
  const endpoint = `${proxy.endpoint}/files`
  const random = seededRandom(1313)
  const files = [
    { size: 13 * MiB + 17, chunkSize: Infinity },
    { size: 17 * MiB + 5, chunkSize: 4 * MiB + 3 },
    { size: 6 * MiB + 1, chunkSize: Infinity }
  ]
  for (const { size, chunkSize } of files) {
    const data = randomBytes(size)
    const filename = `cut-${size}.bin`
    let uploadUrl: string | null = null
    let offset = 0
    let cuts = 0
    let rounds = 0
    let done = false
    // Four cuts, then a run to the end. A round can also end on an answer rather than a cut
    // (409: its HEAD came before the server took the last cut PATCH's hold): that round
    // counts no cut. Bounded: at most 12 rounds.
    for (; rounds < 12; rounds++) {
      const cutting = cuts < 4
      proxy.resetStats()
      proxy.setRules(cutting ? [{ match: (request) => request.method === 'PATCH', fault: { kind: 'resetMidBody', fraction: random() }, times: 1 }] : [])
      const result = await run(endpoint, data, filename, uploadUrl, cutting ? { chunkSize } : { chunkSize, retryDelays: [100, 300, 600, 1000, 2000, 3000] })
      uploadUrl = result.url
      if (result.outcome === 'done' || !cutting) {
        done = result.outcome === 'done'
        break
      }
      cuts += proxy.stats().faults.resetMidBody
      // What the server kept, once the cut request has let go of the upload (a PATCH meanwhile is answered 409).
      if (uploadUrl !== null) offset = await settledOffset(client, bucket, uploadUrl) ?? 0
    }
    t.equal(cuts, 4, `${size} bytes: cut 4 times in ${rounds + 1} rounds (last kept offset ${offset})`)
    t.ok(done, 'the run after the cuts finished the upload')
    const keys = (await listKeys(client, bucket)).filter((key) => key.includes(`cut-${size}`))
    t.equal(keys.length, 1, `one object (found: ${keys.length === 0 ? 'none' : keys.join(', ')})`)
    const digest = await objectDigest(client, bucket, keys[0] as string)
    t.equal(digest.size, size, 'size')
    t.equal(digest.sha256, sha256(data), `${size} bytes byte-identical after ${cuts} cuts`)
  }
  await expectClean(t, client, bucket)
})

// The figure for the README: a 64 MiB upload cut at 90 %, then resumed.
t.test('resume after a cut at 90 %: how many bytes are sent again', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const { url } = await startTus(t, server, bucket)
  const proxy = await startFaultProxy({ target: url })
  t.teardown(async () => { await proxy.close() })
  const endpoint = `${proxy.endpoint}/files`
  const size = 64 * MiB
  const data = randomBytes(size)
  const cutAt = Math.floor(size * 0.9)
  proxy.setRules([{ match: (request) => request.method === 'PATCH', fault: { kind: 'resetMidBody', afterBytes: cutAt }, times: 1 }])
  const first = await run(endpoint, data, 'resume.bin', null)
  t.equal(first.outcome, 'cut')
  await settledOffset(client, bucket, first.url as string)
  const kept = Number((await tusRequest(first.url as string, 'HEAD')).headers.get('upload-offset'))
  // tus-js-client reports progress from the offset it resumed at: its first figure minus one chunk shows where it began.
  let from = Infinity
  let upTo = 0
  const second = await run(endpoint, data, 'resume.bin', first.url, { onProgress: (sent) => { from = Math.min(from, sent); upTo = sent } })
  const resent = upTo - kept
  t.equal(second.outcome, 'done')
  const lost = cutAt - kept
  console.log(`# tus resume: 64 MiB cut after ${cutAt} bytes reached the proxy; the server kept ${kept}; resume sent ${resent} bytes (${size - cutAt} were never sent; ${lost} sent twice)`)
  t.ok(kept >= cutAt - 2 * MiB, 'at most what was in flight at the cut is lost')
  t.ok(from >= kept, 'the resume starts where the server stopped')
  t.equal(resent, size - kept, 'the resume sends only what the server does not have')
  await expectOnlyObject(t, client, bucket, data)
})

// The last PATCH's answer is lost (a proxy's timeout while a long Complete runs, a dropped
// connection): the upload is finished, the client does not know. tus-js-client asks with
// HEAD before sending again; an answer of 404 there makes it start the file over as a new
// upload — the whole file sent twice, a second object, onUploadComplete called twice.
t.test('the last PATCH\'s answer lost: the client\'s HEAD learns the upload is finished and sends nothing again', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const { url } = await startTus(t, server, bucket)
  const proxy = await startFaultProxy({ target: url })
  t.teardown(async () => { await proxy.close() })
  const size = 7 * MiB + 9
  const data = randomBytes(size)
  proxy.setRules([{ match: (request) => request.method === 'PATCH', fault: { kind: 'dropAnswer' }, times: 1 }])
  const result = await run(`${proxy.endpoint}/files`, data, 'lost-answer.bin', null, { retryDelays: [100, 300, 1000] })
  t.equal(result.outcome, 'done', 'the client finished')
  const stats = proxy.stats()
  t.equal(stats.faults.dropAnswer, 1, 'the answer of the PATCH that finished the upload was dropped')
  t.equal(stats.requests, 3, 'POST, PATCH (unanswered), HEAD, and nothing more')
  await expectOnlyObject(t, client, bucket, data)
})
