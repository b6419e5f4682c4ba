// Attacks on what a tus request that does not succeed leaves behind (found by
// helper-31, 2026-12-06; each failed before the fix):
// - a PATCH refused with 460 after its first part kept the type sniffed from its
//   bytes in the state, so the next PATCH's bytes — HTML — were never sniffed and
//   were stored as image/png past allowedTypes;
// - a refused PATCH kept the Upload-Length it declared for a deferred upload, so
//   the client's corrected retry was 400;
// - a creation with Upload-Length 0 and a body answered 201 and stored an empty
//   object: the body's bytes were dropped, not refused (413);
// - a PATCH whose body held every remaining byte and then stalled was kept as
//   offset = length with no object: HEAD said whole, tus-js-client reported
//   success, and nothing was stored or handed to onUploadComplete.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { freshBucket, listKeys, needsStrictS3, objectDigest, testClient, testS3 } from '../support/s3.ts'
import { pngBytes } from '../support/samples.ts'
import { createUpload, expectClean, expectOnlyObject, metadataHeader, patchUpload, settledOffset, startTus, tusRequest } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')
const wrongChecksum = `sha1 ${createHash('sha1').update('not the body').digest('base64')}`

t.test('a PATCH refused after its first part does not let the next PATCH\'s bytes past allowedTypes unsniffed', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const { endpoint } = await startTus(t, server, bucket, { allowedTypes: ['image/png'] })
  const size = 6 * MiB
  const png = Buffer.concat([pngBytes(9000), randomBytes(size - 9000)])
  const html = Buffer.from('<!doctype html><html><script>alert(document.cookie)</script></html>'.padEnd(size, ' '))
  const url = await createUpload(endpoint, size, { 'upload-metadata': metadataHeader({ filename: 'x.png', filetype: 'image/png' }) })
  // A PNG body with a wrong checksum: sniffed (image/png), a whole part sent, then 460.
  t.equal((await patchUpload(url, 0, png, { 'upload-checksum': wrongChecksum })).status, 460)
  t.equal(await settledOffset(client, bucket, url), 0, 'the refused PATCH changed no offset')
  // Other bytes at the same offset are sniffed again: HTML is refused.
  t.equal((await patchUpload(url, 0, html)).status, 415, 'HTML at offset 0 is 415')
  for (const key of await listKeys(client, bucket)) {
    t.not((await objectDigest(client, bucket, key)).sha256, sha256(html), `no HTML stored (${key})`)
  }
  await expectClean(t, client, bucket)
})

t.test('a PATCH refused with 460 or 413 leaves a deferred length deferred', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const { endpoint } = await startTus(t, server, bucket)
  const cases = [
    ['460', randomBytes(10), { 'upload-length': '10', 'upload-checksum': wrongChecksum }],
    ['413', randomBytes(20), { 'upload-length': '10' }]
  ] as const
  for (const [name, body, headers] of cases) {
    const url = await createUpload(endpoint, null)
    t.equal((await patchUpload(url, 0, body, headers)).status, Number(name), `${name}: refused`)
    await settledOffset(client, bucket, url)
    const head = await tusRequest(url, 'HEAD')
    t.equal(head.headers.get('upload-defer-length'), '1', `${name}: still deferred`)
    t.equal(head.headers.get('upload-length'), null, `${name}: no length kept`)
    const retry = await patchUpload(url, 0, randomBytes(20), { 'upload-length': '20' })
    t.equal(retry.status, 204, `${name}: the corrected PATCH, with another length, is taken`)
  }
})

t.test('a creation with Upload-Length 0 and a body is 413 and stores nothing; with an empty chunked body it is 201', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const stored: string[] = []
  const { endpoint } = await startTus(t, server, bucket, { onUploadComplete: (file) => { stored.push(file.key) } })
  const headers = { 'upload-length': '0', 'content-type': 'application/offset+octet-stream' }
  t.equal((await tusRequest(endpoint, 'POST', headers, randomBytes(10))).status, 413, 'Content-Length 10: 413')
  // A chunked body: refused once its first bytes arrive.
  const chunked = await fetch(endpoint, {
    method: 'POST',
    headers: { ...headers, 'tus-resumable': '1.0.0' },
    body: new ReadableStream({ start (controller) { controller.enqueue(randomBytes(10)); controller.close() } }),
    duplex: 'half'
  } as RequestInit)
  t.equal(chunked.status, 413, 'chunked, 10 bytes: 413')
  t.same(stored, [], 'onUploadComplete never ran')
  t.same((await listKeys(client, bucket)).filter((key) => !key.includes('.tus/')), [], 'no object stored')
  const empty = await fetch(endpoint, {
    method: 'POST',
    headers: { ...headers, 'tus-resumable': '1.0.0' },
    body: new ReadableStream({ start (controller) { controller.close() } }),
    duplex: 'half'
  } as RequestInit)
  t.equal(empty.status, 201, 'chunked and empty: 201')
  t.equal(stored.length, 1, 'the empty file is stored')
})

/** A PATCH that says Content-Length `declared` but sends only `body`; resolves with the answer's status line (the body timeout ends it). */
async function stallingPatch (url: string, offset: number, body: Buffer, declared: number): Promise<string> {
  const target = new URL(url)
  return await new Promise((resolve, reject) => {
    const socket = connect(Number(target.port), target.hostname)
    let answer = ''
    const timer = setTimeout(() => { socket.destroy(); resolve('no answer within 15 s') }, 15_000)
    socket.on('data', (chunk) => { answer += chunk.toString() })
    socket.on('close', () => { clearTimeout(timer); resolve(answer.split('\r\n')[0] ?? '') })
    socket.on('error', reject)
    socket.write(`PATCH ${target.pathname} HTTP/1.1\r\nHost: ${target.host}\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: ${offset}\r\nContent-Length: ${declared}\r\nConnection: close\r\n\r\n`)
    socket.write(body)
  })
}

t.test('a PATCH whose every byte arrived finishes the upload though its body then stalls', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const completed: Array<{ key: string, size: number }> = []
  const { endpoint } = await startTus(t, server, bucket, { bodyTimeout: 1000, onUploadComplete: (file) => { completed.push({ key: file.key, size: file.size }) } })
  // Two whole parts and a bit: parts, the last short part and the tail path all in play.
  const data = randomBytes(10 * MiB + 1000)
  const url = await createUpload(endpoint, data.byteLength, { 'upload-metadata': metadataHeader({ filename: 'a.bin' }) })
  const answer = await stallingPatch(url, 0, data, data.byteLength + 50)
  t.match(answer, /^HTTP\/1\.1 204/, 'the PATCH is answered 204: the upload is whole')
  t.equal(completed.length, 1, 'onUploadComplete ran once')
  t.equal(completed[0]?.size, data.byteLength)
  const head = await tusRequest(url, 'HEAD')
  t.equal(head.headers.get('upload-offset'), String(data.byteLength), 'HEAD says whole')
  await expectOnlyObject(t, client, bucket, data)
})
