// The two S3 clients: the SDK-retrying one (decorator, direct routes,
// maintenance) and the one-attempt one for streamed uploads, whose every call
// the plugin retries itself (its backoff, no SDK retry quota, no second
// Complete sent blind).
import t from 'tap'
import { createPartClient, createS3Client, objectUrl, workerSettings } from '../../lib/s3-client.ts'
import { configOf } from '../../lib/options.ts'

const { s3 } = configOf({ bucket: 'uploads', s3: { region: 'eu-west-1', maxAttempts: 5 } })

t.test('the upload client makes one attempt per call', async (t) => {
  const client = createPartClient(s3)
  t.teardown(() => client.destroy())
  t.equal(await client.config.maxAttempts(), 1)
})

t.test('the SDK client retries as s3.maxAttempts says', async (t) => {
  const client = createS3Client(s3)
  t.teardown(() => client.destroy())
  t.equal(await client.config.maxAttempts(), 5)
  t.equal(await client.config.region(), 'eu-west-1')
})

t.test('the SDK\'s client settings reach the client; a worker gets plain credentials or none', async (t) => {
  const provider = async (): Promise<{ accessKeyId: string, secretAccessKey: string }> => ({ accessKeyId: 'k', secretAccessKey: 's' })
  const settings = configOf({
    bucket: 'uploads',
    s3: { region: 'eu-west-1', useDualstackEndpoint: true, useFipsEndpoint: true, retryMode: 'adaptive', maxSockets: 7, userAgent: 'my-app/1.2', credentials: provider }
  }).s3
  const client = createS3Client(settings)
  t.teardown(() => client.destroy())
  t.equal(await client.config.useDualstackEndpoint(), true)
  t.equal(await client.config.useFipsEndpoint(), true)
  t.equal(await client.config.retryStrategy().then((strategy) => (strategy as { mode?: string }).mode), 'adaptive')
  t.match(client.config.customUserAgent, [['my-app/1.2']])
  t.same(await client.config.credentials(), { accessKeyId: 'k', secretAccessKey: 's' }, 'the provider answers')
  const forWorkers = workerSettings(settings)
  t.equal(forWorkers.credentialsFromParts, true, 'a provider stays on the main thread')
  t.equal('credentials' in forWorkers, false)
  t.doesNotThrow(() => structuredClone(forWorkers), 'what a worker gets can cross threads')
  const plain = configOf({ bucket: 'uploads', s3: { credentials: { accessKeyId: 'a', secretAccessKey: 'b' } } }).s3
  t.same(workerSettings(plain).credentials, { accessKeyId: 'a', secretAccessKey: 'b' })
})

// Found by a new-user review (helper-36): forcePathStyle false with an IP endpoint gave
// `http://uploads.127.0.0.1:33821/…`, a URL no one can open; the SDK itself addresses it by path.
t.test('objectUrl addresses the object as the SDK does', async (t) => {
  const settings = (extra: object): typeof s3 => ({ ...s3, ...extra })
  t.equal(objectUrl(settings({ endpoint: 'http://127.0.0.1:9000', forcePathStyle: false }), 'uploads', 'a/b c.png'), 'http://127.0.0.1:9000/uploads/a/b%20c.png', 'an IP host: by path')
  t.equal(objectUrl(settings({ endpoint: 'http://[::1]:9000', forcePathStyle: false }), 'uploads', 'k'), 'http://[::1]:9000/uploads/k', 'an IPv6 host: by path')
  t.equal(objectUrl(settings({ endpoint: 'https://minio.example.com', forcePathStyle: false }), 'uploads', 'k'), 'https://uploads.minio.example.com/k', 'a host name: virtual-hosted')
  t.equal(objectUrl(settings({ endpoint: 'https://minio.example.com', forcePathStyle: true }), 'uploads', 'k'), 'https://minio.example.com/uploads/k', 'forcePathStyle: by path')
  t.equal(objectUrl(settings({}), 'uploads', 'k'), 'https://uploads.s3.eu-west-1.amazonaws.com/k', 'AWS: virtual-hosted')
  t.equal(objectUrl(settings({}), 'my.bucket', 'k'), 'https://s3.eu-west-1.amazonaws.com/my.bucket/k', 'a dotted bucket: by path (the certificate is for one label)')
  // From review (helper-38): built by hand, China's partition got a host that does not exist.
  t.equal(objectUrl(settings({ region: 'cn-north-1' }), 'uploads', 'k'), 'https://uploads.s3.cn-north-1.amazonaws.com.cn/k', 'China: its own domain')
  t.equal(objectUrl(settings({ endpoint: 'https://minio.example.com/base', forcePathStyle: true }), 'uploads', 'k'), 'https://minio.example.com/base/uploads/k', 'an endpoint with a path keeps it')
  t.equal(objectUrl(settings({ region: 'us-east-1', useFipsEndpoint: true }), 'uploads', 'k'), 'https://uploads.s3-fips.us-east-1.amazonaws.com/k', 'FIPS, as the client is set')
  // From review (helper-40): the rules refuse an endpoint with a query string, which the options
  // accept and the SDK sends to; objectUrl runs after the object is committed, so it must not throw.
  t.equal(objectUrl(settings({ endpoint: 'http://127.0.0.1:9000/?probe=1', forcePathStyle: true }), 'uploads', 'k'), 'http://127.0.0.1:9000/uploads/k', 'an endpoint the rules refuse: by path, never a throw')
})
