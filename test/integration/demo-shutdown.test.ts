// Issue 11: Ctrl-C on `npm start` left the embedded MinIO's data directory
// behind. Reproduced by hand (npm → sh → tsx's CLI → node, SIGINT to the
// process group): the demo printed "SIGINT: stopping" and was gone before its
// cleanup ran. Fixed twice over: the demo runs under plain node with tsx as a
// loader (no relaying CLI in between), and the embedded MinIO's data directory
// is also removed when the process exits without stop(). Here: the demo under
// npm (`npm run demo`, what `npm start` runs after building — no build here, it
// would rewrite dist/ under the other tests) in a process group of its own,
// SIGINT to the group as a terminal sends it; the embedded S3's directory
// (created under the TMPDIR given) must be gone. This harness did not make the
// old chain fail, so it guards the behaviour rather than replaying the bug.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { plainEnv, root } from '../support/installed-package.ts'

const s3Dirs = (dir: string): string[] => readdirSync(dir).filter((name) => /^fastify-s3-chunk-(minio|s3rver)-/.test(name))

t.test('Ctrl-C on the demo removes its embedded S3 data directory', async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 's3chunk-demo-'))
  t.teardown(() => { rmSync(tmp, { recursive: true, force: true }) })
  const env = plainEnv({ TMPDIR: tmp, PORT: '0', LOG_LEVEL: 'warn' })
  // The demo must start its own S3, not use the suite's.
  for (const name of ['S3_ENDPOINT', 'S3_BUCKET', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY', 'S3_REGION', 'S3_KIND']) delete env[name]
  const demo = spawn('npm', ['run', 'demo'], { cwd: root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<number | null>((resolve) => demo.once('exit', (code) => resolve(code)))
  t.teardown(() => { if (demo.exitCode === null && demo.signalCode === null) process.kill(-(demo.pid ?? 0), 'SIGKILL') })
  let output = ''
  demo.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the demo did not start within 90 s:\n${output}`)), 90_000)
    demo.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes('Demo: http')) { clearTimeout(timer); resolve() }
    })
    void exited.then(() => { clearTimeout(timer); reject(new Error(`the demo exited before it started:\n${output}`)) })
  })
  t.equal(s3Dirs(tmp).length, 1, 'the embedded S3 has its data directory under TMPDIR')

  process.kill(-(demo.pid ?? 0), 'SIGINT')
  const timer = setTimeout(() => { process.kill(-(demo.pid ?? 0), 'SIGKILL') }, 30_000)
  await exited
  clearTimeout(timer)
  t.match(output, /SIGINT: stopping/, 'the demo saw Ctrl-C')
  t.same(s3Dirs(tmp), [], 'no data directory left behind')
})
