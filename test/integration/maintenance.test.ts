// Orphan cleanup: abortStaleUploads() and the lifecycle rule.
import t from 'tap'
import {
  CreateMultipartUploadCommand,
  GetBucketLifecycleConfigurationCommand,
  PutBucketLifecycleConfigurationCommand
} from '@aws-sdk/client-s3'
import Fastify from 'fastify'
import s3Chunk from 'fastify-s3-chunk'
import type { Test } from 'tap'
import { expectNoPendingUploads, freshBucket, needsStrictS3, pendingUploads, pluginS3Options, testClient, testS3 } from '../support/s3.ts'

const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

async function appFor (t: Test, bucket: string): Promise<ReturnType<typeof Fastify>> {
  const app = Fastify()
  await app.register(s3Chunk, { bucket, keyPrefix: 'media', mode: 'inline', s3: pluginS3Options(server) })
  t.teardown(() => app.close())
  return app
}

t.test('abortStaleUploads aborts old uploads under keyPrefix only', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const app = await appFor(t, bucket)
  for (const key of ['media/a.bin', 'media/deep/b.bin', 'other/c.bin', 'mediaX/d.bin']) {
    await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }))
  }
  const young = await app.s3Chunk.abortStaleUploads({ olderThan: 3600_000 })
  t.same(young.aborted, [], 'uploads younger than olderThan are left alone')
  const { aborted } = await app.s3Chunk.abortStaleUploads({ olderThan: 0 })
  t.same(aborted.map((upload: { key: string }) => upload.key).sort(), ['media/a.bin', 'media/deep/b.bin'])
  const left = (await pendingUploads(client, bucket)).map((upload) => upload.key).sort()
  t.same(left, ['mediaX/d.bin', 'other/c.bin'], 'uploads outside keyPrefix untouched')
  // Clean up what this test created outside the prefix.
  const other = Fastify()
  await other.register(s3Chunk, { bucket, mode: 'inline', s3: pluginS3Options(server) })
  await other.s3Chunk.abortStaleUploads({ olderThan: 0 })
  await other.close()
  await expectNoPendingUploads(t, server, client, bucket)
})

// MinIO refuses a lifecycle rule whose only action is AbortIncompleteMultipartUpload
// (it wants an Expiration or Transition too) and cleans stale multipart uploads by
// itself (`api stale_uploads_expiry`, 24 h); versitygw has no lifecycle rules at all
// (PutBucketLifecycleConfiguration is 501 NotImplemented). The rule's shape and the
// merging are unit-tested against a mock (test/unit/maintenance.test.ts); here: a
// store that refuses it gives a clear BucketCallError and the bucket's rules are left
// as they were — each store by its own documented answer.
t.test('ensureLifecycleRule on a store that refuses the rule fails clearly and changes nothing', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const app = await appFor(t, bucket)
  const existing = [{ ID: 'keep-me', Status: 'Enabled' as const, Filter: { Prefix: 'logs/' }, Expiration: { Days: 30 } }]
  const seeded = await client.send(new PutBucketLifecycleConfigurationCommand({ Bucket: bucket, LifecycleConfiguration: { Rules: existing } }))
    .then(() => null, (error: { name?: string, $metadata?: { httpStatusCode?: number } }) => error)
  if (seeded !== null) {
    // A store without lifecycle rules: it must say so (501 NotImplemented), and so must the plugin.
    t.match(seeded, { name: 'NotImplemented', $metadata: { httpStatusCode: 501 } }, `this store (${server.kind}) has no lifecycle rules`)
    await t.rejects(app.s3Chunk.ensureLifecycleRule({ days: 2 }), {
      code: 'FST_S3CHUNK_BUCKET_CALL',
      s3: { operation: /^(Get|Put)BucketLifecycleConfiguration$/, code: 'NotImplemented', status: 501 }
    })
    return
  }
  await t.rejects(app.s3Chunk.ensureLifecycleRule({ days: 2 }), {
    code: 'FST_S3CHUNK_BUCKET_CALL',
    s3: { operation: 'PutBucketLifecycleConfiguration', code: 'InvalidArgument', status: 400 }
  })
  const { Rules } = await client.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket }))
  t.same(Rules?.map((rule) => rule.ID), ['keep-me'], 'existing rules untouched')
})
