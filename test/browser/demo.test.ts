// The demo page in headless Chromium: two files through the server, two
// straight to S3 with Uppy (one of them multipart), a file whose bytes are not
// an allowed type refused with its message; every stored object compared
// byte for byte; a screenshot saved.
import t from 'tap'
import { mkdirSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { buildDemo } from '../../examples/demo/app.ts'
import { launchChromium, needsChromium } from '../support/browser.ts'
import { pngBytes } from '../support/samples.ts'
import { expectNoPendingUploads, freshBucket, listKeys, needsStrictS3, objectDigest, sha256, testClient, testS3 } from '../support/s3.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server) || needsChromium()
const outputDir = fileURLToPath(new URL('./output/', import.meta.url))

t.test('the demo page uploads through the server and straight to S3', { skip, timeout: 240_000 }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const app = await buildDemo({ s3: server, bucket, logLevel: 'silent' })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const address = app.server.address()
  const url = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}/`

  const browser = await launchChromium()
  t.teardown(() => browser.close())
  const page = await browser.context.newPage()
  await page.setViewportSize({ width: 1280, height: 1100 })
  const pageErrors: string[] = []
  page.on('pageerror', (error) => pageErrors.push(error.message))
  await page.goto(url)
  await page.waitForSelector('#user option[value="demo-alice"]', { state: 'attached' })

  const files = {
    'server-small.png': pngBytes(300 * 1024),
    'server-big.png': pngBytes(12 * MiB), // 3 parts through the server
    'direct-small.png': pngBytes(200 * 1024), // presigned POST
    'direct-big.png': pngBytes(25 * MiB) // presigned multipart (> 20 MiB on the page)
  }

  // Through the server: one XHR per file, each with its progress bar.
  await page.setInputFiles('#server-files', [
    { name: 'server-small.png', mimeType: 'image/png', buffer: files['server-small.png'] },
    { name: 'server-big.png', mimeType: 'image/png', buffer: files['server-big.png'] }
  ])
  await page.click('#server-upload')
  // Page-side code is passed as strings: this file is type-checked without DOM types.
  await page.waitForFunction("document.querySelectorAll('#server-list li.done').length === 2", undefined, { timeout: 60_000 })
  const bars = await page.$$eval('#server-list li.done progress', (nodes) => nodes.map((n) => (n as unknown as { value: number }).value))
  t.same(bars, [100, 100], 'both progress bars at 100 %')

  // A file that says it is a PNG but is not: refused by its bytes, with a message.
  await page.setInputFiles('#server-files', [{ name: 'fake.png', mimeType: 'image/png', buffer: randomBytes(64 * 1024) }])
  await page.click('#server-upload')
  await page.waitForSelector('#server-list li.failed', { timeout: 30_000 })
  t.match(await page.textContent('#server-list li.failed .status'), /not an allowed type/, 'the rejection is explained on the page')
  t.match(await page.textContent('#message'), /fake\.png: not an allowed type/)

  // Direct to S3 with Uppy's Dashboard.
  await page.setInputFiles('.uppy-Dashboard-input >> nth=0', [
    { name: 'direct-small.png', mimeType: 'image/png', buffer: files['direct-small.png'] },
    { name: 'direct-big.png', mimeType: 'image/png', buffer: files['direct-big.png'] }
  ])
  await page.click('.uppy-StatusBar-actionBtn--upload')
  await page.waitForSelector('.uppy-StatusBar.is-complete', { timeout: 120_000 })

  // Every file is in the list (read back from S3) with a download link.
  await page.waitForFunction("document.querySelectorAll('#file-rows tr').length >= 4", undefined, { timeout: 30_000 })
  const rows = await page.$$eval('#file-rows tr', (trs) => trs.map((tr) => tr.textContent ?? ''))
  for (const name of Object.keys(files)) t.ok(rows.some((row) => row.includes(name)), `${name} listed`)

  const keys = await listKeys(client, bucket)
  t.equal(keys.length, 4, 'four objects, nothing for the refused file')
  for (const [name, data] of Object.entries(files)) {
    const key = keys.find((k) => k.endsWith(`/${name}`))
    t.match(key, /^media\/alice\/[A-Za-z0-9_-]+\//, `${name} under alice's prefix`)
    if (key !== undefined) t.equal((await objectDigest(client, bucket, key)).sha256, sha256(data), `${name} byte-identical`)
  }

  mkdirSync(outputDir, { recursive: true })
  await page.screenshot({ path: `${outputDir}demo.png`, fullPage: true })
  t.same(pageErrors, [], 'no script error on the page')
  await expectNoPendingUploads(t, server, client, bucket)
})
