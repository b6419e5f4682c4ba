// `npm test`: starts one S3 server for the whole suite (unless S3_ENDPOINT is
// given), runs tap against it, stops it, and exits with tap's code.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { s3Environment, startS3 } from './s3-server.ts'

const server = await startS3({ quiet: true })
console.log(`# S3 for tests: ${server.description}${server.strict ? '' : ' — tests that need strict S3 behaviour will skip'}`)
if (!server.strict && process.env.S3_REQUIRE_STRICT === '1') {
  console.error('S3_REQUIRE_STRICT=1 but no strict S3 server is available')
  await server.stop()
  process.exit(1)
}

const tapBin = fileURLToPath(new URL('../../node_modules/tap/dist/esm/run.mjs', import.meta.url))
const tap = spawn(process.execPath, [tapBin, ...process.argv.slice(2)], {
  stdio: 'inherit',
  env: { ...process.env, ...s3Environment(server) }
})

let stopping = false
async function stop (code: number): Promise<never> {
  if (!stopping) {
    stopping = true
    await server.stop()
  }
  process.exit(code)
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => { tap.kill(signal) })
}
tap.on('exit', (code, signal) => { void stop(code ?? (signal !== null ? 1 : 0)) })
