// Telemetry (issue 14): through @opentelemetry/api, read with the SDK's
// in-memory exporters. A span per upload (bytes, parts, retries, outcome, the
// S3 request ids of failures, bucket and key) whose context the main thread's
// S3 calls run in; metrics for uploads in flight, bytes stored, the buffer
// budget, time waiting for memory, retries by S3 error code, aborts by reason.
import t from 'tap'
import { installTelemetry } from '../support/telemetry-harness.ts'
import { SpanStatusCode } from '@opentelemetry/api'
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base'
import type { DataPoint, Histogram } from '@opentelemetry/sdk-metrics'
import { request as httpRequest } from 'node:http'
import { startApp } from '../support/app.ts'
import { boundary } from '../support/multipart.ts'
import { api, params, postToS3, startDirect } from '../security/direct-support.ts'
import { isUploadPart, isComplete, startFaultProxy } from '../support/fault-proxy.ts'
import { streamUpload } from '../support/stream-upload.ts'
import { freshBucket, listKeys, needsStrictS3, objectDigest, pendingUploads, testClient, testS3 } from '../support/s3.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

// Installed before any app is built: the plugin takes its meter when it makes its engine.
const { spans, metricExporter, reader, sentUnder } = installTelemetry(t)

/** The current value of a metric's data point whose attributes include `attributes` (0 when there is none yet). */
async function metric (name: string, attributes: Record<string, unknown> = {}): Promise<number> {
  const point = await dataPoint(name, attributes)
  if (point === undefined) return 0
  return typeof point.value === 'number' ? point.value : (point.value as Histogram).count
}

async function dataPoint (name: string, attributes: Record<string, unknown>): Promise<DataPoint<number | Histogram> | undefined> {
  metricExporter.reset()
  await reader.forceFlush()
  const collected = metricExporter.getMetrics().at(-1)
  for (const scope of collected?.scopeMetrics ?? []) {
    if (scope.scope.name !== 'fastify-s3-chunk') continue
    for (const data of scope.metrics) {
      if (data.descriptor.name !== name) continue
      const points = data.dataPoints as Array<DataPoint<number | Histogram>>
      return points.find((point) => Object.entries(attributes).every(([key, value]) => point.attributes[key] === value))
    }
  }
  return undefined
}

function uploadSpans (): ReadableSpan[] {
  return spans.getFinishedSpans().filter((span) => span.name === 's3chunk.upload')
}

t.test('a stored upload: its span, its parts, its S3 calls as children, and the metrics', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  spans.reset()
  sentUnder.length = 0
  const stored0 = await metric('s3chunk.stored', { 's3chunk.upload.kind': 'streamed' })
  const waits0 = await metric('s3chunk.buffer.wait.duration')
  // A budget of one part: the second part waits for the first to be sent (time waiting for memory).
  const { app, url } = await startApp(t, server, { bucket, mode: 'workers', partSize: 5 * MiB, maxBufferedBytes: 5 * MiB, partConcurrency: 1 })
  const size = 12 * MiB + 5
  const result = await streamUpload(`${url}/upload`, { seed: 1, size })
  t.equal(result.status, 200, result.body)
  const file = JSON.parse(result.body) as { key: string }
  t.equal((await objectDigest(client, bucket, file.key)).sha256, result.sha256)

  const [span, ...others] = uploadSpans()
  t.equal(others.length, 0, 'one span for the upload')
  if (span === undefined) return
  t.match(span.attributes, {
    's3chunk.upload.kind': 'streamed',
    's3chunk.upload.outcome': 'stored',
    's3chunk.upload.bytes': size,
    's3chunk.upload.parts': 3,
    's3chunk.upload.retries': 0,
    'aws.s3.bucket': bucket,
    'aws.s3.key': file.key
  })
  t.type(span.attributes['aws.s3.upload_id'], 'string')
  t.equal(span.status.code, SpanStatusCode.UNSET, 'a stored upload leaves the status unset (OpenTelemetry\'s advice for success)')
  t.same(span.events.filter((event) => event.name === 's3chunk.part').map((event) => event.attributes?.['aws.s3.part_number']).sort(), [1, 2, 3], 'an event per part sent from a worker thread')

  const spanId = span.spanContext().spanId
  const mainThreadCalls = sentUnder.filter((call) => call.spanId === spanId).map((call) => call.command)
  t.ok(mainThreadCalls.includes('CreateMultipartUploadCommand') && mainThreadCalls.includes('CompleteMultipartUploadCommand'), `the main thread's S3 calls ran under the upload's span (${mainThreadCalls.join(', ')})`)
  t.notOk(sentUnder.some((call) => call.command === 'UploadPartCommand'), 'no part was sent from the main thread (workers mode)')

  t.equal(await metric('s3chunk.stored', { 's3chunk.upload.kind': 'streamed' }) - stored0, size, 'bytes stored')
  t.equal(await metric('s3chunk.uploads.active', { 's3chunk.upload.kind': 'streamed' }), 0, 'no upload in flight once it is done')
  t.ok(await metric('s3chunk.buffer.wait.duration') > waits0, 'the second part waited for memory')
  t.equal(await metric('s3chunk.buffer.limit'), 5 * MiB, 'the budget')
  t.equal(await metric('s3chunk.buffer.usage'), app.s3Chunk.stats().bufferedBytes, 'buffer usage as stats() says')
  t.equal(await metric('s3chunk.upload.duration', { 's3chunk.upload.outcome': 'stored' }) >= 1, true, 'its duration recorded')
})

