import t from 'tap'
import { configOf as parse, MIN_PART_SIZE, type S3ChunkOptions } from '../../lib/options.ts'

// Bad input on purpose: the runtime check, not the type, is under test.
const configOf = (input: unknown) => parse(input as S3ChunkOptions)

t.test('defaults', async (t) => {
  const config = configOf({ bucket: 'uploads' })
  t.equal(config.partSize, MIN_PART_SIZE)
  t.equal(config.partConcurrency, 4)
  t.equal(config.mode, 'workers')
  t.equal(config.appendTimestamp, true)
  t.equal(config.prefixQueryParam, false)
  t.equal(config.keyPrefix, '')
  t.equal(config.maxFileSize, 5 * 1024 ** 4)
  t.ok(Object.isFrozen(config) && Object.isFrozen(config.s3), 'the config is frozen')
})

t.test('a bad option names its path and the rule', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{}, /"bucket"/],
    [{ bucket: 'Not_A_Bucket' }, /"bucket": must be a valid S3 bucket name/],
    [{ bucket: 'uploads', partSize: 1024 }, /"partSize": .*>=5242880/],
    [{ bucket: 'uploads', partConcurrency: 0 }, /"partConcurrency"/],
    [{ bucket: 'uploads', mode: 'threads' }, /"mode"/],
    [{ bucket: 'uploads', s3: { endpoint: 'ftp://x' } }, /"s3.endpoint": must be an http\(s\) URL/],
    [{ bucket: 'uploads', s3: { credentials: { accessKeyId: 'a' } } }, /"s3.credentials.secretAccessKey"/],
    [{ bucket: 'uploads', key: 'media/x' }, /"key": must be a function/],
    [{ bucket: 'uploads', partsize: 5 }, /Unrecognized key: "partsize"/],
    [{ bucket: 'uploads', maxFileSize: 6 * 1024 ** 4 }, /"maxFileSize"/]
  ]
  for (const [input, message] of cases) {
    t.throws(() => configOf(input), { code: 'FST_S3CHUNK_INVALID_OPTION', message }, JSON.stringify(input))
  }
})

t.test('keyPrefix is normalised to clean segments', async (t) => {
  t.equal(configOf({ bucket: 'uploads', keyPrefix: '/media//./x/../' }).keyPrefix, 'media/x')
})

t.test('direct: no ACL by default (new AWS buckets refuse one); metadataFields names checked', async (t) => {
  const config = configOf({ bucket: 'uploads', direct: { authorize: () => null } })
  t.equal(config.direct?.acl, undefined)
  t.same(config.direct?.metadataFields, [])
  t.equal(configOf({ bucket: 'uploads', direct: { authorize: () => null, acl: 'bucket-owner-full-control' } }).direct?.acl, 'bucket-owner-full-control')
  for (const name of ['Caption', 'x_y', '', 'original-name', 'a'.repeat(64)]) {
    t.throws(() => configOf({ bucket: 'uploads', direct: { authorize: () => null, metadataFields: [name] } }), { code: 'FST_S3CHUNK_INVALID_OPTION', message: /direct\.metadataFields\.0/ }, JSON.stringify(name))
  }
  t.same(configOf({ bucket: 'uploads', direct: { authorize: () => null, metadataFields: ['caption', 'alt-text'] } }).direct?.metadataFields, ['caption', 'alt-text'])
})
