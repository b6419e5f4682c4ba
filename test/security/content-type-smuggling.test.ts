// Attack: stored XSS through the declared Content-Type (issue 9). A PNG/HTML
// polyglot declared `image/png, text/html` passed `allowedTypes: ['image/*']`
// (only the major type was compared), was stored with that Content-Type, and a
// browser opening the object's URL rendered it as HTML and ran its script.
// A declaration must be exactly one `type/subtype` (else 400), the bytes decide
// the type (a generic declaration takes the sniffed one, a disagreeing one is
// refused), the object is stored with the normalised type, and a wildcard never
// admits active content. Last, a real Chromium opens every object this file
// stored: none may render as HTML.
import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import type { S3File } from 'fastify-s3-chunk'
import { startApp } from '../support/app.ts'
import { launchChromium, needsChromium } from '../support/browser.ts'
import { postMultipart } from '../support/multipart.ts'
import { expectNoPendingUploads, freshBucket, listKeys, testClient, testS3 } from '../support/s3.ts'
import { mp4Bytes as mp4, pngBytes, pngChunk } from '../support/samples.ts'

const server = await testS3()
const client = testClient(server)
const bucket = await freshBucket(t, server, client)

const SCRIPT = '<html><head><title>safe</title></head><body><script>document.title=\'pwned\'</script></body></html>'

/** A valid PNG (signature, IHDR, IDAT, IEND) carrying an HTML page in a tEXt chunk and again after IEND. */
function polyglot (): Buffer {
  const png = pngBytes(600)
  const iend = png.length - 12
  const text = pngChunk('tEXt', Buffer.from(`Comment\0${SCRIPT}`, 'latin1'))
  return Buffer.concat([png.subarray(0, iend), text, png.subarray(iend), Buffer.from(SCRIPT)])
}

