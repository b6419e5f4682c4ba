// Connections to S3 are reused from part to part. With the AWS SDK's default
// `Expect: 100-continue` on bodies of 2 MiB and more, MinIO (Go's HTTP server
// closes a connection whose 100-continue request body it did not read to EOF)
// answered every part with `Connection: close`: one TCP connection — over TLS,
// one handshake — per part (206 for one 1 GiB upload). The plugin sends no such
// header unless `s3.expectContinue` asks for it. A TCP relay in front of the
// test S3 counts the connections the plugin opens.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { once } from 'node:events'
import { startApp } from '../support/app.ts'
import { postMultipart } from '../support/multipart.ts'
import { freshBucket, needsStrictS3, objectDigest, pluginS3Options, sha256, testClient, testS3 } from '../support/s3.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

const EXPECT = /\r\nexpect: *100-continue\r\n/gi

/** Relays TCP to the test S3 and counts the connections made to it, and the requests that carried Expect: 100-continue. */
async function countingRelay (t: { teardown: (fn: () => unknown) => void }): Promise<{ endpoint: string, connections: () => number, expects: () => number }> {
  const target = new URL(server.endpoint)
  let connections = 0
  let expects = 0
  const sockets = new Set<Socket>()
  const relay: Server = createServer((inbound) => {
    connections += 1
    const outbound = connect(Number(target.port), target.hostname)
    for (const socket of [inbound, outbound]) {
      sockets.add(socket)
      socket.on('close', () => { sockets.delete(socket) })
      socket.on('error', () => { inbound.destroy(); outbound.destroy() })
    }
    // Header lines are ASCII; a chunk boundary inside one would hide it, and the tests ask for several.
    inbound.on('data', (chunk: Buffer) => { expects += chunk.toString('latin1').match(EXPECT)?.length ?? 0 })
    inbound.pipe(outbound)
    outbound.pipe(inbound)
  })
  relay.listen(0, '127.0.0.1')
  await once(relay, 'listening')
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => relay.close(resolve))
  })
  const address = relay.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  return { endpoint: `${target.protocol}//127.0.0.1:${port}`, connections: () => connections, expects: () => expects }
}

const PARTS = 12
const PART_CONCURRENCY = 2

for (const mode of ['workers', 'inline'] as const) {
  t.test(`mode ${mode}: ${PARTS} parts go out over at most a few reused connections`, { skip }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const relay = await countingRelay(t)
    const { url } = await startApp(t, server, {
      bucket,
      mode,
      partSize: 5 * MiB,
      partConcurrency: PART_CONCURRENCY,
      s3: { ...pluginS3Options(server), endpoint: relay.endpoint }
    })
    const data = randomBytes(PARTS * 5 * MiB - 3)
    const response = await postMultipart(`${url}/upload`, [{ name: 'file', filename: 'f.bin', data }])
    t.equal(response.status, 200, response.body.slice(0, 300))
    const file = response.json()
    t.equal(file.parts, PARTS)
    t.equal((await objectDigest(client, bucket, file.key)).sha256, sha256(data), 'stored whole')
    t.equal(relay.expects(), 0, 'no request asked for 100-continue')
    // The parts in flight at once need a socket each; create and complete may need one more.
    t.ok(relay.connections() <= PART_CONCURRENCY + 2, `${relay.connections()} connections for ${PARTS} parts and 2 other calls`)
  })
}

t.test('s3.expectContinue: true sends Expect: 100-continue with every part again', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const relay = await countingRelay(t)
  const { url } = await startApp(t, server, {
    bucket,
    mode: 'workers',
    partSize: 5 * MiB,
    partConcurrency: PART_CONCURRENCY,
    s3: { ...pluginS3Options(server), endpoint: relay.endpoint, expectContinue: true }
  })
  const data = randomBytes(3 * 5 * MiB)
  const response = await postMultipart(`${url}/upload`, [{ name: 'file', filename: 'f.bin', data }])
  t.equal(response.status, 200, response.body.slice(0, 300))
  t.equal((await objectDigest(client, bucket, response.json().key)).sha256, sha256(data), 'stored whole')
  t.ok(relay.expects() >= 3, `${relay.expects()} requests asked for 100-continue (3 parts)`)
  // What the default spares: MinIO closes the connection after each part sent with the header.
  if (server.kind === 'minio') t.ok(relay.connections() >= 3, `MinIO: ${relay.connections()} connections for 3 parts`)
})
