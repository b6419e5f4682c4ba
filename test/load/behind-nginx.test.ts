// Behind nginx (Debian's, as a non-root process of this test): the shipped
// configuration (examples/deploy/nginx.conf) streams a 1 GiB upload through
// to the plugin and into S3 with nothing written to nginx's disk, and the
// plugin's backpressure reaches the client — with S3 paused (SIGSTOP on a
// MinIO of this test's own) the client's bytes stop and the server's memory
// stays flat; resumed, the upload finishes byte-identical. And nginx's
// defaults would have failed: 413 past 1 MiB, and with only the size limit
// lifted the whole body goes to a temp file first — the same detectors fire.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { CreateBucketCommand } from '@aws-sdk/client-s3'
import { needsMinioBinary, startOwnMinio } from '../support/minio-cluster.ts'
import { needsNginx, nginxPort, renderDeployConfig, startNginx, type Nginx } from '../support/nginx.ts'
import { startServerProcess } from '../support/server-process.ts'
import { streamUpload } from '../support/stream-upload.ts'
import { freshBucket, objectDigest, openUploads, pluginS3Options, testClient, testS3 } from '../support/s3.ts'

const MiB = 1024 * 1024
const GiB = 1024 * MiB
const BUDGET = 64 * MiB
/** The line nginx logs (at warn) whenever it spools a request body to disk. */
const SPOOLED = 'a client request body is buffered to a temporary file'

const skip = needsNginx() || needsMinioBinary()

/**
 * Watches nginx's client body temp directory while an upload runs: the most
 * files and bytes seen at once. nginx unlinks a body temp file right after
 * creating it (unless client_body_in_file_only), so an empty directory alone
 * proves little: write_bytes of its processes and its "buffered to a
 * temporary file" warning are the detectors that catch spooling (the second
 * test shows them firing).
 */
function watchBodyTemp (nginx: Nginx): { stop: () => { files: number, bytes: number, samples: number } } {
  const seen = { files: 0, bytes: 0, samples: 0 }
  const timer = setInterval(() => {
    const now = nginx.bodyTempUsage()
    seen.samples++
    seen.files = Math.max(seen.files, now.files)
    seen.bytes = Math.max(seen.bytes, now.bytes)
  }, 25)
  return { stop: () => { clearInterval(timer); return seen } }
}

async function errorLog (nginx: Nginx): Promise<string> {
  const { readFile } = await import('node:fs/promises')
  return await readFile(nginx.errorLog, 'utf8').catch(() => '')
}

t.test('the shipped nginx config: 1 GiB streamed through, nothing on nginx\'s disk, backpressure end to end', { skip }, async (t) => {
  const own = await startOwnMinio()
  t.teardown(() => own.server.stop())
  const client = testClient(own.server)
  const bucket = `nginx-${Date.now().toString(36)}`
  await client.send(new CreateBucketCommand({ Bucket: bucket }))
  const app = await startServerProcess(t, { bucket, s3: pluginS3Options(own.server), appendTimestamp: false, maxBufferedBytes: BUDGET })
  const port = await nginxPort()
  const nginx = await startNginx({ port, site: renderDeployConfig({ port, upstreams: [app.url.replace('http://', '')] }) })
  t.teardown(() => nginx.stop())

  const writtenBefore = nginx.writeBytes()
  const watch = watchBodyTemp(nginx)
  let sent = 0
  const upload = streamUpload(`${nginx.url}/upload`, { seed: 1, size: GiB, filename: 'one-gib.bin', onSent: (bytes) => { sent = bytes } })

  // Pause S3 a quarter of the way in (bounded wait).
  for (let i = 0; i < 1200 && sent < 256 * MiB; i++) await sleep(50)
  t.ok(sent >= 256 * MiB, `the client got 256 MiB out (${(sent / MiB).toFixed(0)} MiB)`)
  own.node.pause()
  const sentAtPause = sent
  // The client's bytes stop: nothing more goes out for 3 s (within 30 s).
  let last = sent
  let stillFor = 0
  for (let i = 0; i < 60 && stillFor < 3000; i++) {
    await sleep(500)
    stillFor = sent === last ? stillFor + 500 : 0
    last = sent
  }
  const stalledAt = sent
  t.ok(stillFor >= 3000, `the client stalled while S3 was paused (no bytes for ${stillFor} ms)`)
  // What left the client after the pause sits in the plugin's budget and the socket buffers on the way.
  t.ok(stalledAt - sentAtPause <= BUDGET + 64 * MiB, `${((stalledAt - sentAtPause) / MiB).toFixed(1)} MiB left the client after the pause (≤ budget ${BUDGET / MiB} MiB + 64 MiB of socket buffers)`)
  // The server takes no more memory while stalled. Bounded generously: the
  // proof of backpressure is the client's bytes stopping (above and below);
  // RSS moves with the GC on its own (a 16 MiB window was once exceeded on
  // Node 24 in CI: 202–244 MiB with no byte arriving), but a server that kept
  // taking the body would grow past its budget within these 3 s.
  const samples = []
  for (let i = 0; i < 4; i++) {
    samples.push(await app.health())
    await sleep(750)
  }
  const rss = samples.map((s) => s.rss)
  const growth = Math.max(...rss) - (rss[0] as number)
  t.ok(growth < BUDGET, `server RSS while stalled: ${rss.map((r) => (r / MiB).toFixed(0)).join(', ')} MiB (grew ${(Math.max(0, growth) / MiB).toFixed(0)} MiB, bound: the ${BUDGET / MiB} MiB budget)`)
  t.ok(samples.every((s) => s.stats.bufferedBytes <= BUDGET), 'part buffers within the budget while stalled')
  t.equal(sent, stalledAt, 'and still no bytes from the client')
  own.node.resume()

  const result = await upload
  const seen = watch.stop()
  const written = nginx.writeBytes() - writtenBefore
  t.equal(result.status, 200, `stored: ${result.body.slice(0, 200)}`)
  const digest = await objectDigest(client, bucket, 'one-gib.bin')
  t.equal(digest.size, GiB, '1 GiB stored')
  t.equal(digest.sha256, result.sha256, 'byte-identical (SHA-256)')
  t.same(seen.files, 0, `nginx's client body temp directory stayed empty (${seen.samples} looks, every 25 ms)`)
  t.same(nginx.bodyTempUsage(), { files: 0, bytes: 0 }, 'and is empty now')
  t.notMatch(await errorLog(nginx), SPOOLED, 'nginx never logged spooling a body to disk')
  t.ok(written < MiB, `nginx's processes wrote ${written} bytes to storage (/proc/<pid>/io write_bytes) for a 1 GiB upload`)
  t.same(await openUploads(client, bucket), [], 'no multipart upload left open')
  t.comment(`behind nginx: 1 GiB stored byte-identical; client stalled ${((stalledAt - sentAtPause) / MiB).toFixed(1)} MiB after S3 paused; server RSS while stalled ${(Math.min(...rss) / MiB).toFixed(0)}–${(Math.max(...rss) / MiB).toFixed(0)} MiB, part buffers peak ${(samples.at(-1)?.stats.peakBufferedBytes ?? 0) / MiB} MiB of ${BUDGET / MiB}; nginx body temp: ${seen.files} files seen in ${seen.samples} looks, write_bytes ${written}`)
})

