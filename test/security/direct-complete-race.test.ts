// Attack (found by an attack run): one direct multipart upload's Complete sent eight times at
// once, 3 ms apart, by its own user. Each request passed the ownership check (ListParts) before
// any Complete ran; the losers' Completes failed (NoSuchUpload, 412), and each then found the
// object by its ETag — the lost-answer recovery — and recorded it: onUploadComplete ran up to
// 6 times for one object (an app counting quota or granting credit per upload counts it 6
// times). Only a Complete whose own answer may have been lost is recovered now.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { api, MiB, startDirect } from './direct-support.ts'
import { freshBucket, listKeys, needsStrictS3, pendingUploads, testClient, testS3 } from '../support/s3.ts'

const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

for (const overwrite of [false, true]) {
  t.test(`the same Complete sent 8 times at once (overwrite ${String(overwrite)}): one 200, one onUploadComplete`, { skip, timeout: 120_000 }, async (t) => {
    const bucket = await freshBucket(t, server, client)
    const { url, stored } = await startDirect(t, server, bucket, { overwrite })
    const data = randomBytes(6 * MiB)
    // Bounded: 4 rounds (the attack recorded twice or more within 4 rounds in every run tried).
    for (let round = 1; round <= 4; round++) {
      stored.length = 0
      const created = await api(`${url}/s3/multipart`, 'alice', 'POST', { filename: `race-${round}.bin`, type: 'application/octet-stream', size: data.byteLength })
      const { key, uploadId } = created.json as { key: string, uploadId: string }
      const q = `key=${encodeURIComponent(key)}`
      const signed = (await api(`${url}/s3/multipart/${encodeURIComponent(uploadId)}/batch?${q}&partNumbers=1,2`, 'alice')).json.presignedUrls as Record<string, string>
      const parts: Array<{ PartNumber: number, ETag: string | null }> = []
      for (const [number, start] of [[1, 0], [2, 5 * MiB]] as const) {
        const response = await fetch(signed[String(number)] as string, { method: 'PUT', body: data.subarray(start, Math.min(start + 5 * MiB, data.byteLength)) })
        parts.push({ PartNumber: number, ETag: response.headers.get('etag') })
      }
      const answers = await Promise.all(Array.from({ length: 8 }, async (_, i) => {
        await new Promise((resolve) => setTimeout(resolve, i * 3))
        return await api(`${url}/s3/multipart/${encodeURIComponent(uploadId)}/complete?${q}`, 'alice', 'POST', { parts })
      }))
      const statuses = answers.map((answer) => answer.status)
      t.equal(stored.length, 1, `round ${round}: onUploadComplete once (answers ${statuses.join(',')})`)
      t.equal(statuses.filter((status) => status === 200).length, 1, `round ${round}: one 200`)
      t.same(statuses.filter((status) => status !== 200 && (status < 400 || status >= 500)), [], `round ${round}: the others are refused with a 4xx`)
    }
    t.equal((await listKeys(client, bucket)).length, 4, 'four objects')
    t.same(await pendingUploads(client, bucket), [], 'no upload left open')
  })
}
