// `npm test`: starts one S3 server for the whole suite (unless S3_ENDPOINT is
// given), runs tap against it, stops it, prints "N passed, N failed, N skipped"
// and exits with tap's code. With S3_REQUIRE_STRICT=1 (CI) a lenient S3 server
// or any skipped test is a failure. A second MinIO over TLS (SSE-C tests) is
// started beside it unless S3_TLS_ENDPOINT names one; tap's environment trusts
// its certificate (NODE_EXTRA_CA_CERTS, read by Node at process start).
// `--store versitygw` runs versitygw's declared suite on a versitygw of its
// own instead (test/support/store-suites.ts; no TLS server then).
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { s3Environment, startS3, startTlsS3 } from './s3-server.ts'
import { nginxMissing } from './nginx.ts'
import { acceptedSkipReasons, SUITES } from './store-suites.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))
const resultsDir = join(root, '.tap', 'test-results')
const strictRequired = process.env.S3_REQUIRE_STRICT === '1'

// `--store versitygw`: start versitygw (never an S3 named by the environment)
// and run its declared suite (store-suites.ts), or the files named, minus the
// files declared not to run there — each printed with its reason.
const argv = process.argv.slice(2)
const storeAt = argv.indexOf('--store')
const store = storeAt >= 0 ? argv.splice(storeAt, 2)[1] : undefined
const suite = store === 'versitygw' ? SUITES.versitygw : null
if (store !== undefined && suite === null) {
  console.error(`--store ${String(store)}: unknown store (known: versitygw; MinIO is the default)`)
  process.exit(1)
}
if (suite !== null && store !== undefined) {
  process.env.S3_SERVER = store
  for (const name of Object.keys(process.env)) {
    if (name.startsWith('S3_') && name !== 'S3_SERVER' && name !== 'S3_REQUIRE_STRICT') Reflect.deleteProperty(process.env, name)
  }
  for (const [path, reason] of Object.entries({ ...suite.outside, ...suite.excluded })) console.log(`# not on ${store}: ${path} — ${reason}`)
}

const server = await startS3({ quiet: true })
console.log(`# S3 for tests: ${server.description}${server.strict ? '' : ' — tests that need strict S3 behaviour will skip'}`)
if (!server.strict && strictRequired) {
  console.error('S3_REQUIRE_STRICT=1 but no strict S3 server is available')
  await server.stop()
  process.exit(1)
}
const tls = await startTlsS3({ quiet: true }).catch(async (error: unknown) => {
  await server.stop()
  throw error
})
console.log(`# S3 over TLS for tests: ${tls.server?.description ?? `none (${tls.reason}) — tests that need it will skip`}`)
if (tls.server === null && strictRequired && suite === null) {
  console.error(`S3_REQUIRE_STRICT=1 but no S3 over TLS is available: ${tls.reason}`)
  await server.stop()
  process.exit(1)
}

// The deployment tests (nginx, distributed MinIO) need nginx: under
// S3_REQUIRE_STRICT=1 a missing nginx is a failure before anything runs, never a skip.
const missingNginx = nginxMissing()
if (missingNginx !== null && strictRequired) {
  console.error(`S3_REQUIRE_STRICT=1 but ${missingNginx}: the deployment tests (test/load/behind-nginx, cluster-fault) need it`)
  await tls.server?.stop()
  await server.stop()
  process.exit(1)
}
// S3_CLUSTER_TESTS=0 leaves the distributed-MinIO fault test out of a whole-suite
// run (CI's second pass, on Node 24: it tests nginx and MinIO, not the runtime,
// and costs ~1 min of CI's budget); said here, never a silent skip.
const CLUSTER_TESTS = ['test/load/cluster-fault.test.ts']
const clusterOff = process.env.S3_CLUSTER_TESTS === '0'
if (clusterOff && process.argv.length <= 2) console.log(`# not run (S3_CLUSTER_TESTS=0): ${CLUSTER_TESTS.join(', ')}`)

