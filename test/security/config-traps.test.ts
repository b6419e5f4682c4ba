// Config traps (issue 9): a credentials object that was also given to an
// S3Client failed boot (the SDK adds `$source` to it and the schema was
// strict); two registrations' ensureLifecycleRule() overwrote each other (one
// fixed rule ID); a failed bucket call said "the file could not be stored".
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { randomBytes } from 'node:crypto'
import { mockClient } from 'aws-sdk-client-mock'
import { GetBucketLifecycleConfigurationCommand, HeadBucketCommand, PutBucketLifecycleConfigurationCommand, S3Client, type LifecycleRule } from '@aws-sdk/client-s3'
import s3Chunk from 'fastify-s3-chunk'
import { postMultipart } from '../support/multipart.ts'
import { freshBucket, objectExists, pluginS3Options, testClient, testS3 } from '../support/s3.ts'

const server = await testS3()
const client = testClient(server)

async function listen (t: { teardown: (fn: () => unknown) => void }, app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { await app.close() })
  const address = app.server.address()
  return `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
}

t.test('a credentials object as the SDK leaves it ($source) is accepted, and the plugin neither changes nor freezes it', async (t) => {
  const bucket = await freshBucket(t, server, client)
  const base = pluginS3Options(server)
  const credentials: { accessKeyId: string, secretAccessKey: string, $source?: Record<string, unknown> } = { ...base.credentials }
  // The app's own client, given the same object, used once: the SDK may add its bookkeeping to it.
  const appClient = new S3Client({ ...base, credentials, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' })
  t.teardown(() => { appClient.destroy() })
  await appClient.send(new HeadBucketCommand({ Bucket: bucket }))
  t.comment(`after one SDK request the object has keys: ${Object.keys(credentials).join(', ')}`)
  // What the SDK adds (on some versions only after certain calls): make sure the trap is armed.
  credentials.$source ??= {}
  const snapshot = structuredClone(credentials)

  const app = Fastify()
  await app.register(s3Chunk, { bucket, mode: 'inline', appendTimestamp: false, s3: { ...base, credentials } })
  app.post('/upload', async (request) => await request.s3File())
  const url = await listen(t, app)
  const response = await postMultipart(`${url}/upload`, [{ name: 'file', filename: 'creds.bin', data: randomBytes(1000) }])
  t.equal(response.status, 200, `an upload works (${response.body.slice(0, 200)})`)
  t.ok(await objectExists(client, bucket, 'creds.bin'), 'stored')
  t.strictSame(credentials, snapshot, 'the credentials object is unchanged')
  t.notOk(Object.isFrozen(credentials), 'the credentials object is not frozen')
  t.notOk(Object.isFrozen(credentials.$source), 'its $source is not frozen')
})

t.test('ensureLifecycleRule() on a bucket that does not exist: FST_S3CHUNK_BUCKET_CALL, not "file could not be stored"', async (t) => {
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await app.register(s3Chunk, { bucket: `no-such-bucket-${randomBytes(4).toString('hex')}`, mode: 'inline', s3: pluginS3Options(server) })
  await app.ready()
  const error = await app.s3Chunk.ensureLifecycleRule().then(() => null, (caught: unknown) => caught as { code?: string, message?: string, statusCode?: number })
  t.ok(error !== null, 'it rejects')
  t.match(error, { code: 'FST_S3CHUNK_BUCKET_CALL', statusCode: 502 })
  t.notMatch(error?.message ?? '', /file could not be stored/i, `its message is about the bucket call (${String(error?.message)})`)
})

// MinIO refuses a lifecycle rule whose only action is AbortIncompleteMultipartUpload
// (see test/integration/maintenance.test.ts), so the bucket is an in-memory one
// behind aws-sdk-client-mock, on S3Client itself: both registrations' own clients
// (mode inline: all in this thread) talk to it. Last in the file: the mock is
// restored at its end, before nothing else runs.
t.test('two sibling registrations with different keyPrefix each keep their own lifecycle rule', async (t) => {
  let stored: LifecycleRule[] | null = null
  const s3 = mockClient(S3Client)
  t.teardown(() => { s3.restore() })
  s3.on(GetBucketLifecycleConfigurationCommand).callsFake(async () => {
    if (stored === null) throw Object.assign(new Error('The lifecycle configuration does not exist'), { name: 'NoSuchLifecycleConfiguration', $metadata: { httpStatusCode: 404 } })
    return { Rules: structuredClone(stored) }
  })
  s3.on(PutBucketLifecycleConfigurationCommand).callsFake(async (input: { LifecycleConfiguration?: { Rules?: LifecycleRule[] } }) => {
    stored = structuredClone(input.LifecycleConfiguration?.Rules ?? [])
    return {}
  })
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  const scopes: Record<string, FastifyInstance> = {}
  for (const keyPrefix of ['alpha', 'beta']) {
    await app.register(async (child) => {
      await child.register(s3Chunk, { bucket: 'shared-bucket', mode: 'inline', keyPrefix, s3: pluginS3Options(server) })
      scopes[keyPrefix] = child
    })
  }
  await app.ready()
  const alpha = await scopes.alpha?.s3Chunk.ensureLifecycleRule()
  const beta = await scopes.beta?.s3Chunk.ensureLifecycleRule()
  t.not(alpha?.ID, beta?.ID, `rule IDs differ (${String(alpha?.ID)} / ${String(beta?.ID)})`)
  // Each registration owns three rules: abort its incomplete multipart uploads, expire its staged direct uploads and its tus state.
  const rules: LifecycleRule[] = stored ?? []
  const aborting = rules.filter((rule) => rule.AbortIncompleteMultipartUpload !== undefined)
  t.same(aborting.map((rule) => rule.Filter?.Prefix).sort(), ['alpha/', 'beta/'], 'both rules are on the bucket afterwards, one per prefix')
  t.same(rules.filter((rule) => rule.Expiration !== undefined).map((rule) => rule.Filter?.Prefix).sort(), ['alpha/.staging/', 'alpha/.tus/', 'beta/.staging/', 'beta/.tus/'], 'and both staging and tus-state rules')
  t.equal(new Set(rules.map((rule) => rule.ID)).size, rules.length, 'with different IDs')
  for (const rule of aborting) t.match(rule, { Status: 'Enabled', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } })
  // Idempotent: a second call replaces its own rules only.
  await scopes.alpha?.s3Chunk.ensureLifecycleRule()
  t.equal((stored ?? []).length, 6, 'calling again keeps three rules per prefix')
})
