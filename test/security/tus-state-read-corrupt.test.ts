// Found by an attack run (helper-49, 2026-12-07; the upload was destroyed before the fix): on a store whose ETags are not MD5s (a bucket with SSE-KMS default encryption),
// StateStore.load() believes the state body as it comes (tus/state.ts load: `this.#etags === 'opaque'`)
// and reads it without ChecksumMode, although the state was written with a CRC32. One byte changed
// on the way back (a transient fault) is then taken as the upload's state — here, a part's ETag —
// and acted on: the finishing PATCH's Complete is refused (InvalidPart), the multipart upload is
// aborted and the state removed: a live upload of 6 MiB destroyed by one corrupted read.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { GetObjectCommand, ListObjectsV2Command, PutBucketEncryptionCommand } from '@aws-sdk/client-s3'
import { isGetObject } from '../support/fault-proxy.ts'
import { freshBucket, kmsKeyId, listKeys, needsStrictS3, objectDigest, sha256, testClient, testS3 } from '../support/s3.ts'
import { createUpload, isTusState, patchUpload, startTusBehindProxy, tusRequest } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const kms = kmsKeyId(server)
const skip = needsStrictS3(server) || kms.skip

t.test('a corrupted read of a tus state on an SSE-KMS bucket does not destroy the upload', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  await client.send(new PutBucketEncryptionCommand({
    Bucket: bucket,
    ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: kms.keyId as string } }] }
  }))
  const { endpoint, proxy } = await startTusBehindProxy(t, server, bucket)
  const data = randomBytes(12 * MiB)
  const url = await createUpload(endpoint, data.byteLength)
  t.equal((await patchUpload(url, 0, data.subarray(0, 6 * MiB))).status, 204, 'the first PATCH stores a part and a tail')
  const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket }))
  for (const o of listed.Contents ?? []) {
    if (!o.Key!.includes('.tus/') || o.Key!.includes('.tail')) continue
    const text = await (await client.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key }))).Body!.transformToString()
    t.comment(`state (${text.length}): ${text}; the middle: ${JSON.stringify(text.slice(Math.floor(text.length / 2) - 3, Math.floor(text.length / 2) + 3))}`)
  }
  proxy.setRules([{ match: (r) => isGetObject(r) && isTusState(r), fault: { kind: 'flipAnswer' }, times: 1 }])
  const second = await patchUpload(url, 6 * MiB, data.subarray(6 * MiB))
  proxy.setRules([])
  t.comment(`the PATCH that read the corrupted state: ${second.status} ${await second.text()}`)
  t.equal(proxy.stats().faults.flipAnswer, 1, 'one state read was corrupted on its way back')
  const finished = async (): Promise<void> => {
    const keys = (await listKeys(client, bucket)).filter((key) => !key.includes('.tus/'))
    t.equal(keys.length, 1, 'one object')
    t.equal((await objectDigest(client, bucket, keys[0] as string)).sha256, sha256(data), 'byte-identical to what was sent')
  }
  // The corrupted read is read again (as a body not its ETag's is): the PATCH goes through.
  if (second.status === 204) { await finished(); return }
  const head = await tusRequest(url, 'HEAD')
  t.equal(head.status, 200, `the upload is still there after a failed PATCH (HEAD ${head.status})`)
  t.equal(head.headers.get('upload-offset'), String(6 * MiB), 'with the 6 MiB stored before')
  const again = await patchUpload(url, 6 * MiB, data.subarray(6 * MiB))
  t.equal(again.status, 204, `the PATCH sent again finishes it (${again.status} ${await again.text()})`)
  await finished()
})
