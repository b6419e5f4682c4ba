// require('fastify-s3-chunk') from a CommonJS app — plain JavaScript, and
// TypeScript compiled to CommonJS — against the package as `npm pack` ships it,
// each doing one real upload in workers mode. Runs on every Node the suite runs
// on (CI: 20 and 24): the package relies on Node's require(esm).
import t, { type Test } from 'tap'
import { execFile } from 'node:child_process'
import { copyFileSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { installPackedPackage, plainEnv, root } from '../support/installed-package.ts'
import { freshBucket, objectDigest, sha256, testClient, testS3 } from '../support/s3.ts'

const run = promisify(execFile)
const server = await testS3()
const client = testClient(server)
const fixtures = join(root, 'test', 'fixtures', 'commonjs-consumer')
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
const installed = await installPackedPackage(t)

t.test('the tarball ships the build, README and LICENSE, nothing else', async (t) => {
  const outside = installed.files.filter((path) => !/^(dist\/lib\/|dist\/workers\/|README\.md$|LICENSE$|package\.json$)/.test(path))
  t.same(outside, [], 'no file outside dist/lib, dist/workers, README.md, LICENSE, package.json')
  for (const path of ['LICENSE', 'README.md', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/index.d.cts', 'dist/lib/index.legacy.d.cts', 'dist/workers/upload-part.js']) {
    t.ok(installed.files.includes(path), `ships ${path}`)
  }
  const manifest = JSON.parse(readFileSync(join(installed.dir, 'node_modules', 'fastify-s3-chunk', 'package.json'), 'utf8')) as { scripts: Record<string, string> }
  t.notOk('prepare' in manifest.scripts, 'installing never builds (no prepare script)')
})

async function uploadThrough (t: Test, script: string, content: string): Promise<void> {
  const bucket = await freshBucket(t, server, client)
  const { stdout } = await run(process.execPath, [script], {
    cwd: installed.dir,
    env: plainEnv({ BUCKET: bucket, CONTENT: content, S3_ENDPOINT: server.endpoint, S3_REGION: server.region, S3_ACCESS_KEY_ID: server.accessKeyId, S3_SECRET_ACCESS_KEY: server.secretAccessKey }),
    timeout: 60_000
  })
  const file = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as { key: string, bucket: string, size: number }
  t.equal(file.bucket, bucket)
  t.equal(file.size, Buffer.byteLength(content))
  const stored = await objectDigest(client, bucket, file.key)
  t.equal(stored.sha256, sha256(Buffer.from(content)), 'the object holds the uploaded bytes')
}

t.test(`plain JavaScript: require('fastify-s3-chunk') on node ${process.version}`, async (t) => {
  const script = join(installed.dir, 'consumer.cjs')
  copyFileSync(join(fixtures, 'consumer.cjs'), script)
  await uploadThrough(t, script, 'stored by a CommonJS app\n')
})

t.test('TypeScript compiled to CommonJS type-checks and runs', async (t) => {
  copyFileSync(join(fixtures, 'consumer.cts'), join(installed.dir, 'consumer.cts'))
  // node16 is the setting that needs the package's CommonJS-flavoured types (index.d.cts):
  // without them TypeScript refuses to type a require() of an ES module (TS1479). The package's
  // own declarations are checked too (no --skipLibCheck: it hid TS1479 there, and errors typed
  // `any` under commonjs and bundler — found by a new-user review, helper-36).
  const settings = [
    ['--module', 'node16', '--moduleResolution', 'node16'],
    ['--module', 'nodenext', '--moduleResolution', 'nodenext'],
    ['--module', 'commonjs', '--moduleResolution', 'node10', '--esModuleInterop']
  ]
  for (const [index, flags] of settings.entries()) {
    const outDir = join(installed.dir, `out-${index}`)
    const compiled = await run(process.execPath, [tsc, '--strict', '--types', 'node', '--target', 'es2022', '--outDir', outDir, ...flags, 'consumer.cts'], { cwd: installed.dir, env: plainEnv() })
      .then(() => '', (error: { stdout?: string }) => error.stdout ?? String(error))
    t.equal(compiled, '', `tsc ${flags.join(' ')}: no error`)
  }
  await uploadThrough(t, join(installed.dir, 'out-0', 'consumer.cjs'), 'stored by a CommonJS TypeScript app\n')
})

t.test('an ES-module TypeScript app type-checks the package under every module setting, errors typed', async (t) => {
  copyFileSync(join(fixtures, 'types.ts'), join(installed.dir, 'types.ts'))
  const settings = [
    ['--module', 'nodenext', '--moduleResolution', 'nodenext'],
    ['--module', 'node16', '--moduleResolution', 'node16'],
    ['--module', 'esnext', '--moduleResolution', 'bundler'],
    ['--module', 'commonjs', '--moduleResolution', 'node10', '--esModuleInterop']
  ]
  for (const flags of settings) {
    const compiled = await run(process.execPath, [tsc, '--strict', '--noEmit', '--types', 'node', '--target', 'es2022', ...flags, 'types.ts'], { cwd: installed.dir, env: plainEnv() })
      .then(() => '', (error: { stdout?: string }) => error.stdout ?? String(error))
    t.equal(compiled, '', `tsc ${flags.join(' ')}: no error`)
  }
})
