// Attack: a declared `image/png, text/html` passed the `image/*` check at
// signing, a polyglot's bytes sniffed as PNG, and S3 served it as
// `image/png, text/html`: Chromium rendered it as HTML and ran its script.
// Now a declaration is parsed (one type/subtype or 400), a wildcard never
// admits active content, and the stored type is the one the bytes were
// checked against — checked here in headless Chromium too.
import t from 'tap'
import { GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { launchChromium, needsChromium } from '../support/browser.ts'
import { pngBytes } from '../support/samples.ts'
import { expectNoPendingUploads, freshBucket, listKeys, needsStrictS3, testClient, testS3 } from '../support/s3.ts'
import { api, params, polyglot, postToS3, startDirect } from './direct-support.ts'

const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

t.test('declared types that are not exactly one type/subtype are 400, active content is 415', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { url } = await startDirect(t, server, bucket, { allowedTypes: ['image/*'] })
  for (const type of ['image/png, text/html', 'image/png,text/html', 'image/png\r\nx-amz-acl: public-read', 'image/', 'image', 'image/png text/html']) {
    const post = await params(url, 'alice', 'a.png', type)
    t.equal(post.status, 400, `/s3/params: ${JSON.stringify(type)}`)
    t.match(post.json, { code: 'FST_S3CHUNK_BAD_CONTENT_TYPE' })
    const multipart = await api(`${url}/s3/multipart`, 'alice', 'POST', { filename: 'a.png', type, size: 1024, metadata: {} })
    t.equal(multipart.status, 400, `/s3/multipart: ${JSON.stringify(type)}`)
    t.match(multipart.json, { code: 'FST_S3CHUNK_BAD_CONTENT_TYPE' })
  }
  for (const type of ['text/html', 'image/svg+xml', 'application/xhtml+xml']) {
    t.equal((await params(url, 'alice', 'a.png', type)).status, 415, `${type}: a wildcard never admits active content`)
  }
  const normalised = await params(url, 'alice', 'a.png', 'IMAGE/PNG; charset=binary')
  t.equal(normalised.status, 200)
  t.equal(normalised.json.fields['Content-Type'], 'image/png', 'parameters dropped, lowercased: the policy pins the parsed type')
  t.same(await listKeys(client, bucket), [])
  await expectNoPendingUploads(t, server, client, bucket)
})

t.test('a PNG/HTML polyglot is stored as image/png and never renders as a page in Chromium', { skip: skip || needsChromium(), timeout: 120_000 }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { url } = await startDirect(t, server, bucket, { allowedTypes: ['image/*'] })
  const marker = 'polyglotRan'
  const stored: string[] = []
  // Declared as a PNG (and, where allowedTypes is unset, as nothing at all: the bytes decide).
  for (const [user, type] of [['alice', 'image/png'], ['alice', 'application/octet-stream']] as const) {
    const post = await params(url, user, 'cat.png', type)
    t.equal(post.status, 200)
    t.equal((await postToS3(post.json, polyglot(pngBytes(2000), marker))).status, 204)
    const done = await api(`${url}/s3/complete`, user, 'POST', { key: post.json.key })
    t.equal(done.status, 200, JSON.stringify(done.json))
    t.equal(done.json.file.contentType, 'image/png', `declared ${type}: recorded as the type its bytes were checked against`)
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: done.json.file.key }))
    t.equal(head.ContentType, 'image/png', 'and S3 serves it as that')
    stored.push(done.json.file.key)
  }
  const browser = await launchChromium()
  t.teardown(browser.close)
  for (const key of stored) {
    const page = await browser.context.newPage()
    const link = await getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key: key }), { expiresIn: 300 })
    const response = await page.goto(link)
    t.equal(response?.headers()['content-type'], 'image/png', 'served as image/png')
    await page.waitForLoadState('load')
    const seen = await page.evaluate(`({ type: document.contentType, title: document.title, ran: window.${marker} === true, script: document.querySelector('script') !== null })`) as { type: string, title: string, ran: boolean, script: boolean }
    t.not(seen.type, 'text/html', `the document is ${seen.type}, not a page`)
    t.not(seen.title, marker, 'the page title never appears')
    t.notOk(seen.ran, 'the script never ran')
    t.notOk(seen.script, 'no script element in the document')
    await page.close()
  }
  await expectNoPendingUploads(t, server, client, bucket)
})

t.test('multipart: the server\'s Complete makes the object, which then carries the type its bytes were checked against', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { url, stored } = await startDirect(t, server, bucket, { allowedTypes: ['image/*'] })
  const data = polyglot(pngBytes(3000), 'polyglotRan')
  const created = (await api(`${url}/s3/multipart`, 'alice', 'POST', { filename: 'cat.png', type: 'application/octet-stream', size: data.byteLength, metadata: {} })).json
  const q = `key=${encodeURIComponent(created.key)}`
  const signed = (await api(`${url}/s3/multipart/${created.uploadId}/1?${q}`, 'alice')).json
  const put = await fetch(signed.url, { method: 'PUT', body: data })
  const done = await api(`${url}/s3/multipart/${created.uploadId}/complete?${q}`, 'alice', 'POST', { parts: [{ PartNumber: 1, ETag: put.headers.get('etag') }] })
  t.equal(done.status, 200, JSON.stringify(done.json))
  t.equal(done.json.file.contentType, 'image/png')
  t.equal((await client.send(new HeadObjectCommand({ Bucket: bucket, Key: created.key }))).ContentType, 'image/png', 'rewritten from the declared application/octet-stream')
  t.equal(stored.length, 1)
  // Bytes of no allowed type: deleted before any hook.
  const page = '<!doctype html><script>alert(1)</script>'
  const bad = (await api(`${url}/s3/multipart`, 'alice', 'POST', { filename: 'page.png', type: 'image/png', size: page.length, metadata: {} })).json
  const bq = `key=${encodeURIComponent(bad.key)}`
  const badUrl = (await api(`${url}/s3/multipart/${bad.uploadId}/1?${bq}`, 'alice')).json.url
  const badPut = await fetch(badUrl, { method: 'PUT', body: page })
  const refused = await api(`${url}/s3/multipart/${bad.uploadId}/complete?${bq}`, 'alice', 'POST', { parts: [{ PartNumber: 1, ETag: badPut.headers.get('etag') }] })
  t.equal(refused.status, 422)
  t.same(await listKeys(client, bucket), [created.key], 'the refused object was deleted')
  t.equal(stored.length, 1, 'and never recorded')
  await expectNoPendingUploads(t, server, client, bucket)
})
