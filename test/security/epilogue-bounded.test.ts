// Found by an attack run (helper-44, 2026-12-07; failed before the fix): the epilogue of a
// multipart body was read without limit. maxFileSize bounds a file, maxFieldSize a field,
// bodyTimeout only silence: bytes after the closing boundary (a chunked body, so no
// Content-Length bounds them) were read and discarded for as long as the client sent, on the
// main thread, and the request was never answered meanwhile (8.5 GiB in 6 s) — the unbounded
// read oversize-file-early.test.ts closed for files. Now 400 past maxFieldSize + 8 MiB outside
// any part (lib/upload/outside-parts.ts).
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { startApp } from '../support/app.ts'
import { floodChunked } from '../support/chunked-flood.ts'
import { boundary, multipartChunks, postRaw } from '../support/multipart.ts'
import { freshBucket, needsStrictS3, testClient, testS3 } from '../support/s3.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

for (const route of ['/upload', '/many']) {
  t.test(`${route}: an endless epilogue after the closing boundary is not read without bound`, { skip }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const { url } = await startApp(t, server, { bucket, mode: 'inline', maxFileSize: MiB, maxFieldSize: 1024, bodyTimeout: 10_000 })
    const separator = `----epilogue-${randomBytes(8).toString('hex')}`
    const head = Buffer.from(`--${separator}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\nContent-Type: application/octet-stream\r\n\r\nsmall file\r\n--${separator}--\r\n`)
    const result = await floodChunked(url, { method: 'POST', path: route, headers: { 'content-type': `multipart/form-data; boundary=${separator}` }, head }, { seconds: 6, untilAnswer: true })
    t.comment(JSON.stringify(result))
    t.ok(result.sentMiB < 256, `the server stopped reading (it took ${result.sentMiB} MiB of epilogue in ${result.ms} ms; answer: ${JSON.stringify(result.answer)})`)
  })
}

t.test('an epilogue of a few bytes, as RFC 2046 allows, is no reason to refuse', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { url } = await startApp(t, server, { bucket, mode: 'inline', maxFileSize: MiB, maxFieldSize: 1024 })
  const separator = boundary()
  const body = [...multipartChunks([{ name: 'file', filename: 'a.bin', data: randomBytes(300 * 1024) }, { name: 'note', value: 'after the file' }], separator), Buffer.from('This is the epilogue. It is to be ignored.\r\n')]
  const answer = await postRaw(`${url}/upload`, body, { 'content-type': `multipart/form-data; boundary=${separator}`, 'content-length': String(body.reduce((sum, chunk) => sum + chunk.byteLength, 0)) })
  t.equal(answer.status, 200, answer.body.slice(0, 200))
})