t.test('nginx\'s defaults would have failed: 413 past 1 MiB; with the size limit lifted the body is spooled to disk', { skip }, async (t) => {
  const server = await testS3()
  const client = testClient(server)
  const bucket = await freshBucket(t, server, client)
  const app = await startServerProcess(t, { bucket, s3: pluginS3Options(server), appendTimestamp: false })
  const upstream = app.url.replace('http://', '')

  // A site as people first write it: proxy_pass and nothing else.
  const plainPort = await nginxPort()
  const plain = await startNginx({ port: plainPort, site: `server { listen 127.0.0.1:${plainPort}; location / { proxy_pass http://${upstream}; } }` })
  t.teardown(() => plain.stop())
  const refused = await streamUpload(`${plain.url}/upload`, { seed: 2, size: 2 * MiB, filename: 'two-mib.bin' })
  t.equal(refused.status, 413, 'the default client_max_body_size (1 MiB) refuses a 2 MiB upload')

  // The usual first fix, and only it: the body is buffered — to disk — before the app sees it.
  const liftedPort = await nginxPort()
  const lifted = await startNginx({ port: liftedPort, site: `server { listen 127.0.0.1:${liftedPort}; client_max_body_size 0; location / { proxy_pass http://${upstream}; } }` })
  t.teardown(() => lifted.stop())
  const before = lifted.writeBytes()
  const watch = watchBodyTemp(lifted)
  const size = 48 * MiB
  const spooled = await streamUpload(`${lifted.url}/upload`, { seed: 3, size, filename: 'spooled.bin' })
  const seen = watch.stop()
  const written = lifted.writeBytes() - before
  t.equal(spooled.status, 200, `stored (after nginx had the whole body on disk): ${spooled.body.slice(0, 300)} ${spooled.error?.message ?? ''}`)
  t.match(await errorLog(lifted), SPOOLED, 'nginx logged spooling the body to a temporary file')
  t.ok(written >= size, `nginx wrote the body to storage: write_bytes ${(written / MiB).toFixed(1)} MiB (temp files seen in the directory: ${seen.files} — nginx unlinks them at once)`)
  t.comment(`nginx defaults: 2 MiB → ${refused.status}; size limit lifted: a ${size / MiB} MiB body spooled (temp files seen ${seen.files}, max ${(seen.bytes / MiB).toFixed(1)} MiB, write_bytes ${(written / MiB).toFixed(1)} MiB)`)
  t.equal((await objectDigest(client, bucket, 'spooled.bin')).sha256, spooled.sha256)
})
