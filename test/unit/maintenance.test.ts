// Orphan cleanup against a mock S3: which uploads are aborted, and the lifecycle rule's shape.
import t from 'tap'
import { mockClient } from 'aws-sdk-client-mock'
import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  GetBucketLifecycleConfigurationCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutBucketLifecycleConfigurationCommand,
  S3Client
} from '@aws-sdk/client-s3'
import { abortStaleUploads, ensureLifecycleRule, ensureLifecycleRulesAt, lifecycleRuleId, stagingRuleId, tusRuleId } from '../../lib/maintenance.ts'

function setup (): { client: S3Client, s3: ReturnType<typeof mockClient> } {
  const client = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } })
  return { client, s3: mockClient(client) }
}

const now = Date.parse('2026-11-21T12:00:00Z')
const hoursAgo = (h: number): Date => new Date(now - h * 3600_000)

t.test('abortStaleUploads: old uploads under the prefix, every page, nothing else', async (t) => {
  const { client, s3 } = setup()
  s3.on(ListMultipartUploadsCommand, { KeyMarker: undefined }).resolves({
    IsTruncated: true,
    NextKeyMarker: 'media/m',
    NextUploadIdMarker: 'u2',
    Uploads: [
      { Key: 'media/old.bin', UploadId: 'u1', Initiated: hoursAgo(48) },
      { Key: 'media/young.bin', UploadId: 'u2', Initiated: hoursAgo(1) }
    ]
  })
  s3.on(ListMultipartUploadsCommand, { KeyMarker: 'media/m' }).resolves({
    IsTruncated: false,
    Uploads: [
      { Key: 'media/z/old2.bin', UploadId: 'u3', Initiated: hoursAgo(30) },
      { Key: 'mediaX/old.bin', UploadId: 'u4', Initiated: hoursAgo(30) },
      { Key: 'other/old.bin', UploadId: 'u5', Initiated: hoursAgo(30) }
    ]
  })
  s3.on(AbortMultipartUploadCommand).resolves({})
  s3.on(ListObjectsV2Command).resolves({ IsTruncated: false, Contents: [] })
  const { aborted } = await abortStaleUploads(client, 'uploads', 'media', 24 * 3600_000, { now })
  t.same(aborted.map((upload) => upload.uploadId), ['u1', 'u3'])
  t.same(s3.commandCalls(AbortMultipartUploadCommand).map((c) => c.args[0].input), [
    { Bucket: 'uploads', Key: 'media/old.bin', UploadId: 'u1' },
    { Bucket: 'uploads', Key: 'media/z/old2.bin', UploadId: 'u3' }
  ])
  t.equal(s3.commandCalls(ListMultipartUploadsCommand)[1]?.args[0].input.UploadIdMarker, 'u2', 'paged with both markers')
})

t.test('abortStaleUploads: an upload already gone (NoSuchUpload) is skipped, the sweep goes on', async (t) => {
  const { client, s3 } = setup()
  s3.on(ListMultipartUploadsCommand).resolves({
    IsTruncated: false,
    Uploads: [
      { Key: 'media/a.bin', UploadId: 'gone', Initiated: hoursAgo(48) },
      { Key: 'media/b.bin', UploadId: 'open', Initiated: hoursAgo(48) }
    ]
  })
  // Aborted meanwhile by another instance's sweep (S3 and versitygw answer 404; MinIO 204).
  s3.on(AbortMultipartUploadCommand, { UploadId: 'gone' }).rejects(Object.assign(new Error('The specified upload does not exist'), { name: 'NoSuchUpload', $metadata: { httpStatusCode: 404 } }))
  s3.on(AbortMultipartUploadCommand, { UploadId: 'open' }).resolves({})
  s3.on(ListObjectsV2Command).resolves({ IsTruncated: false, Contents: [] })
  const { aborted } = await abortStaleUploads(client, 'uploads', 'media', 24 * 3600_000, { now })
  t.same(aborted.map((upload) => upload.uploadId), ['open'], 'only the one this sweep aborted is reported')
  t.equal(s3.commandCalls(AbortMultipartUploadCommand).length, 2, 'both were tried')
})

t.test('abortStaleUploads: another abort failure still fails the sweep', async (t) => {
  const { client, s3 } = setup()
  s3.on(ListMultipartUploadsCommand).resolves({ IsTruncated: false, Uploads: [{ Key: 'media/a.bin', UploadId: 'u1', Initiated: hoursAgo(48) }] })
  s3.on(AbortMultipartUploadCommand).rejects(Object.assign(new Error('Access Denied'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } }))
  s3.on(ListObjectsV2Command).resolves({ IsTruncated: false, Contents: [] })
  await t.rejects(abortStaleUploads(client, 'uploads', 'media', 24 * 3600_000, { now }), { code: 'FST_S3CHUNK_BUCKET_CALL' })
})

