// `npm test`: starts one S3 server for the whole suite (unless S3_ENDPOINT is
// given), runs tap against it, stops it, prints "N passed, N failed, N skipped"
// and exits with tap's code. With S3_REQUIRE_STRICT=1 (CI) a lenient S3 server
// or any skipped test is a failure.
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { s3Environment, startS3 } from './s3-server.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))
const resultsDir = join(root, '.tap', 'test-results')
const strictRequired = process.env.S3_REQUIRE_STRICT === '1'

const server = await startS3({ quiet: true })
console.log(`# S3 for tests: ${server.description}${server.strict ? '' : ' — tests that need strict S3 behaviour will skip'}`)
if (!server.strict && strictRequired) {
  console.error('S3_REQUIRE_STRICT=1 but no strict S3 server is available')
  await server.stop()
  process.exit(1)
}

rmSync(resultsDir, { recursive: true, force: true })
const reporter = process.stdout.isTTY ? [] : ['--reporter=tap']
const tapBin = join(root, 'node_modules', 'tap', 'dist', 'esm', 'run.mjs')
const tap = spawn(process.execPath, [tapBin, ...reporter, ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
  // The SDK's Node 20 end-of-support notice would repeat in every test process.
  env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...process.env, ...s3Environment(server) }
})
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => { tap.kill(signal) })
}

const code = await new Promise<number>((resolve) => {
  tap.on('exit', (exitCode, signal) => { resolve(exitCode ?? (signal !== null ? 1 : 0)) })
})
await server.stop()

const counts = countResults(resultsDir)
if (strictRequired && counts.skipped > 0) {
  console.error(`S3_REQUIRE_STRICT=1: ${counts.skipped} test(s) skipped, which CI does not allow`)
}
console.log(`${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`)
process.exit(code !== 0 ? code : counts.failed > 0 || (strictRequired && counts.skipped > 0) ? 1 : 0)

/** Counts the top-level tests of every file from tap's saved TAP output. */
function countResults (dir: string): { passed: number, failed: number, skipped: number } {
  const counts = { passed: 0, failed: 0, skipped: 0 }
  for (const file of walk(dir)) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const match = /^(not )?ok \d+ - .*?(# (SKIP|TODO)\b.*)?$/.exec(line)
      if (match === null) continue
      if (match[3] !== undefined) counts.skipped++
      else if (match[1] !== undefined) counts.failed++
      else counts.passed++
    }
  }
  return counts
}

function walk (dir: string): string[] {
  let entries: string[]
  try { entries = readdirSync(dir) } catch { return [] }
  return entries.flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? walk(path) : path.endsWith('.tap') ? [path] : []
  })
}
