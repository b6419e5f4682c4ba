// What every Node contender's server does besides uploading, as the bench
// expects of it (test/support/server-process.ts): GET /health with its memory
// and event-loop figures, stop on SIGTERM, and one line {"port":N} on stdout
// once listening on a free loopback port.
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { countGarbageCollections } from '../../test/support/gc-counter.mjs'

/** `stats()`: the contender's own figures for /health (its mode, uploads in flight…). */
export async function serveContender (app, stats) {
  // The same resolution as upload-server.mjs: the bench subtracts it from the figures.
  const loop = monitorEventLoopDelay({ resolution: 10 })
  loop.enable()
  const gcSeen = countGarbageCollections()
  app.get('/health', async () => ({
    ok: true,
    stats: stats(),
    rss: process.memoryUsage().rss,
    maxRss: process.resourceUsage().maxRSS * 1024,
    eventLoopDelayMs: { p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 },
    gc: gcSeen()
  }))

  process.once('SIGTERM', () => {
    void app.close().then(() => process.exit(0))
  })

  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  console.log(JSON.stringify({ port: typeof address === 'object' && address !== null ? address.port : 0 }))
}
