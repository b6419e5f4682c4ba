// Found by an attack run (helper-45, 2026-12-07; failed before the fix): the tus tail object — the bytes of a PATCH after its last whole
// part, kept in S3 until the next PATCH — is written with PutObject through the upload client,
// whose bodies are UNSIGNED-PAYLOAD by default (checksum CRC32 → payloadSigning 'unsigned'), and
// with no checksum header (requestChecksumCalculation WHEN_REQUIRED, no ChecksumAlgorithm given).
// Nothing checks its bytes: one byte corrupted on the way to S3 (the fault proxy's `flip`, the
// fault payload-signing.test.ts shows S3 refusing for parts and single PUTs) is stored, read
// back into the next part, and ends up in the completed object — 204, onUploadComplete run,
// and an object that is not what the client sent.
// The state object is written the same way (store.write: PutObject, unsigned, no checksum): one
// byte flipped in it is stored too. In the JSON's syntax, every later request is 500 (HEAD too, so
// tus-js-client starts over) and the sweep cannot read it ("left as it is"): state, tail and the
// multipart upload's part stay behind. (Flipped inside "uploadId" instead, the next PATCH made a
// second multipart upload, failed 502, and left the first one open; inside "id", every PATCH was
// 409 until Upload-Expires.) With payloadSigning 'signed' S3 refuses both PUTs (checked).
// Now tails and states carry a CRC32 that S3 verifies when the engine checksums what it sends,
// a state write S3 refused for its bytes is made again (nothing was stored), and a tail read back
// is checked against S3's checksum (test/unit/tus-tail-read.test.ts).
import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import type { FaultProxy } from '../support/fault-proxy.ts'
import { freshBucket, listKeys, needsStrictS3, objectDigest, sha256, testClient, testS3 } from '../support/s3.ts'
import { createUpload, isTusState, patchUpload, startTusBehindProxy, tusRequest } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

/** A tus app on a fresh bucket whose S3 calls go through a fault proxy (rules set by the test). */
async function tusBehindProxy (t: Test): Promise<{ bucket: string, proxy: FaultProxy, endpoint: string }> {
  const bucket = await freshBucket(t, server, client)
  const { endpoint, proxy } = await startTusBehindProxy(t, server, bucket, { retry: { attempts: 3, baseDelayMs: 10, maxDelayMs: 50 } })
  return { bucket, proxy, endpoint }
}

t.test('a tail object corrupted on its way to S3 is refused, not stored into the object', { skip }, async (t) => {
  const { bucket, proxy, endpoint } = await tusBehindProxy(t)
  // One byte of the first tail PUT flipped (as the proxy does for parts in payload-signing.test.ts).
  proxy.setRules([{ match: (request) => request.method === 'PUT' && request.path.includes('.tail.'), fault: { kind: 'flip' }, times: 1 }])
  const data = randomBytes(8 * MiB)
  const url = await createUpload(endpoint, data.byteLength)
  const first = await patchUpload(url, 0, data.subarray(0, 3 * MiB))
  t.equal(first.status, 204, 'the first PATCH (all of it a tail) is answered')
  t.equal(proxy.stats().faults.flip, 1, 'the tail PUT was corrupted on the way')
  const offset = Number(first.headers.get('upload-offset'))
  const second = await patchUpload(url, offset, data.subarray(offset))
  t.equal(second.status, 204, 'the rest is answered')
  const keys = (await listKeys(client, bucket)).filter((key) => !key.includes('/.tus/') && !key.startsWith('.tus/'))
  t.equal(keys.length, 1, 'one object')
  t.equal((await objectDigest(client, bucket, keys[0] as string)).sha256, sha256(data), 'the stored object is byte-identical to what was sent')
})

t.test('a state object corrupted on its way to S3 does not break the upload', { skip }, async (t) => {
  const { proxy, endpoint } = await tusBehindProxy(t)
  // The third state PUT (creation, the PATCH's hold, its last write): byte 120 is the ':' after "offset".
  let puts = 0
  proxy.setRules([{ match: (request) => request.method === 'PUT' && isTusState(request) && ++puts === 3, fault: { kind: 'flip', offset: 120 }, times: 1 }])
  const data = randomBytes(8 * MiB)
  const url = await createUpload(endpoint, data.byteLength)
  t.equal((await patchUpload(url, 0, data.subarray(0, 6 * MiB))).status, 204, 'the first PATCH is answered')
  t.equal(proxy.stats().faults.flip, 1, 'its last state write was corrupted on the way')
  // What a tus client does next: HEAD for the offset, then the rest.
  const head = await tusRequest(url, 'HEAD')
  t.equal(head.status, 200, `HEAD answers (got ${head.status})`)
  const offset = Number(head.headers.get('upload-offset'))
  const rest = await patchUpload(url, offset, data.subarray(offset))
  t.equal(rest.status, 204, `the rest finishes the upload (got ${rest.status})`)
})

// The read side through the real SDK (the unit test's client is a fake): with ChecksumMode
// ENABLED the SDK checks the CRC32 itself and throws its own error at the body's end.
t.test('a tail read back corrupted on its way from S3 fails the PATCH retryably, and the upload still finishes intact', { skip }, async (t) => {
  const { bucket, proxy, endpoint } = await tusBehindProxy(t)
  const data = randomBytes(8 * MiB)
  const url = await createUpload(endpoint, data.byteLength)
  const first = await patchUpload(url, 0, data.subarray(0, 3 * MiB))
  t.equal(first.status, 204, 'the first PATCH (all of it a tail) is answered')
  proxy.setRules([{ match: (request) => request.method === 'GET' && request.path.includes('.tail.'), fault: { kind: 'flipAnswer' }, times: 1 }])
  const offset = Number(first.headers.get('upload-offset'))
  const second = await patchUpload(url, offset, data.subarray(offset))
  t.equal(proxy.stats().faults.flipAnswer, 1, 'the tail was corrupted on its way back')
  const refusal = await second.text()
  t.ok([502, 503].includes(second.status), `the PATCH is refused with an answer a client retries (got ${second.status}: ${refusal.slice(0, 200)})`)
  const head = await tusRequest(url, 'HEAD')
  const resumeAt = Number(head.headers.get('upload-offset'))
  t.equal(resumeAt, offset, 'nothing of the failed PATCH was taken')
  const retried = await patchUpload(url, resumeAt, data.subarray(resumeAt))
  t.equal(retried.status, 204, 'the retried PATCH finishes the upload')
  const keys = (await listKeys(client, bucket)).filter((key) => !key.includes('/.tus/') && !key.startsWith('.tus/'))
  t.equal(keys.length, 1, 'one object')
  t.equal((await objectDigest(client, bucket, keys[0] as string)).sha256, sha256(data), 'the stored object is byte-identical to what was sent')
})