t.test('uploads in flight are counted while they run', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { app, url } = await startApp(t, server, { bucket, mode: 'inline' })
  // A client that sends the start of a file and then holds the connection open.
  const separator = boundary()
  const request = httpRequest(`${url}/upload`, { method: 'POST', agent: false, headers: { 'content-type': `multipart/form-data; boundary=${separator}`, 'content-length': String(100 * MiB) } })
  request.on('error', () => {})
  request.write(`--${separator}\r\nContent-Disposition: form-data; name="file"; filename="held.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`)
  request.write(Buffer.alloc(MiB, 1))
  for (let i = 0; i < 100 && app.s3Chunk.stats().uploadsInFlight === 0; i++) await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(app.s3Chunk.stats().uploadsInFlight, 1)
  t.equal(await metric('s3chunk.uploads.active', { 's3chunk.upload.kind': 'streamed' }), 1, 'in flight while it runs')
  request.destroy()
  for (let i = 0; i < 100 && app.s3Chunk.stats().uploadsInFlight > 0; i++) await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(await metric('s3chunk.uploads.active', { 's3chunk.upload.kind': 'streamed' }), 0)
  t.same(await pendingUploads(client, bucket), [])
})

t.test('a file over maxFileSize (413): the span says aborted and why; aborts counted by reason', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  spans.reset()
  const aborts0 = await metric('s3chunk.aborts', { 's3chunk.abort.reason': 'file_too_large' })
  const stored0 = await metric('s3chunk.stored', { 's3chunk.upload.kind': 'streamed' })
  const { url } = await startApp(t, server, { bucket, mode: 'inline', maxFileSize: 6 * MiB })
  const result = await streamUpload(`${url}/upload`, { seed: 3, size: 12 * MiB })
  t.equal(result.status ?? 413, 413, result.body)
  const [span] = uploadSpans()
  t.match(span?.attributes, {
    's3chunk.upload.outcome': 'aborted',
    's3chunk.abort.reason': 'file_too_large',
    'error.type': 'FST_S3CHUNK_FILE_TOO_LARGE',
    's3chunk.upload.parts': 1,
    's3chunk.upload.bytes': 5 * MiB
  })
  t.equal(span?.status.code, SpanStatusCode.ERROR)
  t.equal(await metric('s3chunk.aborts', { 's3chunk.abort.reason': 'file_too_large' }) - aborts0, 1, 'one abort, reason file_too_large')
  t.equal(await metric('s3chunk.stored', { 's3chunk.upload.kind': 'streamed' }), stored0, 'no bytes stored')
  t.same(await listKeys(client, bucket), [])
  t.same(await pendingUploads(client, bucket), [])
})

