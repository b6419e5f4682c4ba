// Found in review (helper-51, 2026-12-07; 9.5 s before the fix): when S3 refused the delete of a
// direct completion's claim, a stored and recorded upload's 200 waited for four tries of it, each
// with the SDK's own retries. The first try is the only one the answer waits for; the others run
// in the background, and the claim goes once S3 takes the delete.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { api, MiB, multipartSent, startDirect } from './direct-support.ts'
import { testFaultProxy } from '../support/fault-proxy.ts'
import { freshBucket, listKeys, needsStrictS3, pluginS3Options, testClient, testS3 } from '../support/s3.ts'

const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

t.test('a claim whose delete S3 refuses does not hold the answer back, and goes once S3 takes it', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const proxy = await testFaultProxy(t, server.endpoint)
  const { url, stored } = await startDirect(t, server, bucket, { s3: { ...pluginS3Options(server), endpoint: proxy.endpoint }, retry: { attempts: 3, baseDelayMs: 50, maxDelayMs: 200 } })
  const data = randomBytes(6 * MiB)
  const { uploadId, q, parts } = await multipartSent(url, 'alice', 'a.bin', data)
  // Every plain DeleteObject (the claim's) refused for now.
  proxy.setRules([{ match: (r) => r.method === 'DELETE' && !r.query.has('uploadId'), fault: { kind: 'status', status: 503, code: 'SlowDown' } }])
  const began = Date.now()
  const answer = await api(`${url}/s3/multipart/${encodeURIComponent(uploadId)}/complete?${q}`, 'alice', 'POST', { parts })
  const took = Date.now() - began
  t.equal(answer.status, 200, `completed (${JSON.stringify(answer.json).slice(0, 160)})`)
  t.equal(stored.length, 1, 'recorded')
  // A generous bound: the SDK's own retries of one delete take about a second here.
  t.ok(took < 5000, `the answer did not wait for every try of the claim's delete (took ${took} ms)`)
  t.ok(proxy.stats().faults.status >= 1, 'the claim\'s delete was refused')
  proxy.setRules([])
  const claims = async (): Promise<string[]> => (await listKeys(client, bucket)).filter((k) => k.includes('.claims/'))
  let left = await claims()
  for (let i = 0; i < 40 && left.length > 0; i++) {
    await sleep(250)
    left = await claims()
  }
  t.same(left, [], 'the claim is deleted in the background once S3 takes the delete')
})
