// Found in review (helper-50, 2026-12-07; failed before the fix): readTail() had become a loop of
// next() calls over the GetObject body, which never ends the body when its consumer stops early
// (the upload failed mid-tail, the memory wait refused): the body stayed open and its socket was
// never given back — with one socket, the next S3 call waited for ever. for await ends it.
import t from 'tap'
import { Agent } from 'node:http'
import { HeadBucketCommand, S3Client } from '@aws-sdk/client-s3'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import { randomBytes } from 'node:crypto'
import { StateStore } from '../../lib/tus/state.ts'
import { freshBucket, needsStrictS3, pluginS3Options, testClient, testS3 } from '../support/s3.ts'

const server = await testS3()
const admin = testClient(server)
const skip = needsStrictS3(server)

for (const checksums of [false, true]) {
  t.test(`a tail read stopped early gives its connection back (checksums: ${checksums})`, { skip }, async (t) => {
    const bucket = await freshBucket(t, server, admin)
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    t.teardown(() => { agent.destroy() })
    const opts = pluginS3Options(server)
    const client = new S3Client({ ...opts, requestHandler: new NodeHttpHandler({ httpAgent: agent, requestTimeout: 3000 }) })
    t.teardown(() => { client.destroy() })
    const store = new StateStore(client, bucket, 'media', { retry: { attempts: 1, baseDelayMs: 10, maxDelayMs: 10 }, checksums })
    await store.putTail('abc', 1, 'h', randomBytes(8 * 1024 * 1024))
    const reader = store.readTail('abc', 1, 'h')
    const first = await reader.next()
    t.ok(first.done === false && first.value.byteLength > 0, 'read a first chunk')
    await reader.return(undefined)
    const started = Date.now()
    let timer: NodeJS.Timeout | undefined
    const outcome = await Promise.race([
      client.send(new HeadBucketCommand({ Bucket: bucket })).then(() => 'answered', (error: Error) => `${error.name}: ${error.message}`),
      new Promise<string>((resolve) => { timer = setTimeout(() => { resolve('no answer in 5 s (the only socket is held by the abandoned tail body)') }, 5000) })
    ])
    clearTimeout(timer)
    t.equal(outcome, 'answered', `the next call is answered (${outcome}, after ${Date.now() - started} ms)`)
  })
}
