// Attack: the user's key segment was sanitiseFilename(userId), which is lossy:
// user `team-a/alice` completed user `alice`'s upload (200), and so did each
// pair below. Now the segment is one-to-one, and each user of a pair gets 403
// against the other's uploads on every route.
import t from 'tap'
import { expectNoPendingUploads, freshBucket, listKeys, needsStrictS3, testClient, testS3 } from '../support/s3.ts'
import { api, finalOf, params, postToS3, startDirect } from './direct-support.ts'

const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

const long = 'u'.repeat(201)
const PAIRS: Array<[string, string]> = [
  ['team-a/alice', 'alice'],
  ['tenant1/42', 'tenant2/42'],
  ["o'brien@example.com", 'o_brien@example.com'],
  ['!!!', '???'],
  ['_alice', 'alice'],
  ['a b', 'a_b'],
  [long, long.slice(0, 200)]
]

t.test('each pair of users that used to share a prefix: 403 against each other\'s uploads on every route', { skip, timeout: 240_000 }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { url, stored } = await startDirect(t, server, bucket)
  for (const [a, b] of PAIRS) {
    for (const [owner, other] of [[a, b], [b, a]] as const) {
      const label = `${owner.slice(0, 24)} vs ${other.slice(0, 24)}`
      const post = (await params(url, owner, 'a.bin', 'application/octet-stream')).json
      t.equal((await postToS3(post, Buffer.from('x'))).status, 204)
      const created = (await api(`${url}/s3/multipart`, owner, 'POST', { filename: 'b.bin', type: 'application/octet-stream', size: 1024, metadata: {} })).json
      const q = `key=${encodeURIComponent(created.key)}`
      const attempts: Array<[string, string, unknown?]> = [
        ['POST', '/s3/complete', { key: post.key }],
        ['POST', '/s3/complete', { key: finalOf(post.key) }],
        ['GET', `/s3/multipart/${created.uploadId}?${q}`],
        ['GET', `/s3/multipart/${created.uploadId}/1?${q}`],
        ['GET', `/s3/multipart/${created.uploadId}/batch?${q}&partNumbers=1`],
        ['POST', `/s3/multipart/${created.uploadId}/complete?${q}`, { parts: [{ PartNumber: 1, ETag: '"x"' }] }],
        ['DELETE', `/s3/multipart/${created.uploadId}?${q}`]
      ]
      for (const [method, path, body] of attempts) {
        const response = await api(`${url}${path}`, other, method, body)
        t.equal(response.status, 403, `${label}: ${method} ${path.split('?')[0]?.replace(created.uploadId, ':id')}`)
      }
      // The owner's own uploads still work.
      t.equal((await api(`${url}/s3/complete`, owner, 'POST', { key: post.key })).status, 200, `${label}: the owner completes`)
      t.equal((await api(`${url}/s3/multipart/${created.uploadId}?${q}`, owner, 'DELETE')).status, 200, `${label}: the owner aborts`)
    }
  }
  const prefixes = new Set((await listKeys(client, bucket)).map((key) => key.split('/')[1]))
  t.equal(prefixes.size, new Set(PAIRS.flat()).size, 'one prefix per distinct user')
  t.equal(stored.length, PAIRS.length * 2, 'only the owners\' completions were recorded')
  await expectNoPendingUploads(t, server, client, bucket)
})