t.test('S3 failures through the fault proxy: retries by error code, the failure\'s request ids, aborts by reason', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const proxy = await startFaultProxy({ target: server.endpoint })
  t.teardown(async () => { await proxy.close() })
  const { url } = await startApp(t, server, {
    bucket,
    mode: 'workers',
    retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 5 },
    s3: { region: server.region, endpoint: proxy.endpoint, forcePathStyle: true, credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey } }
  })

  // One part answered 503 SlowDown once: retried (in a worker thread) and stored.
  spans.reset()
  const slowDown0 = await metric('s3chunk.s3.retries', { 'error.type': 'SlowDown', 's3chunk.s3.operation': 'UploadPart' })
  proxy.setRules([{ match: isUploadPart, fault: { kind: 'status', status: 503 }, times: 1 }])
  const retried = await streamUpload(`${url}/upload`, { seed: 4, size: 11 * MiB })
  t.equal(retried.status, 200, retried.body)
  t.equal(await metric('s3chunk.s3.retries', { 'error.type': 'SlowDown', 's3chunk.s3.operation': 'UploadPart' }) - slowDown0, 1, 'the retry counted by its S3 error code')
  const [ok] = uploadSpans()
  t.match(ok?.attributes, { 's3chunk.upload.outcome': 'stored', 's3chunk.upload.retries': 1, 's3chunk.upload.parts': 3 })
  t.match(ok?.attributes['s3chunk.s3.failed_request_ids'], [/^fault-proxy-\d+$/], 'the retried failure\'s request id')

  // Every Complete answered 500: retried once, given up, aborted (502).
  spans.reset()
  const internal0 = await metric('s3chunk.s3.retries', { 'error.type': 'InternalError', 's3chunk.s3.operation': 'CompleteMultipartUpload' })
  const storageAborts0 = await metric('s3chunk.aborts', { 's3chunk.abort.reason': 'storage' })
  proxy.setRules([{ match: isComplete, fault: { kind: 'status', status: 500 } }])
  const failed = await streamUpload(`${url}/upload`, { seed: 5, size: 11 * MiB })
  t.equal(failed.status, 502, failed.body)
  t.equal(await metric('s3chunk.s3.retries', { 'error.type': 'InternalError', 's3chunk.s3.operation': 'CompleteMultipartUpload' }) - internal0, 1, 'one retry of the Complete (attempts: 2)')
  t.equal(await metric('s3chunk.aborts', { 's3chunk.abort.reason': 'storage' }) - storageAborts0, 1, 'aborted for a storage failure')
  const [bad] = uploadSpans()
  t.match(bad?.attributes, { 's3chunk.upload.outcome': 'aborted', 's3chunk.abort.reason': 'storage', 'error.type': 'FST_S3CHUNK_STORAGE', 's3chunk.upload.retries': 1 })
  const ids = bad?.attributes['s3chunk.s3.failed_request_ids'] as string[] | undefined
  t.equal(ids?.length, 2, `both failed Completes' request ids (${ids?.join(', ') ?? ''})`)
  t.ok(ids?.every((id) => /^fault-proxy-\d+$/.test(id)))
  proxy.setRules([])
  t.same(await listKeys(client, bucket), [JSON.parse(retried.body).key], 'nothing stored for the failed upload')
  t.same(await pendingUploads(client, bucket), [])
})

t.test('a direct upload\'s complete is an upload span (kind direct) with its S3 calls as children', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  spans.reset()
  sentUnder.length = 0
  const stored0 = await metric('s3chunk.stored', { 's3chunk.upload.kind': 'direct' })
  const { url } = await startDirect(t, server, bucket)
  const signed = await params(url, 'u1', 'notes.txt', 'text/plain')
  t.equal(signed.status, 200)
  const data = Buffer.from('a direct upload, checked and promoted by the server\n')
  t.equal((await postToS3(signed.json, data)).status, 204)
  const completed = await api(`${url}/s3/complete`, 'u1', 'POST', { key: signed.json.key })
  t.equal(completed.status, 200, JSON.stringify(completed.json))
  const [span, ...others] = uploadSpans()
  t.equal(others.length, 0, 'one span: the complete (signing is no upload)')
  t.match(span?.attributes, { 's3chunk.upload.kind': 'direct', 's3chunk.upload.outcome': 'stored', 's3chunk.upload.bytes': data.byteLength, 'aws.s3.bucket': bucket, 'aws.s3.key': completed.json.key })
  const spanId = span?.spanContext().spanId
  t.ok(sentUnder.some((call) => call.spanId === spanId && call.command === 'CopyObjectCommand'), 'the promoting copy ran under the span')
  t.equal(await metric('s3chunk.stored', { 's3chunk.upload.kind': 'direct' }) - stored0, data.byteLength)

  // A complete for an object that was never posted fails: aborted, with its reason.
  spans.reset()
  const again = await params(url, 'u1', 'never.txt', 'text/plain')
  const missing = await api(`${url}/s3/complete`, 'u1', 'POST', { key: again.json.key })
  t.equal(missing.status, 422)
  t.match(uploadSpans()[0]?.attributes, { 's3chunk.upload.kind': 'direct', 's3chunk.upload.outcome': 'aborted', 's3chunk.abort.reason': 'upload_rejected' })
})
