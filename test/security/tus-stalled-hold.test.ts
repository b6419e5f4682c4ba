// Found by an attack run (helper-45, 2026-12-07; failed before the fix): a client whose connection dies silently mid-PATCH (a phone that
// changes networks: no FIN, no RST reaches the server) cannot resume from a new connection with
// the README's own client settings. The server's PATCH waits bodyTimeout (30 s) for bytes that
// will never come, renewing its hold all the while, so every PATCH of the resume is 409; the
// README's tus-js-client example retries 409 at 0, 1, 3 and 5 s (9 s in all) and then fails.
// ("when the connection drops, resumes where the server stopped"; "409 ... is retried".)
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { freshBucket, needsStrictS3, testClient, testS3 } from '../support/s3.ts'
import { createUpload, expectOnlyObject, patchUpload, startTus, tusRequest } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

t.test('a PATCH whose connection went silent does not lock out the client\'s resume for its whole retry schedule', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { endpoint } = await startTus(t, server, bucket)
  const data = randomBytes(8 * MiB)
  const url = await createUpload(endpoint, data.byteLength)
  const { port, pathname } = new URL(url)
  // Connection 1: half the body, then silence (the socket stays open: nothing tells the server).
  const dead = connect(Number(port), '127.0.0.1')
  dead.on('error', () => {})
  t.teardown(() => { dead.destroy() })
  await new Promise<void>((resolve) => {
    dead.once('connect', () => {
      dead.write(`PATCH ${pathname} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: ${data.byteLength}\r\n\r\n`)
      dead.write(data.subarray(0, 3 * MiB), () => { resolve() })
    })
  })
  await sleep(300)
  // The client resumes on a new connection as tus-js-client does with the README's retryDelays.
  const statuses: number[] = []
  let done = false
  for (const delay of [0, 1000, 3000, 5000]) {
    await sleep(delay)
    const head = await tusRequest(url, 'HEAD')
    const offset = Number(head.headers.get('upload-offset'))
    const answer = await patchUpload(url, offset, data.subarray(offset))
    statuses.push(answer.status)
    if (answer.status === 204) { done = true; break }
  }
  t.ok(done, `the resume got through within the retry schedule (answers: ${statuses.join(', ')})`)
  // The stopped PATCH's socket goes; what it stored counted toward the offset the resume began at.
  await expectOnlyObject(t, client, bucket, data)
})
