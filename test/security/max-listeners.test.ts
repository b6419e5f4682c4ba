// Production noise (issue 9): every upload added a listener to one AbortSignal
// shared by the whole plugin; past 10 concurrent uploads Node printed
// MaxListenersExceededWarning into the app's logs. No warning at any
// concurrency: 50 concurrent uploads, small and multipart, in both modes.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { startApp } from '../support/app.ts'
import { gatedUploads } from '../support/gated-uploads.ts'
import { expectNoPendingUploads, freshBucket, needsStrictS3, testClient, testS3 } from '../support/s3.ts'

const KiB = 1024
const MiB = 1024 * KiB
const UPLOADS = 50
const LARGE = 4

const server = await testS3()
const client = testClient(server)

const warnings: Error[] = []
process.on('warning', (warning) => { warnings.push(warning) })

for (const mode of ['workers', 'inline'] as const) {
  t.test(`mode ${mode}: ${UPLOADS} concurrent uploads print no MaxListenersExceededWarning`, { skip: needsStrictS3(server) }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const { app, url } = await startApp(t, server, { bucket, mode, partSize: 5 * MiB })
    const before = warnings.length
    let peak = 0
    const sampler = setInterval(() => { peak = Math.max(peak, app.s3Chunk.stats().uploadsInFlight) }, 20)
    t.teardown(() => { clearInterval(sampler) })

    // A few multipart-sized files among small ones: both paths hold their upload open at once.
    const files = Array.from({ length: UPLOADS }, (_, i) => ({
      filename: `many-${mode}-${i}.bin`,
      data: randomBytes(i < LARGE ? 11 * MiB + i : 8 * KiB + i)
    }))
    const answers = await gatedUploads(`${url}/upload`, files, { timeoutMs: 120_000 })
    clearInterval(sampler)
    t.same(answers.map((a) => a.status), answers.map(() => 200), 'every upload stored')
    t.ok(peak > 10, `more than 10 uploads were in flight at once (peak ${peak})`)
    // A warning is emitted on the next tick.
    await sleep(100)
    const maxListeners = warnings.slice(before).filter((w) => w.name === 'MaxListenersExceededWarning')
    t.same(maxListeners.map((w) => w.message), [], 'no MaxListenersExceededWarning')
    await expectNoPendingUploads(t, server, client, bucket)
  })
}
