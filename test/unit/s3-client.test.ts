// The two S3 clients: the SDK-retrying one (decorator, direct routes,
// maintenance) and the one-attempt one for streamed uploads, whose every call
// the plugin retries itself (its backoff, no SDK retry quota, no second
// Complete sent blind).
import t from 'tap'
import { createPartClient, createS3Client } from '../../lib/s3-client.ts'
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
