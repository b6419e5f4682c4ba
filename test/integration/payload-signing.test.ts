// payloadSigning: parts and single PUTs go out as UNSIGNED-PAYLOAD (integrity from
// the CRC32 checksum S3 verifies) or signed (SHA-256 of the body in the signature).
// Either way a byte corrupted on the way to S3 is refused by S3: the plugin sends
// the part again from its buffer, or fails the upload and leaves nothing behind.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { startApp } from '../support/app.ts'
import { isPutObject, isUploadPart, startFaultProxy, type FaultRequest } from '../support/fault-proxy.ts'
import { postMultipart } from '../support/multipart.ts'
import { expectNoPendingUploads, freshBucket, listKeys, needsStrictS3, objectDigest, pluginS3Options, sha256, testClient, testS3 } from '../support/s3.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

const isBody = (request: FaultRequest): boolean => isUploadPart(request) || isPutObject(request)

/** A proxy in front of the test S3 that remembers the headers of every part and single PUT. */
async function proxy (t: { teardown: (fn: () => unknown) => void }): Promise<{ endpoint: string, bodies: IncomingHttpHeaders[], setFlips: (rules: Parameters<Awaited<ReturnType<typeof startFaultProxy>>['setRules']>[0]) => void, flips: () => number }> {
  const proxy = await startFaultProxy({ target: server.endpoint })
  t.teardown(() => proxy.close())
  const bodies: IncomingHttpHeaders[] = []
  // Never matches: only records what the plugin sent.
  const record = { match: (request: FaultRequest) => { if (isBody(request)) bodies.push(request.headers); return false }, fault: { kind: 'delay' as const, ms: 0 } }
  return {
    endpoint: proxy.endpoint,
    bodies,
    setFlips: (rules) => { proxy.setRules([record, ...rules]) },
    flips: () => proxy.stats().faults.flip
  }
}

for (const payloadSigning of ['unsigned', 'signed'] as const) {
  for (const mode of ['workers', 'inline'] as const) {
    t.test(`${payloadSigning}, mode ${mode}: a flipped byte is refused by S3 and the part is sent again`, { skip }, async (t) => {
      const bucket = await freshBucket(t, server, client)
      const { endpoint, bodies, setFlips, flips } = await proxy(t)
      // The first part and the first single PUT are corrupted on the way.
      setFlips([
        { match: isUploadPart, fault: { kind: 'flip' }, times: 1 },
        { match: isPutObject, fault: { kind: 'flip' }, times: 1 }
      ])
      const { url } = await startApp(t, server, {
        bucket,
        mode,
        payloadSigning,
        s3: { ...pluginS3Options(server), endpoint },
        retry: { attempts: 3, baseDelayMs: 10, maxDelayMs: 50 }
      })
      for (const size of [12 * MiB + 7, 1000]) {
        const data = randomBytes(size)
        const response = await postMultipart(`${url}/upload`, [{ name: 'file', filename: 'f.bin', data }])
        t.equal(response.status, 200, `${size} bytes: ${response.body.slice(0, 300)}`)
        const file = response.json()
        t.equal((await objectDigest(client, bucket, file.key)).sha256, sha256(data), `${size} bytes: the stored object is the uncorrupted one`)
        t.match(file.checksum, /^[A-Za-z0-9+/=]+(-\d+)?$/, 'CRC32 (the default checksum) came back')
      }
      t.equal(flips(), 2, 'one part and one single PUT were corrupted')
      // 3 parts + 1 resent, 1 single PUT + 1 resent.
      t.equal(bodies.length, 6)
      for (const headers of bodies) {
        t.match(headers['x-amz-checksum-crc32'], /^[A-Za-z0-9+/]{6}==$/, 'every body carries its CRC32')
        if (payloadSigning === 'unsigned') t.equal(headers['x-amz-content-sha256'], 'UNSIGNED-PAYLOAD')
        else t.match(headers['x-amz-content-sha256'], /^[0-9a-f]{64}$/, 'the body\'s SHA-256 is signed')
        t.match(headers.authorization, /x-amz-checksum-crc32/, 'the checksum header is signed')
      }
      await expectNoPendingUploads(t, server, client, bucket)
    })

    t.test(`${payloadSigning}, mode ${mode}: a part corrupted on every attempt fails the upload cleanly`, { skip }, async (t) => {
      const bucket = await freshBucket(t, server, client)
      const { endpoint, setFlips } = await proxy(t)
      setFlips([{ match: isUploadPart, fault: { kind: 'flip' } }, { match: isPutObject, fault: { kind: 'flip' } }])
      const logLines: Array<Record<string, unknown>> = []
      const { url } = await startApp(t, server, {
        bucket,
        mode,
        payloadSigning,
        s3: { ...pluginS3Options(server), endpoint },
        retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 50 }
      }, undefined, logLines)
      for (const size of [12 * MiB, 1000]) {
        const response = await postMultipart(`${url}/upload`, [{ name: 'file', filename: 'f.bin', data: randomBytes(size) }])
        t.equal(response.status, 502, `${size} bytes: ${response.body.slice(0, 300)}`)
      }
      // What S3 said: a 400 for the body that does not match its checksum / signed hash, after both attempts.
      const refusals = logLines.map((line) => (line.err as { s3?: { code?: string, status?: number, attempts?: number } } | undefined)?.s3 ?? (line.s3 as { code?: string, status?: number, attempts?: number } | undefined))
        .filter((s3) => s3?.status === 400)
      t.ok(refusals.length >= 2, `S3 refused the corrupted bodies (${JSON.stringify(refusals)})`)
      for (const s3 of refusals) {
        t.match(s3?.code, /^(BadDigest|XAmzContentChecksumMismatch|XAmzContentSHA256Mismatch)$/, `refused as ${s3?.code ?? '?'}`)
        t.equal(s3?.attempts, 2, 'retried before giving up')
      }
      t.same(await listKeys(client, bucket), [], 'nothing was stored')
      await expectNoPendingUploads(t, server, client, bucket)
    })
  }
}