/** A state object's GetObject answer, as the sweep reads it. */
const stateBody = (state: object): { Body: never } => ({ Body: { transformToString: async () => JSON.stringify(state) } as never })

// From review (helper-37): sparing any upload at a live tus upload's key let an idle tus upload
// (a bare POST) keep an app-chosen key's stale upload forever. Only a held upload whose state
// names no multipart upload yet (its PATCH may have made one) spares by key.
t.test('abortStaleUploads: a live tus upload spares its key only while a request holds it and its state names no upload', async (t) => {
  for (const [held, spared] of [[false, false], [true, true]] as const) {
    const { client, s3 } = setup()
    s3.on(ListObjectsV2Command, { Prefix: 'media/.tus/' }).resolves({ IsTruncated: false, Contents: [{ Key: 'media/.tus/t1', LastModified: hoursAgo(1) }] })
    s3.on(ListObjectsV2Command, { Prefix: 'media/.staging/' }).resolves({ IsTruncated: false, Contents: [] })
    s3.on(GetObjectCommand).resolves(stateBody({ v: 1, id: 't1', key: 'media/avatars/alice.png', expires: now + 3600_000, offset: 0, parts: [], tail: 0, gen: 0, ...(held ? { lease: { holder: 'h', until: now + 10_000 } } : {}) }))
    s3.on(ListMultipartUploadsCommand).resolves({ IsTruncated: false, Uploads: [{ Key: 'media/avatars/alice.png', UploadId: 'crashed', Initiated: hoursAgo(48) }] })
    s3.on(AbortMultipartUploadCommand).resolves({})
    const { aborted } = await abortStaleUploads(client, 'uploads', 'media', 24 * 3600_000, { now })
    t.same(aborted.map((upload) => upload.uploadId), spared ? [] : ['crashed'], held ? 'held: spared' : 'idle: the stale upload at its key is aborted')
  }
})

// From review (helper-37): nested registrations were found by listing `.tus/` in every folder of
// every stale upload's key (2,000 stale uploads four folders deep: 8,012 LISTs). The app's other
// registrations are known: one LIST per prefix below the swept one.
t.test('abortStaleUploads: spares the live tus uploads of the app\'s other prefixes below it, one LIST each', async (t) => {
  const { client, s3 } = setup()
  s3.on(ListObjectsV2Command).resolves({ IsTruncated: false, Contents: [] })
  s3.on(ListObjectsV2Command, { Prefix: 'media/resumable/.tus/' }).resolves({ IsTruncated: false, Contents: [{ Key: 'media/resumable/.tus/t1', LastModified: hoursAgo(1) }] })
  s3.on(GetObjectCommand).resolves(stateBody({ v: 1, id: 't1', key: 'media/resumable/x.bin', uploadId: 'live', expires: now + 3600_000, offset: 5, parts: [[1, 'e']], tail: 0, gen: 1 }))
  const stale = Array.from({ length: 2000 }, (_, i) => ({ Key: `media/u${i}/r/a/b/f.bin`, UploadId: `s${i}`, Initiated: hoursAgo(48) }))
  s3.on(ListMultipartUploadsCommand).resolves({ IsTruncated: false, Uploads: [{ Key: 'media/resumable/x.bin', UploadId: 'live', Initiated: hoursAgo(48) }, ...stale] })
  s3.on(AbortMultipartUploadCommand).resolves({})
  const { aborted } = await abortStaleUploads(client, 'uploads', 'media', 24 * 3600_000, { now, spareFrom: ['media', 'media/resumable', 'other'] })
  t.equal(aborted.length, 2000, 'the 2,000 stale uploads are aborted')
  t.notOk(aborted.some((upload) => upload.uploadId === 'live'), 'the nested registration\'s live tus upload is spared')
  t.same(s3.commandCalls(ListObjectsV2Command).map((call) => call.args[0].input.Prefix).sort(), ['media/.staging/', 'media/.tus/', 'media/resumable/.tus/'], 'one LIST per prefix: the tus and staging ones swept, the nested one read')
})

