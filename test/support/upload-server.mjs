// A plugin server in a process of its own, for tests that measure the server
// (memory, responsiveness) without the test client in the same event loop.
// Plain JavaScript on the built package, run by plain node: a TypeScript loader
// in the process (tsx adds ~40 MiB, in every worker thread too) would inflate
// the very figures these tests measure.
// Plugin options come as JSON in UPLOAD_SERVER_OPTIONS; it prints one line
// {"port":N} when listening and stops on SIGTERM.
import Fastify from 'fastify'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import s3Chunk from 'fastify-s3-chunk'
import { countGarbageCollections } from './gc-counter.mjs'

const options = JSON.parse(process.env.UPLOAD_SERVER_OPTIONS ?? '{}')
// Direct routes for the deployment tests: every caller is this user (authorize
// is a function, which JSON cannot carry).
if (process.env.UPLOAD_SERVER_DIRECT_USER !== undefined) {
  const user = { userId: process.env.UPLOAD_SERVER_DIRECT_USER }
  options.direct = { ...options.direct, authorize: () => user }
}
// Logs go to stderr: stdout carries the one line that announces the port.
const app = Fastify({ logger: { level: process.env.UPLOAD_SERVER_LOG ?? 'silent', stream: process.stderr } })
await app.register(s3Chunk, options)

// Whether every upload was seen through (an abort included), as this server knows it: a
// client that hangs up is done before this server has read what it sent (loopback buffers hold
// megabytes), so a test waits for these figures rather than for its clients.
// - uploadsReceived / uploadsHandled: POST /upload requests parsed / whose handler has finished.
// - openConnections: connections still open that did not serve another route (health checks):
//   those with an upload on them, or whose request is not read yet.
let uploadsReceived = 0
let uploadsHandled = 0
const connections = new Set()
const otherRoutes = new WeakSet()
app.server.on('connection', (socket) => {
  connections.add(socket)
  socket.once('close', () => connections.delete(socket))
})
app.addHook('onRequest', async (request) => {
  if (request.routeOptions.url === '/upload') uploadsReceived++
  else otherRoutes.add(request.raw.socket)
})
app.post('/upload', async (request) => {
  try {
    return await request.s3File()
  } finally {
    uploadsHandled++
  }
})
app.post('/many', async (request) => {
  const files = []
  for await (const file of request.s3Files()) files.push(file)
  return { files, fields: request.s3Fields() }
})

const loop = monitorEventLoopDelay({ resolution: 10 })
loop.enable()
const gcSeen = countGarbageCollections()
app.get('/health', async () => ({
  ok: true,
  stats: app.s3Chunk.stats(),
  uploads: { received: uploadsReceived, handled: uploadsHandled, openConnections: [...connections].filter((socket) => !otherRoutes.has(socket)).length },
  rss: process.memoryUsage().rss,
  // Peak resident set of the whole process (all threads), in bytes.
  maxRss: process.resourceUsage().maxRSS * 1024,
  eventLoopDelayMs: { p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 },
  gc: gcSeen()
}))

// Debug aid: UPLOAD_SERVER_SAMPLE=ms prints the main thread's memory figures to stderr.
if (process.env.UPLOAD_SERVER_SAMPLE !== undefined) {
  const mb = (n) => (n / 1048576).toFixed(0)
  setInterval(() => {
    const m = process.memoryUsage()
    console.error(`rss ${mb(m.rss)} heap ${mb(m.heapUsed)}/${mb(m.heapTotal)} external ${mb(m.external)} arrayBuffers ${mb(m.arrayBuffers)} parts ${mb(app.s3Chunk.stats().bufferedBytes)}`)
  }, Number(process.env.UPLOAD_SERVER_SAMPLE)).unref()
}

// Debug aid: UPLOAD_SERVER_GC=1 prints, on SIGTERM, the main thread's garbage
// collections by kind (count and milliseconds) to stderr; /health always has them.
process.once('SIGTERM', () => {
  if (process.env.UPLOAD_SERVER_GC === '1') console.error(`# pid ${process.pid} main-thread GC: ${JSON.stringify(gcSeen(), (k, v) => typeof v === 'number' ? Math.round(v) : v)}`)
  // Diagnosis aid (the cluster fault test sets it): while close() runs, every
  // 2 s, the connections still open and what each is doing (Node's internal
  // connection list; nothing is printed when close() ends sooner).
  if (process.env.UPLOAD_SERVER_DEBUG_CLOSE === '1') {
    const t0 = Date.now()
    setInterval(() => {
      const sym = Object.getOwnPropertySymbols(app.server).find((x) => String(x).includes('connections'))
      const list = sym ? app.server[sym].all() : []
      const connections = list.map((so) => JSON.stringify({
        remotePort: so.remotePort,
        // null: no response on this socket (idle keep-alive, or its response already sent)
        response: so._httpMessage ? { url: so._httpMessage.req?.url, headersSent: so._httpMessage.headersSent, finished: so._httpMessage.finished, requestComplete: so._httpMessage.req?.complete } : null,
        bytesRead: so.bytesRead,
        readableEnded: so.readableEnded,
        writableEnded: so.writableEnded
      }))
      console.error(`# pid ${process.pid}: close() still running after ${Date.now() - t0} ms; engine ${JSON.stringify(app.s3Chunk.stats())}; ${list.length} connection(s) open: ${connections.join(' | ')}`)
    }, 2000).unref()
  }
  void app.close().then(() => process.exit(0))
})

// A fixed port (UPLOAD_SERVER_PORT) lets a restarted instance come back where nginx expects it.
await app.listen({ port: Number(process.env.UPLOAD_SERVER_PORT ?? 0), host: '127.0.0.1' })
const address = app.server.address()
console.log(JSON.stringify({ port: typeof address === 'object' && address !== null ? address.port : 0 }))
