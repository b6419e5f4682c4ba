// Found in review (helper-37, 2026-12-06) of 08f94e3, which left a tus upload open when every
// Complete attempt failed with a 5xx: a gateway answered 503 while S3 carried the Complete out a
// moment later. The state went back to before the finishing PATCH, the object appeared, and
// onUploadComplete never ran for it — every later PATCH 502 until the upload expired, then
// HEAD said "finished". Only S3's own SlowDown (refused before it is carried out) leaves the
// upload open now; any other failure is fenced off by the abort as before. Whatever happens, a
// stored object is one the app was told of.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { freshBucket, listKeys, needsStrictS3, pluginS3Options, testClient, testS3 } from '../support/s3.ts'
import { createUpload, patchUpload, startTus, tusRequest } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)
const unavailable = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code><Message>Service Unavailable</Message><RequestId>gateway</RequestId></Error>'

/** A gateway before S3: while `late.on`, every Complete is answered 503 at once, and the first is carried to S3 `ms` later. */
async function lateGateway (t: { teardown: (fn: () => unknown) => void }, target: string, ms: number): Promise<{ endpoint: string, late: { on: boolean } }> {
  const upstream = new URL(target)
  const late = { on: false }
  let forwarded = false
  const forward = (request: IncomingMessage, body: Buffer, response?: ServerResponse): void => {
    const sent = httpRequest({ hostname: upstream.hostname, port: upstream.port, method: request.method, path: request.url, headers: request.headers }, (answer) => {
      if (response === undefined) { answer.resume(); return }
      response.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(response)
    })
    sent.on('error', () => { if (response !== undefined && !response.headersSent) response.writeHead(502).end() })
    sent.end(body)
  }
  const gateway = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const body = Buffer.concat(chunks)
      if (late.on && request.method === 'POST' && (request.url ?? '').includes('uploadId=')) {
        if (!forwarded) { forwarded = true; setTimeout(() => { forward(request, body) }, ms).unref() }
        response.writeHead(503, { 'content-type': 'application/xml' }).end(unavailable)
        return
      }
      forward(request, body, response)
    })
  })
  await new Promise<void>((resolve) => gateway.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { gateway.closeAllConnections(); gateway.close() })
  return { endpoint: `http://127.0.0.1:${(gateway.address() as { port: number }).port}`, late }
}

t.test('a Complete answered 503 by a gateway but carried out by S3: the stored object is reported, or there is none', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const gateway = await lateGateway(t, server.endpoint, 1500)
  const reported: string[] = []
  const { endpoint } = await startTus(t, server, bucket, {
    s3: { ...pluginS3Options(server), endpoint: gateway.endpoint },
    retry: { attempts: 3, baseDelayMs: 50, maxDelayMs: 100 },
    onUploadComplete: (file) => { reported.push(file.key) }
  })
  const data = randomBytes(12 * MiB)
  const url = await createUpload(endpoint, data.byteLength)
  t.equal((await patchUpload(url, 0, data.subarray(0, 11 * MiB))).status, 204, 'the first 11 MiB are stored')
  gateway.late.on = true
  const last = await patchUpload(url, 11 * MiB, data.subarray(11 * MiB))
  t.comment(`the finishing PATCH: ${last.status} ${await last.text()}`)
  await sleep(2500) // the late Complete has reached S3
  gateway.late.on = false
  // The client resumes as HEAD tells it (bounded: three rounds).
  for (let round = 0; round < 3; round++) {
    const head = await tusRequest(url, 'HEAD')
    if (head.status !== 200 || Number(head.headers.get('upload-offset')) === data.byteLength) break
    const offset = Number(head.headers.get('upload-offset'))
    t.comment(`resumed from ${offset}: ${(await patchUpload(url, offset, data.subarray(offset))).status}`)
  }
  const stored = (await listKeys(client, bucket)).filter((key) => !key.split('/').includes('.tus'))
  t.comment(`stored: ${JSON.stringify(stored)}, reported: ${JSON.stringify(reported)}`)
  t.same(reported, stored, 'every stored object was reported to onUploadComplete, once')
})