const reporter = process.stdout.isTTY ? [] : ['--reporter=tap']
// A reader that went away (`npm test | head`) must not end the run with its S3 servers up.
process.stdout.on('error', () => {})
const tapBin = join(root, 'node_modules', 'tap', 'dist', 'esm', 'run.mjs')
// Files named on the command line run as given. Otherwise two phases: unit,
// integration and browser tests in parallel, then the load tests (test/load: memory under
// load, fault injection) one at a time, so what they measure is not the rest
// of the suite competing for the same two cores.
const named = suite === null ? argv : argv.filter((arg) => suite.excluded[arg] === undefined)
const phases = argv.length > 0
  ? [named]
  : suite !== null
    ? [suite.dirs.flatMap(testFiles).filter((file) => suite.excluded[file] === undefined)]
    : [[...testFiles('test/unit'), ...testFiles('test/integration'), ...testFiles('test/security'), ...testFiles('test/browser')], ['--jobs=1', ...testFiles('test/load').filter((file) => !(clusterOff && CLUSTER_TESTS.includes(file)))]]

let running: ReturnType<typeof spawn> | null = null
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => { running?.kill(signal) })
}
const counts = { passed: 0, failed: 0, skipped: 0, declared: 0 }
// Every failed assertion with its diagnostics, printed again at the very end: CI
// shows the tail of a long log, and a failure must be readable there.
const failures: string[] = []
/** Diagnostics lines kept per failure (a long `t.same` diff is cut, and says so). */
const DIAGNOSTIC_LINES = 200
// Skips a strict run accepts: those for a feature the store is declared to lack.
const accepted = new Set(acceptedSkipReasons(server.kind))
let code = 0
for (const args of phases) {
  if (args.filter((arg) => !arg.startsWith('--')).length === 0) continue
  rmSync(resultsDir, { recursive: true, force: true })
  // Not on a terminal (CI), tap's output passes through here: its verdict on each file (a file
  // that exited non-zero, timed out or was killed may have no failed assertion of its own).
  const tee = reporter.length > 0
  const tap = spawn(process.execPath, [tapBin, ...reporter, ...args], {
    cwd: root,
    stdio: ['inherit', tee ? 'pipe' : 'inherit', 'inherit'],
    // The SDK's Node 20 end-of-support notice would repeat in every test process.
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...process.env, ...s3Environment(server, tls.server) }
  })
  running = tap
  const verdicts = tap.stdout === null ? Promise.resolve(new Map<string, string[]>()) : failedFiles(tap.stdout)
  const exitCode = await new Promise<number>((resolve) => {
    tap.on('exit', (exit, signal) => { resolve(exit ?? (signal !== null ? 1 : 0)) })
  })
  if (exitCode !== 0) code = exitCode
  const phase = countResults(resultsDir)
  const reported = failedAssertions(resultsDir)
  // A file tap failed, or that has no plan, without a failed assertion: it failed as a whole.
  const failedWhole = new Map<string, string[]>()
  for (const [file, verdict] of await verdicts) if (reported.get(file) === undefined) failedWhole.set(file, verdict)
  for (const file of phase.planless) if (reported.get(file) === undefined && !failedWhole.has(file)) failedWhole.set(file, ['no plan: the file crashed or was killed before it ended (its output is above)'])
  counts.passed += phase.passed
  counts.failed += phase.failed + failedWhole.size
  counts.skipped += phase.skipped
  counts.declared += phase.declared
  for (const [file, lines] of [...reported, ...failedWhole]) failures.push(`# ${file}\n${lines.join('\n')}`)
}
await tls.server?.stop()
await server.stop()

const unexpectedSkips = counts.skipped - counts.declared
if (strictRequired && unexpectedSkips > 0) {
  console.error(`S3_REQUIRE_STRICT=1: ${unexpectedSkips} test(s) skipped, which CI does not allow`)
}
if (failures.length > 0) console.log(`\n== failed, by file (${failures.length})\n${failures.join('\n')}\n`)
const declaredNote = counts.declared > 0 ? ` (${counts.declared} for a feature ${server.kind} is declared to lack: store-suites.ts)` : ''
console.log(`${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped${declaredNote}`)
process.exit(code !== 0 ? code : counts.failed > 0 || (strictRequired && unexpectedSkips > 0) ? 1 : 0)

