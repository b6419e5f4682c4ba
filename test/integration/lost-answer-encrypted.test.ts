// A write whose answer is lost after S3 carried it out (issue 11: "the
// lost-Complete recovery keeps working where ETags are not MD5s"). Under
// SSE-KMS and SSE-C a PutObject's ETag is not the MD5 of the bytes and part
// ETags are not either, so the recovery cannot recognise the object by
// computing its ETag: it must still answer 200 for an object stored whole,
// with S3's ETag, after one PutObject / one Complete — never a 409 for its own
// object, never a second copy.
import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { startApp } from '../support/app.ts'
import { isComplete, isPutObject, startFaultProxy, type FaultRequest } from '../support/fault-proxy.ts'
import { postMultipart } from '../support/multipart.ts'
import { bareEtag, digest, head, withObjectParams, type ObjectParams, type SseC } from '../support/object-settings.ts'
import type { S3Server } from '../support/s3-server.ts'
import { expectNoPendingUploads, freshBucket, kmsKeyId, listKeys, pluginS3Options, sha256, testClient, testS3, testTlsS3 } from '../support/s3.ts'

const MiB = 1024 * 1024
const P = 5 * MiB
const server = await testS3()
const kms = kmsKeyId(server)
const tls = await testTlsS3()
const sizes = [
  { label: 'small', size: 256 * 1024, parts: 0, lost: isPutObject, what: 'PutObject' },
  { label: 'multipart', size: 11 * MiB, parts: 3, lost: isComplete, what: 'CompleteMultipartUpload' }
] as const

async function lostAnswers (t: Test, s3: S3Server, mode: 'workers' | 'inline', objectParams: ObjectParams, sse?: SseC): Promise<void> {
  const client = testClient(s3)
  const bucket = await freshBucket(t, s3, client)
  const proxy = await startFaultProxy({ target: s3.endpoint })
  t.teardown(async () => { await proxy.close() })
  const { url } = await startApp(t, s3, withObjectParams({
    bucket,
    mode,
    partSize: P,
    appendTimestamp: false,
    s3: { ...pluginS3Options(s3), endpoint: proxy.endpoint },
    retry: { attempts: 3, baseDelayMs: 20, maxDelayMs: 100 },
    objectParams
  }))
  for (const { label, size, parts, lost, what } of sizes) {
    let sent = 0
    const counted = (request: FaultRequest): boolean => {
      if (lost(request)) sent++
      return false
    }
    proxy.setRules([{ match: counted, fault: { kind: 'delay', ms: 0 } }, { match: lost, fault: { kind: 'dropAnswer' }, times: 1 }])
    const data = randomBytes(size)
    const response = await postMultipart(`${url}/upload`, [{ name: 'upload', filename: `lost-${label}.bin`, contentType: 'application/x-test', data }])
    t.equal(response.status, 200, `${label}: the ${what} S3 carried out is answered 200 ${response.status === 200 ? '' : response.body}`)
    if (what === 'CompleteMultipartUpload') t.equal(sent, 1, `${label}: the object was found; no second Complete`)
    else t.ok(sent >= 1, `${label}: ${sent} PutObject request(s) (a retry meets the first attempt's object)`)
    t.same(await listKeys(client, bucket).then((keys) => keys.filter((key) => key.startsWith(`lost-${label}`))), [`lost-${label}.bin`], `${label}: one object`)
    if (response.status !== 200) continue
    const file = response.json()
    t.equal(file.parts, parts, `${label}: parts`)
    const h = await head(client, bucket, file.key, sse)
    t.equal(file.etag, bareEtag(h.ETag), `${label}: S3File.etag is the stored object's ETag`)
    t.equal((await digest(client, bucket, file.key, sse)).sha256, sha256(data), `${label}: stored whole`)
  }
  await expectNoPendingUploads(t, s3, client, bucket)
}

for (const mode of ['workers', 'inline'] as const) {
  t.test(`mode ${mode}: SSE-KMS, answers of PutObject and Complete lost`, { skip: kms.skip }, async (t) => {
    await lostAnswers(t, server, mode, { ServerSideEncryption: 'aws:kms', SSEKMSKeyId: kms.keyId ?? '' })
  })

  t.test(`mode ${mode}: SSE-C (TLS MinIO behind the proxy), answers of PutObject and Complete lost`, { skip: tls.skip }, async (t) => {
    if (tls.server === null) return
    const sse: SseC = { SSECustomerAlgorithm: 'AES256', SSECustomerKey: randomBytes(32).toString('base64') }
    await lostAnswers(t, tls.server, mode, sse, sse)
  })
}
