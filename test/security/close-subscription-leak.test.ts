// Found in review (helper-32, 2026-12-06) of 48d5654: begin() subscribes each request to the engine's Shutdown and
// unsubscribes on request.raw's 'close'. A request whose client went away before the route
// called s3File() (during an async preHandler, say) has emitted 'close' already: the listener
// (and the Upload it holds) stays in the Shutdown's set until the app closes — one per such
// request, without bound. (holdRequest() right above checks raw.destroyed for this reason.)
import t from 'tap'
import { connect } from 'node:net'
import { Shutdown } from '../../dist/lib/upload/shutdown.js'
import { startApp } from '../support/app.ts'
import { freshBucket, needsStrictS3, testClient, testS3 } from '../support/s3.ts'

const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => { setTimeout(resolve, ms).unref() }) }

let outstanding = 0
const original = Shutdown.prototype.subscribe
Shutdown.prototype.subscribe = function (listener: (reason: unknown) => void) {
  const unsubscribe = original.call(this, listener)
  if (!String(listener).includes('watch.fail')) return unsubscribe // only begin()'s (request-api.ts)
  outstanding++
  let done = false
  return () => { if (!done) { done = true; outstanding-- } unsubscribe() }
}

t.test('a request whose client left before s3File() leaves no subscription behind', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  let handled = 0
  let answers: string[] = []
  const { url } = await startApp(t, server, { bucket, mode: 'inline', bodyTimeout: 2000 }, (app) => {
    app.post('/slow-auth', { preHandler: async () => { await sleep(300) } }, async (request) => {
      try { return await request.s3File() } catch (error) { answers.push((error as Error).message); throw error } finally { handled++ }
    })
  })
  const { port } = new URL(url)
  const N = 5
  for (let i = 0; i < N; i++) {
    const socket = connect(Number(port), '127.0.0.1')
    socket.on('error', () => {})
    socket.write(`POST /slow-auth HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\nxx`)
    await sleep(30)
    socket.destroy()
  }
  for (let i = 0; i < 400 && handled < N; i++) await sleep(100)
  await sleep(300)
  t.comment(`handled ${handled}; errors: ${[...new Set(answers)].join(' | ')}`)
  t.equal(handled, N, 'each request reached s3File()')
  t.equal(outstanding, 0, `no Shutdown subscription outlives its request (left: ${outstanding})`)
})
