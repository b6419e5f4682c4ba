// Found by an attack run (helper-49, 2026-12-07; 422 and the upload deleted before the fix): the
// check of a staged direct upload reads its first bytes (a ranged GET, which no checksum covers)
// and sniffs them; an object that fails allowedTypes is deleted and the upload refused (422). One
// byte changed on the way back made a valid PNG unrecognisable, and it was deleted. A refusal now
// needs a second read that agrees; otherwise the answer is S3's failure (502), the staged object
// kept, and the client's retry completes it.
import t from 'tap'
import { deflateSync, crc32 as zcrc } from 'node:zlib'
import { api, params, postToS3, startDirect } from './direct-support.ts'
import { isGetObject, testFaultProxy } from '../support/fault-proxy.ts'
import { freshBucket, listKeys, needsStrictS3, pluginS3Options, testClient, testS3 } from '../support/s3.ts'

const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

function chunk (type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4); len.writeUInt32BE(data.length)
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data])
  const crc = Buffer.alloc(4); crc.writeUInt32BE((zcrc as unknown as (b: Buffer) => number)(body) >>> 0)
  return Buffer.concat([len, body, crc])
}
function png (textChunks: number): Buffer {
  const ihdr = Buffer.alloc(13); ihdr.writeUInt32BE(1, 0); ihdr.writeUInt32BE(1, 4); ihdr[8] = 8; ihdr[9] = 0
  const texts = Array.from({ length: textChunks }, (_, i) => chunk('tEXt', Buffer.from(`k${i}\0v`)))
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), ...texts, chunk('IDAT', deflateSync(Buffer.from([0, 0]))), chunk('IEND', Buffer.alloc(0))])
}

// 0 text chunks: the middle byte is in the signature (unrecognisable); 20: in a text chunk (still a PNG).
for (const n of [0, 20]) {
  t.test(`a PNG (${n} text chunks) whose first bytes come back with one byte changed`, { skip }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const proxy = await testFaultProxy(t, server.endpoint)
    const { url, stored } = await startDirect(t, server, bucket, { s3: { ...pluginS3Options(server), endpoint: proxy.endpoint }, allowedTypes: ['image/png'] })
    const data = png(n)
    const post = (await params(url, 'alice', 'a.png', 'image/png')).json as { url: string, fields: Record<string, string>, key: string }
    t.equal((await postToS3(post, data)).status, 204, 'posted')
    proxy.setRules([{ match: (r) => isGetObject(r) && r.headers.range !== undefined, fault: { kind: 'flipAnswer' }, times: 1 }])
    const answer = await api(`${url}/s3/complete`, 'alice', 'POST', { key: post.key })
    proxy.setRules([])
    t.equal(proxy.stats().faults.flipAnswer, 1, 'its first bytes came back with one changed')
    // The byte changed may leave the bytes a PNG still (200) or not (502, kept for the retry); never 422.
    t.ok(answer.status === 200 || answer.status === 502, `200 or 502, never 422 (got ${answer.status}: ${JSON.stringify(answer.json).slice(0, 200)})`)
    const done = answer.status === 200 ? answer : await api(`${url}/s3/complete`, 'alice', 'POST', { key: post.key })
    t.equal(done.status, 200, `completed${answer.status === 200 ? '' : ' by the retry'} (got ${done.status})`)
    t.equal(stored.length, 1, 'recorded once')
  })
}
