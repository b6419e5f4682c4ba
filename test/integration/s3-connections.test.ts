// Connections to S3 are reused from part to part. With the AWS SDK's default
// `Expect: 100-continue` on bodies of 2 MiB and more, the SDK's HTTP handler
// (@smithy/node-http-handler 4) sends each such request on a connection of its
// own, with `Connection: close`: one TCP connection — over TLS, one handshake —
// per part (206 for one 1 GiB upload). The plugin sends no such header unless
// `s3.expectContinue` asks for it. A TCP relay in front of the test S3 counts
// the connections the plugin opens, and which side closed each: versitygw
// answers every request with `Connection: close`, so there each part takes a
// connection whatever the plugin does; MinIO keeps them open.
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
const CONNECTION_CLOSE = /\r\nconnection: *close\r\n/gi
const REQUEST_LINE = /(?:^|\n)(?:PUT|POST|GET|HEAD|DELETE) \/\S* HTTP\/1\.1\r\n/g

/** What the relay saw: connections opened, which side closed each first, and the requests that asked for 100-continue. */
interface RelayCounts { connections: number, requests: number, closedByPlugin: number, closedByS3: number, closeHeaders: number, expects: number }

/**
 * Relays TCP to the test S3 and counts what crosses it. Which side ends a
 * connection first tells a plugin that drops its sockets (a regression) from
 * an S3 that closes them (its choice, e.g. `Connection: close`): only the
 * first is the plugin's to answer for.
 */
async function countingRelay (t: { teardown: (fn: () => unknown) => void }): Promise<{ endpoint: string, counts: () => RelayCounts }> {
  const target = new URL(server.endpoint)
  const counts: RelayCounts = { connections: 0, requests: 0, closedByPlugin: 0, closedByS3: 0, closeHeaders: 0, expects: 0 }
  const sockets = new Set<Socket>()
  const relay: Server = createServer((inbound) => {
    counts.connections += 1
    const outbound = connect(Number(target.port), target.hostname)
    let closed = false
    // Whoever asked for `Connection: close` first closes it, whichever side's FIN gets there first.
    let saidClose: 'closedByPlugin' | 'closedByS3' | null = null
    const closedBy = (side: 'closedByPlugin' | 'closedByS3') => () => {
      if (!closed) counts[saidClose ?? side] += 1
      closed = true
    }
    inbound.once('end', closedBy('closedByPlugin'))
    outbound.once('end', closedBy('closedByS3'))
    for (const socket of [inbound, outbound]) {
      sockets.add(socket)
      socket.on('close', () => { sockets.delete(socket) })
    }
    inbound.on('error', () => { closedBy('closedByPlugin')(); outbound.destroy() })
    outbound.on('error', () => { closedBy('closedByS3')(); inbound.destroy() })
    // Header lines are ASCII; a chunk boundary inside one would hide it, and the tests ask for several.
    inbound.on('data', (chunk: Buffer) => {
      const text = chunk.toString('latin1')
      counts.expects += text.match(EXPECT)?.length ?? 0
      counts.requests += text.match(REQUEST_LINE)?.length ?? 0
      if (text.match(CONNECTION_CLOSE) !== null) saidClose ??= 'closedByPlugin'
    })
    outbound.on('data', (chunk: Buffer) => {
      const closeHeaders = chunk.toString('latin1').match(CONNECTION_CLOSE)?.length ?? 0
      counts.closeHeaders += closeHeaders
      if (closeHeaders > 0) saidClose ??= 'closedByS3'
    })
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
  return { endpoint: `${target.protocol}//127.0.0.1:${port}`, counts: () => ({ ...counts }) }
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
    const seen = relay.counts()
    const said = JSON.stringify(seen)
    // Not vacuous: the plugin's calls went through the relay.
    t.ok(seen.requests >= PARTS + 2, `${seen.requests} requests seen (${PARTS} parts, create, complete)`)
    t.equal(seen.expects, 0, 'no request asked for 100-continue')
    t.equal(seen.closedByPlugin, 0, `the plugin closed no connection during the upload (${said})`)
    // The parts in flight at once need a socket each; create and complete may need one more; and
    // a connection S3 chose to close is replaced (S3's choice, not the plugin's: see closedByS3).
    t.ok(seen.connections <= PART_CONCURRENCY + 2 + seen.closedByS3, `${seen.connections} connections for ${PARTS} parts and 2 other calls (${said})`)
    if (server.kind === 'minio') t.ok(seen.connections <= PART_CONCURRENCY + 2, `MinIO kept its connections open (${said})`)
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
  const seen = relay.counts()
  // The parts, and no request under the SDK's 2 MiB threshold (create, complete).
  t.equal(seen.expects, 3, `${seen.expects} requests asked for 100-continue (3 parts) (${JSON.stringify(seen)})`)
  // What the default spares: with the header, no part's connection is reused.
  t.ok(seen.connections >= 3, `${seen.connections} connections for 3 parts (${JSON.stringify(seen)})`)
})