function testFiles (dir: string): string[] {
  return walk(join(root, dir), '.test.ts').map((path) => relative(root, path)).sort()
}

/**
 * Counts the top-level tests of every file from tap's saved TAP output;
 * `declared`: the skips whose reason is one the store is declared to lack;
 * `planless`: files whose output has no plan (crashed or killed before the end).
 */
function countResults (dir: string): { passed: number, failed: number, skipped: number, declared: number, planless: string[] } {
  const counts = { passed: 0, failed: 0, skipped: 0, declared: 0, planless: [] as string[] }
  for (const [file, lines] of savedOutputs(dir)) {
    if (!lines.some((line) => /^1\.\.\d+/.test(line))) counts.planless.push(file)
    for (const line of lines) {
      const match = /^(not )?ok \d+ - .*?(# (SKIP|TODO)\b ?(.*))?$/.exec(line)
      if (match === null) continue
      if (match[3] !== undefined) {
        counts.skipped++
        if (match[3] === 'SKIP' && accepted.has((match[4] ?? '').trim())) counts.declared++
      }
      else if (match[1] !== undefined) counts.failed++
      else counts.passed++
    }
  }
  return counts
}

/** Each test file's saved TAP output (tap's .tap/test-results), by the test file's path, as lines. */
function savedOutputs (dir: string): Array<[string, string[]]> {
  return walk(dir, '.tap').map((path) => [relative(dir, path).replace(/\.tap$/, ''), readFileSync(path, 'utf8').split('\n')])
}

/**
 * Each file's `not ok` lines at any depth, the first of a chain (the deepest:
 * TAP prints a subtest's children before its own line) with its YAML
 * diagnostics, capped; the enclosing subtests' lines after it name the path.
 */
function failedAssertions (dir: string): Map<string, string[]> {
  const found = new Map<string, string[]>()
  for (const [file, lines] of savedOutputs(dir)) {
    const report: string[] = []
    let depth = Infinity
    lines.forEach((line, index) => {
      const match = /^(\s*)not ok \d+/.exec(line)
      if (match === null) return
      const indent = match[1]?.length ?? 0
      report.push(line)
      if (indent < depth && depth !== Infinity) { depth = indent; return }
      depth = indent
      if (lines[index + 1]?.trim() !== '---') return
      report.push(...diagnostics(lines, index + 1, match[1] ?? ''))
    })
    if (report.length > 0) found.set(file, report)
  }
  return found
}

/** The YAML block starting at `lines[from]` ('---') through its '...', capped (and said so). */
function diagnostics (lines: string[], from: number, indent: string): string[] {
  const block: string[] = []
  for (let next = from; next < lines.length; next++) {
    if (block.length >= DIAGNOSTIC_LINES) { block.push(`${indent}  … (cut at ${DIAGNOSTIC_LINES} lines)`); break }
    block.push(lines[next] ?? '')
    if (lines[next]?.trim() === '...') break
  }
  return block
}

/**
 * Passes tap's output through to ours and collects its top-level `not ok N - <file>`
 * lines with their diagnostics (exit code, signal, timeout), by file.
 */
async function failedFiles (output: NodeJS.ReadableStream): Promise<Map<string, string[]>> {
  const found = new Map<string, string[]>()
  let open: string[] | null = null
  for await (const line of createInterface({ input: output, crlfDelay: Infinity })) {
    process.stdout.write(`${line}\n`)
    const verdict = /^not ok \d+ - (\S+)/.exec(line)
    if (verdict !== null) {
      open = [line]
      found.set(verdict[1] as string, open)
    } else if (open !== null) {
      // Its diagnostics follow it, indented, from '  ---' to '  ...'; anything else ends it.
      const inBlock = open.length === 1 ? line === '  ---' : line.startsWith('  ')
      if (!inBlock) { open = null; continue }
      if (open.length <= DIAGNOSTIC_LINES) open.push(line)
      if (line === '  ...') open = null
    }
  }
  return found
}

function walk (dir: string, suffix: string): string[] {
  let entries: string[]
  try { entries = readdirSync(dir) } catch { return [] }
  return entries.flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? walk(path, suffix) : path.endsWith(suffix) ? [path] : []
  })
}