// From review (helper-38): an outer registration's tus key can land under a nested prefix (onFile,
// a user segment, prefixQueryParam): the nested scope's sweep aborted it by age.
t.test('abortStaleUploads: spares the live tus uploads of the app\'s prefixes above it too', async (t) => {
  const { client, s3 } = setup()
  s3.on(ListObjectsV2Command).resolves({ IsTruncated: false, Contents: [] })
  s3.on(ListObjectsV2Command, { Prefix: 'media/.tus/' }).resolves({ IsTruncated: false, Contents: [{ Key: 'media/.tus/t1', LastModified: hoursAgo(1) }] })
  s3.on(GetObjectCommand).resolves(stateBody({ v: 1, id: 't1', key: 'media/a/long-running.bin', uploadId: 'live', expires: now + 3600_000, offset: 5, parts: [[1, 'e']], tail: 0, gen: 1 }))
  s3.on(ListMultipartUploadsCommand).resolves({ IsTruncated: false, Uploads: [{ Key: 'media/a/long-running.bin', UploadId: 'live', Initiated: hoursAgo(48) }, { Key: 'media/a/crashed.bin', UploadId: 'crashed', Initiated: hoursAgo(48) }] })
  s3.on(AbortMultipartUploadCommand).resolves({})
  const { aborted } = await abortStaleUploads(client, 'uploads', 'media/a', 24 * 3600_000, { now, spareFrom: ['media', 'media/a', 'elsewhere'] })
  t.same(aborted.map((upload) => upload.uploadId), ['crashed'], 'the outer registration\'s live upload is spared, the crashed one aborted')
  t.same(s3.commandCalls(ListObjectsV2Command).map((call) => call.args[0].input.Prefix).sort(), ['media/.tus/', 'media/a/.staging/', 'media/a/.tus/'], 'the outer prefix\'s states are read; an unrelated prefix is not')
})

t.test('ensureLifecycleRule: adds the rule, keeps others, replaces its own', async (t) => {
  const { client, s3 } = setup()
  s3.on(GetBucketLifecycleConfigurationCommand).resolves({
    Rules: [
      { ID: 'keep-me', Status: 'Enabled', Filter: { Prefix: 'logs/' }, Expiration: { Days: 30 } },
      { ID: lifecycleRuleId('media'), Status: 'Enabled', Filter: { Prefix: 'media/' }, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 } },
      { ID: lifecycleRuleId('other'), Status: 'Enabled', Filter: { Prefix: 'other/' }, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 3 } }
    ]
  })
  s3.on(PutBucketLifecycleConfigurationCommand).resolves({})
  const rule = await ensureLifecycleRule(client, 'uploads', 'media', 2)
  t.same(rule, { ID: lifecycleRuleId('media'), Status: 'Enabled', Filter: { Prefix: 'media/' }, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 2 } })
  const put = s3.commandCalls(PutBucketLifecycleConfigurationCommand)[0]?.args[0].input
  t.same(put?.LifecycleConfiguration?.Rules?.map((r) => r.ID), ['keep-me', lifecycleRuleId('other'), lifecycleRuleId('media'), stagingRuleId('media'), tusRuleId('media')], "another prefix's rule is kept")
  t.same(put?.LifecycleConfiguration?.Rules?.[4], { ID: tusRuleId('media'), Status: 'Enabled', Filter: { Prefix: 'media/.tus/' }, Expiration: { Days: 2 }, NoncurrentVersionExpiration: { NoncurrentDays: 2 } }, 'tus state and tail objects left untouched expire')
  t.same(put?.LifecycleConfiguration?.Rules?.[3], { ID: stagingRuleId('media'), Status: 'Enabled', Filter: { Prefix: 'media/.staging/' }, Expiration: { Days: 2 }, NoncurrentVersionExpiration: { NoncurrentDays: 2 } }, 'staged uploads never completed expire')
  t.equal(put?.LifecycleConfiguration?.Rules?.[2]?.AbortIncompleteMultipartUpload?.DaysAfterInitiation, 2)
  t.not(lifecycleRuleId('media'), lifecycleRuleId('media/'), 'ids differ per prefix')
  t.not(lifecycleRuleId('media'), stagingRuleId('media'), 'and per rule')
  t.ok(lifecycleRuleId('x'.repeat(600)).length <= 255, 'an id fits S3 (255 characters)')
})

t.test('ensureLifecycleRule: a bucket with no configuration yet', async (t) => {
  const { client, s3 } = setup()
  s3.on(GetBucketLifecycleConfigurationCommand).rejects(Object.assign(new Error('none'), { name: 'NoSuchLifecycleConfiguration' }))
  s3.on(PutBucketLifecycleConfigurationCommand).resolves({})
  await ensureLifecycleRule(client, 'uploads', '', 1)
  const put = s3.commandCalls(PutBucketLifecycleConfigurationCommand)[0]?.args[0].input
  t.same(put?.LifecycleConfiguration?.Rules, [
    { ID: lifecycleRuleId(''), Status: 'Enabled', Filter: { Prefix: '' }, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } },
    { ID: stagingRuleId(''), Status: 'Enabled', Filter: { Prefix: '.staging/' }, Expiration: { Days: 1 }, NoncurrentVersionExpiration: { NoncurrentDays: 1 } },
    { ID: tusRuleId(''), Status: 'Enabled', Filter: { Prefix: '.tus/' }, Expiration: { Days: 1 }, NoncurrentVersionExpiration: { NoncurrentDays: 1 } }
  ])
})

