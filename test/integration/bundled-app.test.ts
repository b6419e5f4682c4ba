// An app bundled with esbuild the way the README's "Bundling" section says —
// the app, the plugin's worker file and Piscina's thread bootstrap as three
// entry points sharing chunks — runs from a directory with no node_modules and
// stores a multipart-sized upload in workers mode.
import t from 'tap'
import { build } from 'esbuild'
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { root } from '../support/installed-package.ts'
import { postMultipart } from '../support/multipart.ts'
import { expectNoPendingUploads, freshBucket, objectDigest, sha256, testClient, testS3 } from '../support/s3.ts'
import { startNodeServer } from '../support/server-process.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)

/** The README's esbuild banner: what ESM output needs for the CommonJS code it bundles. */
export const banner = [
  "import { createRequire as __s3cRequire } from 'node:module'",
  "import { dirname as __s3cDirname } from 'node:path'",
  "import { fileURLToPath as __s3cPath } from 'node:url'",
  'const require = __s3cRequire(import.meta.url)',
  'const __filename = __s3cPath(import.meta.url)',
  'const __dirname = __s3cDirname(__filename)'
].join('; ')

t.test('a bundled app finds its worker file and stores a multipart upload', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 's3chunk-bundle-'))
  t.teardown(() => { rmSync(out, { recursive: true, force: true }) })
  await build({
    entryPoints: {
      app: join(root, 'test', 'fixtures', 'bundled-app', 'app.ts'),
      'upload-part': join(root, 'dist', 'workers', 'upload-part.js'),
      // Piscina starts each thread with its own worker.js, looked up beside itself.
      worker: join(root, 'node_modules', 'piscina', 'dist', 'worker.js')
    },
    bundle: true,
    platform: 'node',
    format: 'esm',
    // One copy of Piscina shared by its bootstrap and the worker file: move() marks
    // values with a module-private symbol the bootstrap must recognise.
    splitting: true,
    target: 'node20',
    outdir: out,
    // Piscina's optional native helper for thread priorities; absent is fine.
    external: ['@napi-rs/nice'],
    banner: { js: banner },
    logLevel: 'error'
  })
  writeFileSync(join(out, 'package.json'), '{ "type": "module" }\n')
  t.ok(readdirSync(out).includes('upload-part.js'), 'the worker file is beside the app')

  const bucket = await freshBucket(t, server, client)
  const app = await startNodeServer<{ pool: { threads: number, completed: number } | null }>(join(out, 'app.js'), {
    BUCKET: bucket,
    S3_ENDPOINT: server.endpoint,
    S3_REGION: server.region,
    S3_ACCESS_KEY_ID: server.accessKeyId,
    S3_SECRET_ACCESS_KEY: server.secretAccessKey
  })
  t.teardown(async () => { await app.stop() })

  const data = randomBytes(11 * MiB + 123)
  const response = await postMultipart(`${app.url}/upload`, [{ name: 'file', filename: 'big.bin', contentType: 'application/octet-stream', data }])
  t.equal(response.status, 200, response.status === 200 ? 'HTTP 200' : response.body)
  const file = response.json() as { key: string, size: number, parts: number }
  t.equal(file.size, data.byteLength)
  t.equal(file.parts, 3, 'stored as a multipart upload')
  t.equal((await objectDigest(client, bucket, file.key)).sha256, sha256(data), 'the object holds the uploaded bytes')
  const health = await (await fetch(`${app.url}/health`)).json() as { stats: { pool: { completed: number } | null } }
  t.ok((health.stats.pool?.completed ?? 0) >= 3, 'the parts went through the worker threads')

  // A small file's PutObject is the worker file's other task (its export `putObject`): the bundle kept it.
  const small = randomBytes(300_000)
  const put = await postMultipart(`${app.url}/upload`, [{ name: 'file', filename: 'small.bin', contentType: 'application/octet-stream', data: small }])
  t.equal(put.status, 200, put.status === 200 ? 'HTTP 200' : put.body)
  const smallFile = put.json() as { key: string, parts: number }
  t.equal(smallFile.parts, 0, 'stored as one PutObject')
  t.equal((await objectDigest(client, bucket, smallFile.key)).sha256, sha256(small), 'the object holds the uploaded bytes')
  const after = await (await fetch(`${app.url}/health`)).json() as { stats: { pool: { completed: number } | null } }
  t.equal(after.stats.pool?.completed, (health.stats.pool?.completed ?? 0) + 1, 'the PutObject went through a worker thread')
  await expectNoPendingUploads(t, server, client, bucket)
})
