// Runs the test S3 server until stopped (Ctrl-C / SIGTERM): for CI, and for
// running test files one by one against a single server. Writes the
// environment that points at it (KEY=value lines) to the file named by
// argv[2], or prints it.
import { writeFileSync } from 'node:fs'
import { s3Environment, startS3 } from './s3-server.ts'

const server = await startS3({ quiet: true })
const env = Object.entries(s3Environment(server)).map(([key, value]) => `${key}=${value}`).join('\n') + '\n'
const out = process.argv[2]
if (out !== undefined) writeFileSync(out, env)
else process.stdout.write(env)
console.error(`# ${server.description} — Ctrl-C to stop`)

let stopping = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return
    stopping = true
    void server.stop().then(() => process.exit(0))
  })
}
// Keep the process alive until a signal arrives.
setInterval(() => {}, 1 << 30)