t.test('payloadSigning: unsigned needs a checksum; the default follows the checksum', async (t) => {
  const { configOf, payloadSigningOf } = await import('../../lib/options.ts')
  t.throws(() => configOf({ bucket: 'uploads', checksum: 'none', payloadSigning: 'unsigned' }), { code: 'FST_S3CHUNK_INVALID_OPTION', message: /"payloadSigning": 'unsigned' needs a checksum/ })
  t.equal(payloadSigningOf(configOf({ bucket: 'uploads' })), 'unsigned', 'default: CRC32, unsigned')
  t.equal(configOf({ bucket: 'uploads' }).checksum, 'CRC32')
  t.equal(payloadSigningOf(configOf({ bucket: 'uploads', checksum: 'none' })), 'signed', 'no checksum: signed')
  t.equal(payloadSigningOf(configOf({ bucket: 'uploads', checksum: 'SHA256' })), 'unsigned')
  t.equal(payloadSigningOf(configOf({ bucket: 'uploads', payloadSigning: 'signed' })), 'signed')
  t.throws(() => configOf({ bucket: 'uploads', payloadSigning: 'none' as never }), { message: /"payloadSigning"/ })
})

t.test('a later registration may repeat payloadSigning as the first one resolved it, not change it', async (t) => {
  const { default: Fastify } = await import('fastify')
  const { default: s3Chunk } = await import('fastify-s3-chunk')
  const app = Fastify()
  t.after(() => app.close())
  await app.register(s3Chunk, { bucket: 'uploads', s3: pluginS3Options(server) })
  await app.register(async (scope) => {
    await scope.register(s3Chunk, { payloadSigning: 'unsigned', checksum: 'CRC32' })
  })
  await app.ready()
  t.pass('the default (unsigned, with the CRC32 default) given again is accepted')

  const other = Fastify()
  t.after(() => other.close())
  await other.register(s3Chunk, { bucket: 'uploads', s3: pluginS3Options(server) })
  await t.rejects(async () => {
    await other.register(async (scope) => {
      await scope.register(s3Chunk, { payloadSigning: 'signed' })
    }).ready()
  }, { code: 'FST_S3CHUNK_INVALID_OPTION', message: /"payloadSigning": engine options are set once per app/ })
})
