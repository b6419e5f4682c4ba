// A real client: Uppy (@uppy/core + @uppy/aws-s3, unchanged, its default part
// plan) in headless Chromium uploads a 64 MiB file through the direct multipart
// routes, the parts going from the page straight to S3 (another origin), each
// to a URL that signs its exact length. The stored object must be
// byte-identical to the bytes the page made.
import t from 'tap'
import { build } from 'esbuild'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { S3File } from 'fastify-s3-chunk'
import { startApp } from '../support/app.ts'
import { launchChromium, needsChromium } from '../support/browser.ts'
import { expectNoPendingUploads, freshBucket, needsStrictS3, objectDigest, objectExists, sha256, testClient, testS3 } from '../support/s3.ts'
import type { UppyOutcome } from './fixtures/outcome.ts'
import { patternBytes } from './fixtures/pattern.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server) || needsChromium()

// Not a whole number of parts, so the last part is a short one.
const SIZE = 64 * MiB + 12_345
// @uppy/aws-s3's default plan: max(ceil(size / 10000), 5 MiB) per part.
const CHUNK_SIZE = Math.max(Math.ceil(SIZE / 10_000), 5 * MiB)
const PARTS = Math.ceil(SIZE / CHUNK_SIZE)
const SEED = 0x5eed_f00d
const TOKEN = 'Bearer browser-token'
const UPLOAD_TIMEOUT_MS = 120_000

/** The page's script, bundled in memory from the fixture. */
async function bundle (): Promise<string> {
  const result = await build({
    entryPoints: [fileURLToPath(new URL('./fixtures/uppy-multipart.ts', import.meta.url))],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent'
  })
  const output = result.outputFiles[0]
  if (output === undefined) throw new Error('esbuild produced no output')
  return output.text
}

function page (config: Record<string, unknown>): string {
  // "<" escaped so the JSON can never close the script element.
  const json = JSON.stringify(config).replace(/</g, '\\u003c')
  return `<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Uppy multipart</title>
<style>body { font: 16px/1.5 sans-serif; margin: 2em } pre { white-space: pre-wrap }</style></head>
<body><h1>Uppy → fastify-s3-chunk direct multipart</h1>
<pre id="status">loading…</pre>
<script id="config" type="application/json">${json}</script>
<script type="module" src="/app.js"></script>
</body></html>`
}

/** `/s3/multipart/<id>/3` → `/s3/multipart/:uploadId/:partNumber`. */
function route (path: string): string {
  return path.replace(/^\/s3\/multipart\/[^/]+/, '/s3/multipart/:uploadId').replace(/\/\d+$/, '/:partNumber')
}

type Outcome = UppyOutcome<{ key?: string, location?: string, file?: S3File }>

