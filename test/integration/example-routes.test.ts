// The README's "Upload routes" example (examples/routes) against MinIO with a
// KMS key: avatars and videos with their own rules, on one pool and one budget.
import t from 'tap'
import { HeadObjectCommand } from '@aws-sdk/client-s3'
import type { FastifyInstance } from 'fastify'
import type { S3ChunkStats, UploadProgress } from 'fastify-s3-chunk'
import { buildRoutesApp } from '../../examples/routes/app.ts'
import { boundary, multipartChunks, postMultipart, postRaw } from '../support/multipart.ts'
import { mp4Bytes, pngBytes } from '../support/samples.ts'
import { expectNoPendingUploads, freshBucket, kmsKeyId, needsStrictS3, objectDigest, pluginS3Options, sha256, testClient, testS3 } from '../support/s3.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const kms = kmsKeyId(server)
const skip = needsStrictS3(server) || kms.skip

async function start (t: { teardown: (fn: () => unknown) => void }, bucket: string, onProgress: (event: UploadProgress) => void): Promise<{ app: FastifyInstance, url: string }> {
  const app = await buildRoutesApp({ bucket, s3: pluginS3Options(server), kmsKeyId: kms.keyId ?? '', onProgress, logLevel: 'silent' })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { await app.close() })
  const address = app.server.address()
  return { app, url: `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}` }
}

t.test('avatars and videos: their own rules, one pool, one budget', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const progress: UploadProgress[] = []
  // What the one engine counts in flight when the avatar reports its first bytes (the upload is running then).
  const inFlightAtAvatarStart: number[] = []
  let videoStarted = (): void => {}
  const videoInFlight = new Promise<void>((resolve) => { videoStarted = resolve })
  const { app, url } = await start(t, bucket, (event) => {
    progress.push(event)
    if (event.key.startsWith('videos/')) videoStarted()
    if (event.key.startsWith('avatars/') && !event.done && inFlightAtAvatarStart.length === 0) inFlightAtAvatarStart.push(app.s3Chunk.stats().uploadsInFlight)
  })

  const tooBig = await postMultipart(`${url}/avatars`, [{ name: 'file', filename: 'huge.png', contentType: 'image/png', data: pngBytes(6 * MiB) }])
  t.equal(tooBig.status, 413, 'an avatar over 5 MiB')
  t.equal((await postMultipart(`${url}/avatars`, [{ name: 'file', filename: 'clip.mp4', data: mp4Bytes(1000) }])).status, 415, 'a video is not an avatar')
  inFlightAtAvatarStart.length = 0

  // Both routes at once, sampling the one engine's figures meanwhile. The video's closing
  // boundary is held back until the avatar is answered: its upload is surely still running
  // while the avatar's runs, whatever the machine's speed.
  const samples: S3ChunkStats[] = []
  const sampler = setInterval(() => { samples.push(app.s3Chunk.stats()) }, 20)
  t.teardown(() => { clearInterval(sampler) })
  const video = mp4Bytes(24 * MiB)
  const avatar = pngBytes(300 * 1024)
  const separator = boundary()
  const videoBody = multipartChunks([{ name: 'title', value: 'Été à Paris' }, { name: 'file', filename: 'holiday 2026.mp4', data: video }], separator)
  let avatarAnswered = (): void => {}
  const avatarDone = new Promise<void>((resolve) => { avatarAnswered = resolve })
  async function * heldBeforeItsEnd (): AsyncGenerator<Uint8Array> {
    yield * videoBody.slice(0, -1)
    await avatarDone
    yield videoBody.at(-1) as Uint8Array
  }
  const videoSent = postRaw(`${url}/videos`, heldBeforeItsEnd(), {
    'content-type': `multipart/form-data; boundary=${separator}`,
    'content-length': String(videoBody.reduce((sum, chunk) => sum + chunk.byteLength, 0)),
    'x-user': 'u1'
  })
  // Bounded: the video's first progress report, or its answer should it fail at once.
  await Promise.race([videoInFlight, videoSent])
  const avatarAnswer = await postMultipart(`${url}/avatars`, [{ name: 'file', filename: 'me.png', data: avatar }]).finally(avatarAnswered)
  const videoAnswer = await videoSent
  clearInterval(sampler)
  t.equal(videoAnswer.status, 200, videoAnswer.body.slice(0, 300))
  t.equal(avatarAnswer.status, 200, avatarAnswer.body.slice(0, 300))
  const stored = { video: videoAnswer.json(), avatar: avatarAnswer.json() }
  t.match(stored.video, { key: /^videos\/holiday_2026_\d{8}T\d{9}Z-[0-9a-f]{12}\.mp4$/, contentType: 'video/mp4', parts: 5 })
  t.match(stored.avatar, { key: /^avatars\/me_\d{8}T\d{9}Z-[0-9a-f]{12}\.png$/, contentType: 'image/png', parts: 0 })
  t.equal((await objectDigest(client, bucket, stored.video.key)).sha256, sha256(video))

  const videoHead = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: stored.video.key }))
  t.equal(videoHead.ServerSideEncryption, 'aws:kms', 'the video is encrypted with SSE-KMS')
  t.match(videoHead.SSEKMSKeyId ?? '', kms.keyId ?? '')
  t.same(videoHead.Metadata, { title: encodeURIComponent('Été à Paris'), user: 'u1' }, 'metadata from the form (non-ASCII percent-encoded) and the user')
  t.equal(videoHead.ContentDisposition, 'attachment; filename="holiday 2026.mp4"; filename*=UTF-8\'\'holiday%202026.mp4')
  t.equal(videoHead.ETag?.replace(/"/g, ''), stored.video.etag, 'the S3File ETag is the object\'s, though not an MD5 under KMS')
  const avatarHead = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: stored.avatar.key }))
  t.equal(avatarHead.CacheControl, 'public, max-age=31536000, immutable')
  t.equal(avatarHead.ServerSideEncryption === 'aws:kms', false, 'the avatar is not KMS-encrypted')

  t.same(inFlightAtAvatarStart, [2], 'both uploads were in flight in the one engine at once')
  t.ok(samples.every((sample) => sample.maxBufferedBytes === 256 * MiB && sample.bufferedBytes <= 256 * MiB), 'one budget, never exceeded')
  t.ok(Math.max(...samples.map((sample) => sample.bufferedBytes)) > 0, 'the video\'s parts drew on it')
  const final = await (await fetch(`${url}/stats`)).json() as S3ChunkStats
  t.ok((final.pool?.completed ?? 0) >= 5, `the video's parts went through the one worker pool (${final.pool?.completed ?? 0} tasks)`)
  t.comment(`stats() after both routes' uploads: ${JSON.stringify(final)}`)

  const done = progress.filter((event) => event.done).map((event) => event.key).sort()
  t.same(done, [stored.avatar.key, stored.video.key], 'progress reported to the end for each')
  t.ok(progress.some((event) => event.key === stored.video.key && !event.done && event.bytesReceived > 0), 'and on the way for the video')
  await expectNoPendingUploads(t, server, client, bucket)
})