t.test('ensureLifecycleRule: a failing read is a bucket-call error naming the operation, nothing written', async (t) => {
  const { client, s3 } = setup()
  s3.on(GetBucketLifecycleConfigurationCommand).rejects(Object.assign(new Error('denied'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } }))
  await t.rejects(ensureLifecycleRule(client, 'uploads', 'media', 1), { code: 'FST_S3CHUNK_BUCKET_CALL', statusCode: 502, message: /GetBucketLifecycleConfiguration/, s3: { operation: 'GetBucketLifecycleConfiguration', code: 'AccessDenied' } })
  t.equal(s3.commandCalls(PutBucketLifecycleConfigurationCommand).length, 0)
})

t.test('abortStaleUploads: staged direct uploads older than olderThan are deleted, every page', async (t) => {
  const { client, s3 } = setup()
  s3.on(ListMultipartUploadsCommand).resolves({ IsTruncated: false, Uploads: [] })
  s3.on(ListObjectsV2Command, { Prefix: 'media/.tus/' }).resolves({ IsTruncated: false, Contents: [] })
  s3.on(ListObjectsV2Command, { Prefix: 'media/.staging/', ContinuationToken: undefined }).resolves({
    IsTruncated: true,
    NextContinuationToken: 'next',
    Contents: [{ Key: 'media/.staging/alice/1/a.png', LastModified: hoursAgo(48) }, { Key: 'media/.staging/alice/2/b.png', LastModified: hoursAgo(1) }]
  })
  s3.on(ListObjectsV2Command, { Prefix: 'media/.staging/', ContinuationToken: 'next' }).resolves({ IsTruncated: false, Contents: [{ Key: 'media/.staging/bob/3/c.png', LastModified: hoursAgo(25) }] })
  s3.on(DeleteObjectsCommand).resolves({})
  const { deleted } = await abortStaleUploads(client, 'uploads', 'media', 24 * 3600_000, { now })
  t.same(deleted.map((object) => object.key), ['media/.staging/alice/1/a.png', 'media/.staging/bob/3/c.png'])
  t.same(s3.commandCalls(ListObjectsV2Command).map((c) => c.args[0].input.Prefix), ['media/.tus/', 'media/.staging/', 'media/.staging/'], 'only the tus and staging prefixes are listed')
  t.same(s3.commandCalls(DeleteObjectsCommand).map((c) => c.args[0].input.Delete?.Objects?.map((o) => o.Key)), [['media/.staging/alice/1/a.png'], ['media/.staging/bob/3/c.png']])
})

t.test('ensureLifecycleRulesAt: every prefix of a bucket in one write, each bucket once (rule sets and routes with prefixes of their own)', async (t) => {
  const { client, s3 } = setup()
  s3.on(GetBucketLifecycleConfigurationCommand).resolves({ Rules: [{ ID: 'keep-me', Status: 'Enabled', Filter: { Prefix: 'logs/' }, Expiration: { Days: 30 } }] })
  s3.on(PutBucketLifecycleConfigurationCommand).resolves({})
  const rule = await ensureLifecycleRulesAt(client, [
    { bucket: 'uploads', prefix: 'media' },
    { bucket: 'uploads', prefix: 'avatars' },
    { bucket: 'uploads', prefix: 'media' },
    { bucket: 'private', prefix: 'docs' }
  ], 2)
  t.equal(rule.ID, lifecycleRuleId('media'), 'the first location\'s rule is returned')
  const puts = s3.commandCalls(PutBucketLifecycleConfigurationCommand).map((call) => call.args[0].input)
  t.same(puts.map((put) => put.Bucket), ['uploads', 'private'], 'one write per bucket')
  t.same(puts[0]?.LifecycleConfiguration?.Rules?.map((r) => r.ID), [
    'keep-me',
    lifecycleRuleId('media'), stagingRuleId('media'), tusRuleId('media'),
    lifecycleRuleId('avatars'), stagingRuleId('avatars'), tusRuleId('avatars')
  ], 'both prefixes of the bucket, each once, beside the rules it had')
  t.same(puts[1]?.LifecycleConfiguration?.Rules?.map((r) => r.Filter?.Prefix), ['logs/', 'docs/', 'docs/.staging/', 'docs/.tus/'])
})
