// Attack: a tus client controls the name its upload is stored under only
// through Upload-Metadata's `filename`. Tried as an attacker would: a name that
// climbs out of the owner's prefix or names another user's, and many uploads
// of one name at once, finished in any order. A 204 must mean "your bytes are
// at a key of your own under your prefix"; nothing another client stored is
// ever replaced (overwrite is off by default), as for streamed uploads
// (same-name-collision.test.ts).
import t from 'tap'
import { randomBytes } from 'node:crypto'
import type { S3File } from 'fastify-s3-chunk'
import { freshBucket, listKeys, needsStrictS3, objectDigest, sha256, testClient, testS3 } from '../support/s3.ts'
import { createUpload, expectClean, metadataHeader, patchUpload, startTus } from '../support/tus.ts'

const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

const users: Record<string, string> = { 'token-a': 'alice', 'token-b': 'bob' }
const authorize = (request: { headers: { authorization?: string } }): { userId: string } | null => {
  const userId = users[request.headers.authorization ?? '']
  return userId === undefined ? null : { userId }
}

t.test('a filename that climbs out of the prefix or names another user\'s is stored under the uploader\'s own prefix', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const completed: S3File[] = []
  const { endpoint } = await startTus(t, server, bucket, { tus: { authorize }, onUploadComplete: (file) => { completed.push(file) } })
  const asBob = { authorization: 'token-b' }
  const victim = randomBytes(3000)
  const victimUrl = await createUpload(endpoint, victim.byteLength, { ...asBob, 'upload-metadata': metadataHeader({ filename: 'report.pdf' }) })
  t.equal((await patchUpload(victimUrl, 0, victim, asBob)).status, 204)
  const victimKey = (await listKeys(client, bucket))[0] as string
  t.match(victimKey, /^bob\//)

  const names = ['../bob/report.pdf', '../../bob/report.pdf', `/${victimKey}`, victimKey, '..\\bob\\report.pdf', 'a/../../bob/report.pdf', '%2e%2e%2fbob%2freport.pdf']
  for (const filename of names) {
    const data = randomBytes(2000)
    const url = await createUpload(endpoint, data.byteLength, { authorization: 'token-a', 'upload-metadata': metadataHeader({ filename }) })
    t.equal((await patchUpload(url, 0, data, { authorization: 'token-a' })).status, 204, `${filename}: stored`)
  }
  const keys = await listKeys(client, bucket)
  t.equal(keys.length, names.length + 1, 'one object per upload')
  t.same(keys.filter((key) => key !== victimKey && !key.startsWith('alice/')), [], 'every attacker upload is under alice/')
  t.same(keys.filter((key) => key.split('/').some((segment) => segment === '..' || segment === '.' || segment === '')), [], 'no key holds a . or .. or empty segment')
  t.same(completed.filter((file) => file.key !== victimKey).map((file) => file.key).filter((key) => !key.startsWith('alice/')), [], 'onUploadComplete named alice/ keys only')
  t.equal((await objectDigest(client, bucket, victimKey)).sha256, sha256(victim), 'bob\'s object is untouched')
  await expectClean(t, client, bucket)
})

t.test('20 uploads of one filename, finished in reverse order: each 204 names a key holding that upload\'s bytes', { skip }, async (t) => {
  const bucket = await freshBucket(t, server)
  const completed: S3File[] = []
  const { endpoint } = await startTus(t, server, bucket, { onUploadComplete: (file) => { completed.push(file) } })
  const bodies = Array.from({ length: 20 }, () => randomBytes(1500))
  // Created together, so any key chosen at creation is chosen for all before any finishes.
  const urls = await Promise.all(bodies.map(async (data) => await createUpload(endpoint, data.byteLength, { 'upload-metadata': metadataHeader({ filename: 'photo.jpg' }) })))
  const statuses: number[] = []
  for (let i = bodies.length - 1; i >= 0; i--) statuses.unshift((await patchUpload(urls[i] as string, 0, bodies[i] as Buffer)).status)
  t.same(statuses, bodies.map(() => 204), 'every upload stored')
  t.equal(new Set(completed.map((file) => file.key)).size, bodies.length, 'twenty distinct keys')
  for (const file of completed) {
    const digest = await objectDigest(client, bucket, file.key)
    t.ok(bodies.some((data) => sha256(data) === digest.sha256 && data.byteLength === file.size), `${file.key} holds an upload's bytes`)
  }
  const seen = new Set(await Promise.all(completed.map(async (file) => (await objectDigest(client, bucket, file.key)).sha256)))
  t.equal(seen.size, bodies.length, 'no upload\'s bytes replaced another\'s')
  await expectClean(t, client, bucket)
})
