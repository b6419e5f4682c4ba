// Found in review: withChecksum() (lib/upload/multipart-calls.ts) through the tus endpoint. On a
// store that leaves the checksum out of the Complete answer (SeaweedFS, moto — simulated here by
// stripping it from MinIO's answer in-process), a throttled HeadObject after a Complete that
// SUCCEEDED throws ChecksumUnknown: tus's finishing PATCH takes the upload as over (verdict
// 'deleted'), removes its state — and the object, stored, carrying the upload's id, stays. HEAD
// then answers "finished" (Upload-Offset = length), so the client is told the upload is done,
// while onUploadComplete never ran and never will.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { S3Client } from '@aws-sdk/client-s3'
import { freshBucket, listKeys, needsStrictS3, testClient, testS3 } from '../support/s3.ts'
import { createUpload, metadataHeader, patchUpload, startTus, tusRequest } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

let completed = false
let throttleHeads = 0
const send = S3Client.prototype.send
S3Client.prototype.send = async function (this: S3Client, command: { constructor: { name: string } }, ...rest: unknown[]) {
  const name = command.constructor.name
  if (name === 'HeadObjectCommand' && completed && throttleHeads > 0) {
    throttleHeads--
    throw Object.assign(new Error('Please reduce your request rate.'), { name: 'SlowDown', Code: 'SlowDown', $metadata: { httpStatusCode: 503 } })
  }
  const output = await (send as (...args: unknown[]) => Promise<Record<string, unknown>>).call(this, command, ...rest)
  if (name === 'CompleteMultipartUploadCommand') {
    completed = true
    // As SeaweedFS and moto answer: no checksum in the Complete answer.
    const { ChecksumCRC32: _c, ChecksumCRC32C: _c2, ChecksumSHA256: _s, ChecksumType: _t, ...kept } = output
    return kept
  }
  return output
} as typeof S3Client.prototype.send
t.teardown(() => { S3Client.prototype.send = send })

t.test('tus: a Complete that stored the object, then a throttled HEAD: never "finished" without onUploadComplete', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const recorded: string[] = []
  const { endpoint } = await startTus(t, server, bucket, { mode: 'inline', retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 10 }, onUploadComplete: (file) => { recorded.push(file.key) } })
  const data = randomBytes(6 * MiB)
  const url = await createUpload(endpoint, data.byteLength, { 'upload-metadata': metadataHeader({ filename: 'a.bin' }) })
  throttleHeads = 3
  const patched = await patchUpload(url, 0, data)
  throttleHeads = 0
  const head = await tusRequest(url, 'HEAD')
  const keys = (await listKeys(client, bucket)).filter((key) => !key.includes('/.tus/') && !key.startsWith('.tus/'))
  t.comment(`PATCH ${patched.status} ${await patched.text()}; HEAD ${head.status} offset ${String(head.headers.get('upload-offset'))}; objects ${JSON.stringify(keys)}; onUploadComplete ${recorded.length}`)
  const toldFinished = patched.status === 204 || (head.status === 200 && head.headers.get('upload-offset') === String(data.byteLength))
  t.ok(!toldFinished || recorded.length === 1, `the client is told the upload is finished only once onUploadComplete ran (told finished: ${String(toldFinished)}, hook runs: ${recorded.length})`)
})
