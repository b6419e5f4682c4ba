// Found in review: lib/upload/coordinator.ts identityOf(). After a PutObject whose answer was
// lost, the retry meets the first attempt's object (If-None-Match: 412) and #storedAlready() must
// recognise it. It does so by the configured checksum (CRC32, SHA256), by a CRC32 it sends itself
// when the ETag will be opaque and checksum is 'none' — but with checksum 'CRC32C' (a documented
// choice) identityOf() returns null and the object is compared by MD5 ETag, which SSE-KMS (and
// SSE-C) objects do not have: the upload's own object is answered 409 FST_S3CHUNK_KEY_EXISTS, and
// the stored file is never recorded. test/integration/lost-answer-encrypted.test.ts covers the
// default checksum only. ONE lost answer.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { startApp } from '../support/app.ts'
import { isPutObject, testFaultProxy } from '../support/fault-proxy.ts'
import { postMultipart } from '../support/multipart.ts'
import { freshBucket, kmsKeyId, listKeys, needsStrictS3, pluginS3Options, testClient, testS3 } from '../support/s3.ts'

const server = await testS3()
const client = testClient(server)
const kms = kmsKeyId(server)
const skip = needsStrictS3(server) || kms.skip

for (const checksum of ['CRC32C', 'CRC32'] as const) {
  t.test(`checksum ${checksum}, SSE-KMS: a PutObject whose answer is lost is not 409 for its own object`, { skip }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const proxy = await testFaultProxy(t, server.endpoint)
    const { url } = await startApp(t, server, {
      bucket,
      mode: 'inline',
      checksum,
      appendTimestamp: false,
      s3: { ...pluginS3Options(server), endpoint: proxy.endpoint },
      retry: { attempts: 3, baseDelayMs: 20, maxDelayMs: 100 },
      objectParams: { ServerSideEncryption: 'aws:kms', SSEKMSKeyId: kms.keyId ?? '' }
    })
    proxy.setRules([{ match: isPutObject, fault: { kind: 'dropAnswer' }, times: 1 }])
    const response = await postMultipart(`${url}/upload`, [{ name: 'upload', filename: 'lost.bin', contentType: 'application/x-test', data: randomBytes(256 * 1024) }])
    t.comment(`answer ${response.status} ${response.body}; keys ${JSON.stringify(await listKeys(client, bucket))}`)
    t.equal(response.status, 200, 'the PutObject S3 carried out is answered 200')
  })
}
