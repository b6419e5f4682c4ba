// Runs the test S3 server, and a second one over TLS (SSE-C tests), until
// stopped (Ctrl-C / SIGTERM): for CI, and for running test files one by one
// against a single server. Writes the environment that points at them
// (KEY=value lines, NODE_EXTRA_CA_CERTS included) to the file named by
// argv[2], or prints it. With S3_REQUIRE_STRICT=1 a missing TLS server is an
// error, never left to the tests to skip. S3_SERVER=versitygw serves versitygw
// instead (no TLS one beside it).
import { writeFileSync } from 'node:fs'
import { s3Environment, startS3, startTlsS3 } from './s3-server.ts'

const server = await startS3({ quiet: true })
const tls = await startTlsS3({ quiet: true }).catch(async (error: unknown) => {
  await server.stop()
  throw error
})
// versitygw's suite runs without S3 over TLS (test/support/store-suites.ts).
if (tls.server === null && process.env.S3_REQUIRE_STRICT === '1' && process.env.S3_SERVER !== 'versitygw') {
  console.error(`S3_REQUIRE_STRICT=1 but no S3 over TLS could be started: ${tls.reason}`)
  await server.stop()
  process.exit(1)
}
const env = Object.entries(s3Environment(server, tls.server)).map(([key, value]) => `${key}=${value}`).join('\n') + '\n'
const out = process.argv[2]
if (out !== undefined) writeFileSync(out, env)
else process.stdout.write(env)
console.error(`# ${server.description} — Ctrl-C to stop`)
console.error(`# over TLS: ${tls.server?.description ?? `none (${tls.reason})`}`)

let stopping = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return
    stopping = true
    void Promise.all([server.stop(), tls.server?.stop()]).then(() => process.exit(0))
  })
}
// Keep the process alive until a signal arrives.
setInterval(() => {}, 1 << 30)