async function storedType (key: string): Promise<string | undefined> {
  return (await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ContentType
}

interface Refused { label: string, declared: string | null, data: Buffer, status: number, code: string }

const images = await startApp(t, server, { bucket, mode: 'inline', keyPrefix: 'images', allowedTypes: ['image/*'] })

async function expectRefused (t: Test, c: Refused): Promise<void> {
  const before = await listKeys(client, bucket)
  const response = await postMultipart(`${images.url}/upload`, [{ name: 'file', filename: 'avatar.png', contentType: c.declared, data: c.data }])
  t.equal(response.status, c.status, `${c.label}: ${c.status} (got ${response.status}: ${response.body.slice(0, 200)})`)
  t.match(response.json(), { statusCode: c.status, code: c.code }, `${c.label}: ${c.code}`)
  t.same(await listKeys(client, bucket), before, `${c.label}: nothing stored`)
}

const refused: Refused[] = [
  { label: 'a PNG/HTML polyglot declared "image/png, text/html"', declared: 'image/png, text/html', data: polyglot(), status: 400, code: 'FST_S3CHUNK_BAD_CONTENT_TYPE' },
  { label: 'declared "image/<script>"', declared: 'image/<script>', data: polyglot(), status: 400, code: 'FST_S3CHUNK_BAD_CONTENT_TYPE' },
  { label: 'declared "image" (no subtype)', declared: 'image', data: pngBytes(500), status: 400, code: 'FST_S3CHUNK_BAD_CONTENT_TYPE' },
  { label: 'declared "image/" (empty subtype)', declared: 'image/', data: pngBytes(500), status: 400, code: 'FST_S3CHUNK_BAD_CONTENT_TYPE' },
  // A CRLF followed by a space is header folding: busboy joins the lines and hands over "image/png text/html".
  { label: 'declared "image/png<CRLF SP>text/html" (folded)', declared: 'image/png\r\n text/html', data: polyglot(), status: 400, code: 'FST_S3CHUNK_BAD_CONTENT_TYPE' },
  { label: 'declared "text/html" (well-formed, not allowed)', declared: 'text/html', data: polyglot(), status: 415, code: 'FST_S3CHUNK_TYPE_NOT_ALLOWED' },
  { label: 'declared "image/svg+xml" with PNG bytes (active content; never via image/*)', declared: 'image/svg+xml', data: pngBytes(500), status: 415, code: 'FST_S3CHUNK_TYPE_NOT_ALLOWED' }
]

t.test('allowedTypes [image/*]: malformed, listed, or active-content declarations are refused and nothing is stored', async (t) => {
  for (const c of refused) await expectRefused(t, c)
})

// A bare CR or LF inside the value ends busboy's header line: the type is lost and busboy
// falls back to RFC 7578's text/plain, which says nothing about the format — the bytes decide,
// as for a part sent without a Content-Type. Nothing with a CR/LF in it reaches S3: the
// polyglot is stored as the PNG it is (and Chromium below opens it as an image).
t.test('a bare CR or LF inside the declared type never gets through: stored as the sniffed type', async (t) => {
  for (const declared of ['image/png\rtext/html', 'image/png\ntext/html']) {
    const response = await postMultipart(`${images.url}/upload`, [{ name: 'file', filename: 'crlf.png', contentType: declared, data: polyglot() }])
    t.equal(response.status, 200, `${JSON.stringify(declared)}: 200 (got ${response.status}: ${response.body.slice(0, 200)})`)
    if (response.status !== 200) continue
    const file = response.json() as S3File
    t.equal(await storedType(file.key), 'image/png', `${JSON.stringify(declared)}: stored as image/png, the sniffed type`)
  }
})

/** `declared: null`: the part has no Content-Type line (busboy reports RFC 7578's text/plain). */
async function expectStored (t: Test, url: string, label: string, declared: string | null, data: Buffer, type: string): Promise<void> {
  const response = await postMultipart(`${url}/upload`, [{ name: 'file', filename: 'upload.bin', contentType: declared, data }])
  t.equal(response.status, 200, `${label}: 200 (got ${response.status}: ${response.body.slice(0, 200)})`)
  if (response.status !== 200) return
  const file = response.json() as S3File
  t.equal(file.contentType, type, `${label}: S3File.contentType is ${type}`)
  t.equal(await storedType(file.key), type, `${label}: stored with Content-Type ${type} (HeadObject)`)
}

t.test('allowedTypes [image/*]: the bytes decide the stored type', async (t) => {
  await expectStored(t, images.url, 'PNG bytes declared application/octet-stream (curl\'s default)', 'application/octet-stream', pngBytes(800), 'image/png')
  await expectStored(t, images.url, 'a genuine PNG declared image/png', 'image/png', pngBytes(800), 'image/png')
  await expectStored(t, images.url, 'PNG declared "image/png; charset=x" (parameters dropped)', 'image/png; charset=x', pngBytes(800), 'image/png')
  await expectStored(t, images.url, 'the polyglot declared image/png is a PNG, stored as one', 'image/png', polyglot(), 'image/png')
})

// Found in a new user's review (helper-48, 2026-12-07; refused 415 "text/plain" before the fix):
// Python's requests sends a file part without a Content-Type, which busboy reports as text/plain.
t.test('a file part without a Content-Type (Python requests) is judged by its bytes', async (t) => {
  await expectStored(t, images.url, 'allowedTypes [image/*], PNG bytes, no Content-Type', null, pngBytes(800), 'image/png')
  await expectStored(t, images.url, 'allowedTypes [image/*], PNG bytes declared text/plain', 'text/plain', pngBytes(800), 'image/png')
  await expectRefused(t, { label: 'allowedTypes [image/*], HTML, no Content-Type', declared: null, data: Buffer.from(SCRIPT), status: 415, code: 'FST_S3CHUNK_TYPE_NOT_ALLOWED' })
  const any = await startApp(t, server, { bucket, mode: 'inline', keyPrefix: 'any' })
  await expectStored(t, any.url, 'no allowedTypes, PNG bytes, no Content-Type', null, pngBytes(800), 'image/png')
  await expectStored(t, any.url, 'no allowedTypes, plain text, no Content-Type', null, Buffer.from('just some words\n'), 'text/plain')
  await expectStored(t, any.url, 'no allowedTypes, HTML, no Content-Type: text/plain, never text/html', null, Buffer.from(SCRIPT), 'text/plain')
})

t.test('allowedTypes [video/*]: a real MP4 sent as curl -F sends it (application/octet-stream) is stored as video/mp4', async (t) => {
  const videos = await startApp(t, server, { bucket, mode: 'inline', keyPrefix: 'videos', allowedTypes: ['video/*'] })
  await expectStored(t, videos.url, 'MP4 declared application/octet-stream', 'application/octet-stream', mp4(), 'video/mp4')
})

t.test('Chromium never renders a stored object as HTML', { skip: needsChromium() }, async (t) => {
  const keys = await listKeys(client, bucket)
  t.ok(keys.length > 0, `objects to open: ${keys.length}`)
  const browser = await launchChromium()
  t.teardown(browser.close)
  const page = await browser.context.newPage()
  for (const key of keys) {
    const url = await getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key: key }), { expiresIn: 300 })
    const header = await storedType(key)
    try {
      await page.goto(url, { waitUntil: 'load', timeout: 30_000 })
    } catch (error) {
      // A download (no rendering at all) is safe; anything else is a failure of the check itself.
      if (!/download is starting/i.test(String(error))) throw error
      // The page still shows the previous document: nothing of this object to look at.
      t.pass(`${key} (Content-Type ${String(header)}): downloaded, not rendered`)
      continue
    }
    // Give an inline script every chance to run.
    await page.waitForTimeout(300)
    const title = await page.title()
    const contentType = await page.evaluate('document.contentType') as string
    t.not(title, 'pwned', `${key} (Content-Type ${String(header)}): no script ran (title ${JSON.stringify(title)})`)
    t.not(contentType, 'text/html', `${key} (Content-Type ${String(header)}): not rendered as HTML (document.contentType ${contentType})`)
  }
})

t.test('nothing left pending', async (t) => {
  await expectNoPendingUploads(t, server, client, bucket)
})
