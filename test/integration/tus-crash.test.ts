// An instance killed (SIGKILL, OOM, a lost machine) in the middle of a long PATCH. Progress
// used to be recorded only when a PATCH ended, so a client sending its file in one PATCH
// (Uppy and tus-js-client by default) lost everything that PATCH had sent. Now each renewal
// of the PATCH's hold also records the parts stored so far: another instance resumes there.
import t from 'tap'
import { GetObjectCommand } from '@aws-sdk/client-s3'
import { randomBytes } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { freshBucket, needsStrictS3, pluginS3Options, testClient, testS3 } from '../support/s3.ts'
import { startServerProcess } from '../support/server-process.ts'
import { createUpload, expectOnlyObject, patchUpload, startTus, tusRequest } from '../support/tus.ts'

const MiB = 1024 * 1024
const PART = 5 * MiB
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

interface StoredState { offset: number, parts: unknown[], lease?: { until: number } }

async function stateOf (bucket: string, url: string): Promise<StoredState> {
  const id = (url.split('/').pop() ?? '').split('.')[0] as string
  const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: `.tus/${id}` }))
  return JSON.parse(await answer.Body?.transformToString() ?? '{}') as StoredState
}

t.test('a PATCH on an instance that is killed keeps the parts it stored: another instance resumes from them', { skip, timeout: 120_000 }, async (t) => {
  const bucket = await freshBucket(t, server)
  // One secret for both instances; a hold of 3 s (renewed every second) so the dead one's expires soon.
  const tus = { secret: randomBytes(32).toString('hex'), leaseTimeout: 3 }
  const first = await startServerProcess(t, { bucket, s3: pluginS3Options(server), tus, partSize: PART })
  const size = 40 * MiB + 11
  const data = randomBytes(size)
  const url = (await createUpload(`${first.url}/files`, size)).replace(/^http:\/\/[^/]+/, first.url)

  // A first PATCH of less than a part: its bytes wait in a tail object, and begin the next PATCH's first part.
  const early = 3 * MiB + 5
  t.equal((await patchUpload(url, 0, data.subarray(0, early))).status, 204)
  // Then one PATCH for the rest of the file; 26 MiB of the file arrive, then the client waits (as a slow link would).
  const sent = 26 * MiB
  const body = new Readable({ read () {} })
  for (let at = early; at < sent; at += MiB) body.push(data.subarray(at, Math.min(at + MiB, sent)))
  const patch = new Promise<string>((resolve) => {
    const request = httpRequest(url, { method: 'PATCH', headers: { 'tus-resumable': '1.0.0', 'upload-offset': String(early), 'content-type': 'application/offset+octet-stream', 'content-length': String(size - early) } }, (response) => {
      response.resume()
      resolve(`answered ${response.statusCode ?? 0}`)
    })
    request.on('error', (error: NodeJS.ErrnoException) => { resolve(error.code ?? 'error') })
    body.pipe(request)
  })

  // Bounded: the first instance records the whole parts it stored within 20 s.
  const want = Math.floor(sent / PART) * PART
  let recorded = 0
  for (const deadline = Date.now() + 20_000; Date.now() < deadline && recorded < want; await sleep(200)) {
    recorded = (await stateOf(bucket, url)).offset
  }
  t.equal(recorded, want, `while the PATCH runs, the state records the ${want / PART} parts stored (${want} bytes)`)

  process.kill(first.pid, 'SIGKILL')
  t.match(await patch, /ECONNRESET|EPIPE|socket hang up|answered/, 'the client lost its connection')
  body.destroy()

  const second = await startTus(t, server, bucket, { tus, partSize: PART })
  const resumeUrl = url.replace(first.url, second.url)
  const head = await tusRequest(resumeUrl, 'HEAD')
  t.equal(head.headers.get('upload-offset'), String(want), 'the second instance resumes at the recorded offset')
  // The dead instance's hold expires (3 s at most after its last renewal); until then a PATCH is 409.
  const { lease } = await stateOf(bucket, url)
  await sleep(Math.max(0, (lease?.until ?? 0) - Date.now()) + 200)
  const rest = await patchUpload(resumeUrl, want, data.subarray(want))
  t.equal(rest.status, 204)
  t.equal(rest.headers.get('upload-offset'), String(size))
  // The tail the killed PATCH had read is removed with the rest at the end.
  await expectOnlyObject(t, client, bucket, data)
})
