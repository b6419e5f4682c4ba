// Found in review (helper-38, 2026-12-06; failed before the fix): HTTP/2 needs no Content-Length
// for a body, and the tus routes decided "no body" from the headers alone — a PATCH's bytes were
// never read (204 at offset 0, a client resending from there loops), and with the empty-PATCH
// shortcut a checksum of those bytes was a 460. On HTTP/2 the stream now tells.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { connect } from 'node:http2'
import { freshBucket, needsStrictS3, objectDigest, listKeys, sha256, testClient, testS3 } from '../support/s3.ts'
import { h2, startHttp2Tus } from '../support/tus.ts'

const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

t.test('tus over HTTP/2: a PATCH body without Content-Length is read, with or without a checksum', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const url = await startHttp2Tus(t, server, bucket)
  for (const withChecksum of [false, true]) {
    const data = randomBytes(1000)
    const created = await h2(url, 'POST', '/files', { 'upload-length': String(data.byteLength) })
    t.equal(created.status, 201, 'created (no body: its stream ended with the headers)')
    const path = new URL(String(created.headers.location)).pathname
    const headers: Record<string, string> = { 'content-type': 'application/offset+octet-stream', 'upload-offset': '0' }
    if (withChecksum) headers['upload-checksum'] = `sha1 ${createHash('sha1').update(data).digest('base64')}`
    const patched = await h2(url, 'PATCH', path, headers, data)
    t.equal(patched.status, 204, `PATCH (checksum: ${String(withChecksum)}): 204`)
    t.equal(patched.headers['upload-offset'], String(data.byteLength), 'its bytes counted: the upload is finished')
    const stored = (await listKeys(client, bucket)).filter((key) => !key.split('/').includes('.tus'))
    t.equal((await objectDigest(client, bucket, stored.at(-1) as string)).sha256, sha256(data), 'and stored byte-identical')
    // Node's client sends a PATCH without a body as headers and an empty DATA frame (found in review, helper-40).
    const again = await h2(url, 'PATCH', path, { 'content-type': 'application/offset+octet-stream', 'upload-offset': String(data.byteLength) })
    t.equal(again.status, 204, 'the finishing PATCH sent again without a body: 204, as over HTTP/1.1')
    t.equal(again.headers['upload-offset'], String(data.byteLength), 'at the upload\'s length')
  }
  // An empty PATCH of an unfinished upload is answered from the state.
  const data = randomBytes(3000)
  const created = await h2(url, 'POST', '/files', { 'upload-length': String(data.byteLength) })
  const path = new URL(String(created.headers.location)).pathname
  const headers = { 'content-type': 'application/offset+octet-stream' }
  t.equal((await h2(url, 'PATCH', path, { ...headers, 'upload-offset': '0' }, data.subarray(0, 1000))).status, 204, 'the first 1000 bytes')
  const empty = await h2(url, 'PATCH', path, { ...headers, 'upload-offset': '1000' })
  t.equal(empty.status, 204, 'an empty PATCH: 204')
  t.equal(empty.headers['upload-offset'], '1000', 'at the same offset')
  const rest = await h2(url, 'PATCH', path, { ...headers, 'upload-offset': '1000' }, data.subarray(1000))
  t.equal(rest.headers['upload-offset'], String(data.byteLength), 'the rest finishes it')
})

// From review (helper-41): headers, then nothing — the wait for the first bytes was followed by
// the write's own idle watch, a 408 after twice bodyTimeout.
t.test('tus over HTTP/2: headers and then nothing is 408 after bodyTimeout, once', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const url = await startHttp2Tus(t, server, bucket, { bodyTimeout: 3000 })
  const created = await h2(url, 'POST', '/files', { 'upload-length': '100' })
  const path = new URL(String(created.headers.location)).pathname
  const session = connect(url)
  t.teardown(() => { session.destroy() })
  const started = Date.now()
  const status = await new Promise<number>((resolve, reject) => {
    const request = session.request({ ':method': 'PATCH', ':path': path, 'tus-resumable': '1.0.0', 'content-type': 'application/offset+octet-stream', 'upload-offset': '0' })
    request.on('response', (head) => { resolve(Number(head[':status'])); request.close() })
    request.on('error', reject)
  })
  const took = Date.now() - started
  t.equal(status, 408, 'a 408')
  // Generous: once is 3 s, twice 6 s.
  t.ok(took < 5000, `after bodyTimeout (3000 ms), not twice it (${took} ms)`)
})