t.test('Uppy in Chromium uploads 64 MiB with multipart through the direct routes; the object is byte-identical', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const script = await bundle()
  const stored: S3File[] = []
  const { url } = await startApp(t, server, {
    bucket,
    keyPrefix: 'media',
    mode: 'inline',
    onUploadComplete: (file) => { stored.push(file) },
    direct: { authorize: (request) => request.headers.authorization === TOKEN ? { userId: 'browser' } : null }
  }, (app) => {
    app.get('/', async (_request, reply) => await reply.type('text/html; charset=utf-8').send(page({
      token: TOKEN, filename: 'uppy-64mib.bin', type: 'application/octet-stream', size: SIZE, seed: SEED
    })))
    app.get('/app.js', async (_request, reply) => await reply.type('text/javascript; charset=utf-8').send(script))
  })
  const expected = sha256(patternBytes(SIZE, SEED))

  const browser = await launchChromium()
  t.teardown(browser.close)
  const tab = await browser.context.newPage()
  const logs: string[] = []
  tab.on('console', (message) => { logs.push(`${message.type()}: ${message.text()}`) })
  tab.on('pageerror', (error) => { logs.push(`pageerror: ${error.message}`) })
  const requests: Array<{ method: string, origin: string, path: string, query: URLSearchParams }> = []
  tab.on('request', (request) => {
    const target = new URL(request.url())
    requests.push({ method: request.method(), origin: target.origin, path: target.pathname, query: target.searchParams })
  })
  tab.on('requestfailed', (request) => { logs.push(`requestfailed: ${request.method()} ${request.url()} ${request.failure()?.errorText ?? ''}`) })

  const started = Date.now()
  await tab.goto(url)
  // A timeout is a failure with everything the page collected, not a bare throw.
  const finished = await tab.waitForFunction('window.uppyOutcome?.done === true', undefined, { timeout: UPLOAD_TIMEOUT_MS, polling: 250 }).then(() => true, () => false)
  t.ok(finished, `Uppy's complete event within ${UPLOAD_TIMEOUT_MS / 1000} s`)
  const outcome = (await tab.evaluate('window.uppyOutcome ?? null') ?? { errors: ['the page never ran'], parts: [] }) as Outcome
  // Beside the demo test's, overwritten each run (test/browser/output/ is not committed).
  const outputDir = fileURLToPath(new URL('./output/', import.meta.url))
  mkdirSync(outputDir, { recursive: true })
  const screenshot = join(outputDir, 'uppy-multipart.png')
  await tab.screenshot({ path: screenshot })
  t.comment(`screenshot: ${screenshot}`)
  if (logs.length > 0) t.comment(`browser console:\n${logs.slice(0, 50).join('\n')}`)
  t.comment(`page made ${SIZE} bytes in ${outcome.generateMs} ms; Uppy uploaded them in ${outcome.uploadMs} ms (${Date.now() - started} ms with page load)`)

  t.same(outcome.errors, [], 'no upload-error from Uppy')
  t.match(outcome, { successful: 1, failed: 0 }, "Uppy's complete event: one file uploaded")
  t.same(outcome.parts.map((part) => part.PartNumber).sort((a, b) => a - b), Array.from({ length: PARTS }, (_, i) => i + 1), `${PARTS} parts, each PUT by the page with its ETag read`)
  t.ok(outcome.parts.every((part) => part.ETag !== ''), 'every part\'s ETag was readable across origins')
  const s3Origin = new URL(server.endpoint).origin
  const toS3 = requests.filter((request) => request.origin === s3Origin)
  t.same(toS3.map((request) => request.method), Array(PARTS).fill('PUT'), 'the page PUT the parts straight to S3, another origin, and nothing else')
  t.ok(toS3.every((request) => (request.query.get('X-Amz-SignedHeaders') ?? '').split(';').includes('content-length')), 'every part URL signed its Content-Length')
  const key = outcome.response?.key ?? ''
  const toApp = requests.filter((request) => request.origin === url && request.path.startsWith('/s3/'))
  t.same(toApp.map((request) => `${request.method} ${route(request.path)}`).sort(), [
    'POST /s3/multipart',
    ...Array<string>(PARTS).fill('GET /s3/multipart/:uploadId/:partNumber'),
    'POST /s3/multipart/:uploadId/complete'
  ].sort(), 'Uppy called create, one sign-part per part, and complete')
  t.ok(toApp.slice(1).every((request) => request.query.get('key') === key), 'every call after create named the key in the query')
  t.match(key, /^media\/browser\/[A-Za-z0-9_-]+\/uppy-64mib\.bin$/, 'the key the server made, under the user\'s prefix')
  if (key === '') return
  t.ok(await objectExists(client, bucket, key), 'the object exists')
  const digest = await objectDigest(client, bucket, key)
  t.equal(digest.size, SIZE, 'stored size')
  t.equal(digest.sha256, expected, 'stored bytes are the bytes the page made (SHA-256)')
  t.equal(stored.length, 1, 'onUploadComplete fired once')
  t.match(stored[0], { key, size: SIZE, parts: PARTS, etag: new RegExp(`-${PARTS}$`), originalName: 'uppy-64mib.bin', contentType: 'application/octet-stream' }, 'the recorded file')
  await expectNoPendingUploads(t, server, client, bucket)
})
