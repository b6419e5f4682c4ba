// Telemetry of the tus endpoint (found in review, helper-53: tus uploads reported nothing — no
// span, never active, stored, retried or aborted — although the README and UploadKind name
// `tus`). Each request that writes bytes into an upload, finishes it or fails it is one
// `s3chunk.upload` span of kind tus: `saved` (its bytes kept, the upload goes on), `stored`
// (the upload finished: its bytes in s3chunk.stored, once) or `aborted` (by reason); a DELETE
// is an abort, reason `terminated`. Read with the SDK's in-memory exporters, against MinIO.
import t from 'tap'
import { installTelemetry } from '../support/telemetry-harness.ts'
import { request as httpRequest } from 'node:http'
import { SpanStatusCode } from '@opentelemetry/api'
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base'
import type { DataPoint, Histogram } from '@opentelemetry/sdk-metrics'
import { isUploadPart } from '../support/fault-proxy.ts'
import { randomBytes } from 'node:crypto'
import { freshBucket, listKeys, needsStrictS3, testClient, testS3 } from '../support/s3.ts'
import { createUpload, expectClean, expectOnlyObject, metadataHeader, patchUpload, settledOffset, startTus, startTusBehindProxy, tusRequest } from '../support/tus.ts'

const MiB = 1024 * 1024
const server = await testS3()
const client = testClient(server)
const skip = needsStrictS3(server)

// Installed before any app is built: the plugin takes its meter when it makes its engine.
const { spans, metricExporter, reader, sentUnder } = installTelemetry(t)

const TUS = { 's3chunk.upload.kind': 'tus' }

/** The current value of a metric's data point whose attributes include `attributes` (0 when there is none yet); a histogram's count. */
async function metric (name: string, attributes: Record<string, unknown> = {}): Promise<number> {
  metricExporter.reset()
  await reader.forceFlush()
  for (const scope of metricExporter.getMetrics().at(-1)?.scopeMetrics ?? []) {
    if (scope.scope.name !== 'fastify-s3-chunk') continue
    for (const data of scope.metrics) {
      if (data.descriptor.name !== name) continue
      const points = data.dataPoints as Array<DataPoint<number | Histogram>>
      const point = points.find((candidate) => Object.entries(attributes).every(([key, value]) => candidate.attributes[key] === value))
      if (point === undefined) return 0
      return typeof point.value === 'number' ? point.value : point.value.count
    }
  }
  return 0
}

function tusSpans (): ReadableSpan[] {
  return spans.getFinishedSpans().filter((span) => span.name === 's3chunk.upload' && span.attributes['s3chunk.upload.kind'] === 'tus')
}

/** The main-thread S3 calls made under `span`. */
function callsUnder (span: ReadableSpan | undefined): string[] {
  const spanId = span?.spanContext().spanId
  return sentUnder.filter((call) => spanId !== undefined && call.spanId === spanId).map((call) => call.command)
}

function partEvents (span: ReadableSpan | undefined): Array<[unknown, unknown]> {
  return (span?.events ?? []).filter((event) => event.name === 's3chunk.part').map((event) => [event.attributes?.['aws.s3.part_number'], event.attributes?.['s3chunk.upload.bytes']])
}

t.test('a tus upload stored: an upload span of kind tus, and its bytes in s3chunk.stored (the review\'s case)', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  spans.reset()
  const stored0 = await metric('s3chunk.stored', TUS)
  const { endpoint } = await startTus(t, server, bucket, { mode: 'inline' })
  const data = randomBytes(6 * MiB)
  const url = await createUpload(endpoint, data.byteLength, { 'upload-metadata': metadataHeader({ filename: 'a.bin' }) })
  t.equal((await patchUpload(url, 0, data)).status, 204, 'the tus upload is stored')
  const [span, ...others] = tusSpans()
  t.equal(others.length, 0, 'one span: the PATCH (a creation without bytes writes nothing)')
  t.match(span?.attributes, { 's3chunk.upload.outcome': 'stored', 's3chunk.upload.bytes': data.byteLength, 's3chunk.upload.parts': 2, 's3chunk.upload.retries': 0, 'aws.s3.bucket': bucket })
  t.equal(await metric('s3chunk.stored', TUS) - stored0, data.byteLength, 's3chunk.stored{kind=tus} counts the bytes')
  await expectOnlyObject(t, client, bucket, data)
})

t.test('an upload in two PATCHes: saved, then stored — the parts as events, the S3 calls as children, stored counted once', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  spans.reset()
  sentUnder.length = 0
  const stored0 = await metric('s3chunk.stored', TUS)
  const savedRuns0 = await metric('s3chunk.upload.duration', { ...TUS, 's3chunk.upload.outcome': 'saved' })
  const storedRuns0 = await metric('s3chunk.upload.duration', { ...TUS, 's3chunk.upload.outcome': 'stored' })
  const aborts0 = await metric('s3chunk.aborts', TUS)
  // Workers mode: each part's buffer is transferred to a thread, and its event must still say its size.
  const { endpoint } = await startTus(t, server, bucket, { mode: 'workers', partSize: 5 * MiB })
  const data = randomBytes(11 * MiB + 3)
  const first = 5 * MiB + 100
  const url = await createUpload(endpoint, data.byteLength)
  t.equal((await patchUpload(url, 0, data.subarray(0, first))).status, 204)
  t.equal((await patchUpload(url, first, data.subarray(first))).status, 204)

  const [saved, stored, ...others] = tusSpans()
  t.equal(others.length, 0, 'a span per PATCH')
  t.match(saved?.attributes, { 's3chunk.upload.outcome': 'saved', 's3chunk.upload.bytes': first, 's3chunk.upload.parts': 1, 's3chunk.upload.retries': 0 })
  t.equal(saved?.attributes['s3chunk.upload.interrupted'], undefined, 'its body came whole')
  t.equal(saved?.status.code, SpanStatusCode.UNSET)
  t.same(partEvents(saved), [[1, 5 * MiB]], 'the first PATCH sent part 1')
  t.match(stored?.attributes, { 's3chunk.upload.outcome': 'stored', 's3chunk.upload.bytes': data.byteLength, 's3chunk.upload.parts': 3 })
  t.same(partEvents(stored).sort(), [[2, 5 * MiB], [3, MiB + 3]], 'the second sent the others (the first\'s tail at their head)')
  const keys = await listKeys(client, bucket)
  t.equal(stored?.attributes['aws.s3.key'], keys[0], 'the object\'s key')
  t.equal(saved?.attributes['aws.s3.key'], keys[0])
  t.type(saved?.attributes['aws.s3.upload_id'], 'string')
  t.equal(stored?.attributes['aws.s3.upload_id'], saved?.attributes['aws.s3.upload_id'], 'one multipart upload across both')
  t.ok(callsUnder(saved).includes('CreateMultipartUploadCommand'), `the first PATCH's S3 calls ran under its span (${callsUnder(saved).join(', ')})`)
  t.ok(callsUnder(stored).includes('CompleteMultipartUploadCommand'), `the Complete ran under the finishing PATCH's span (${callsUnder(stored).join(', ')})`)

  t.equal(await metric('s3chunk.stored', TUS) - stored0, data.byteLength, 'the whole object counted once, when stored')
  t.equal(await metric('s3chunk.upload.duration', { ...TUS, 's3chunk.upload.outcome': 'saved' }) - savedRuns0, 1, 'a duration for the saving PATCH')
  t.equal(await metric('s3chunk.upload.duration', { ...TUS, 's3chunk.upload.outcome': 'stored' }) - storedRuns0, 1, 'and for the finishing one')
  t.equal(await metric('s3chunk.uploads.active', TUS), 0, 'nothing in flight once both answered')
  t.equal(await metric('s3chunk.aborts', TUS), aborts0, 'no abort')
  await expectOnlyObject(t, client, bucket, data)
})

t.test('a PATCH refused (460 checksum mismatch): aborted with its reason; the retry stores', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  spans.reset()
  const aborts0 = await metric('s3chunk.aborts', { ...TUS, 's3chunk.abort.reason': 'tus_checksum_mismatch' })
  const { endpoint } = await startTus(t, server, bucket, { mode: 'inline' })
  const data = randomBytes(MiB)
  const url = await createUpload(endpoint, data.byteLength)
  t.equal((await patchUpload(url, 0, data, { 'upload-checksum': `sha1 ${Buffer.alloc(20).toString('base64')}` })).status, 460)
  const [refused] = tusSpans()
  // The whole file is one last part, sent before the body's end could be checked: sent, not kept.
  t.match(refused?.attributes, { 's3chunk.upload.outcome': 'aborted', 's3chunk.abort.reason': 'tus_checksum_mismatch', 'error.type': 'FST_S3CHUNK_TUS_CHECKSUM_MISMATCH', 's3chunk.upload.bytes': MiB, 's3chunk.upload.parts': 1 })
  t.equal(refused?.status.code, SpanStatusCode.ERROR)
  t.equal(await metric('s3chunk.aborts', { ...TUS, 's3chunk.abort.reason': 'tus_checksum_mismatch' }) - aborts0, 1, 'counted by reason')
  t.equal((await patchUpload(url, 0, data)).status, 204)
  t.equal(tusSpans()[1]?.attributes['s3chunk.upload.outcome'], 'stored')
  await expectOnlyObject(t, client, bucket, data)
})

t.test('a client gone mid-PATCH: saved (its bytes kept), interrupted, no abort', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  spans.reset()
  const aborts0 = await metric('s3chunk.aborts', TUS)
  const { endpoint } = await startTus(t, server, bucket, { mode: 'inline' })
  const data = randomBytes(8 * MiB)
  const url = await createUpload(endpoint, data.byteLength)
  const sent = 6 * MiB
  // Says the whole file, sends 6 MiB, then drops the connection.
  const request = httpRequest(url, { method: 'PATCH', agent: false, headers: { 'tus-resumable': '1.0.0', 'content-type': 'application/offset+octet-stream', 'upload-offset': '0', 'content-length': String(data.byteLength) } })
  request.on('error', () => {})
  request.write(data.subarray(0, sent), () => { setTimeout(() => { request.destroy() }, 300) })
  // The span ends once the PATCH has saved what came (before that the state may not even be held yet).
  for (let i = 0; i < 200 && tusSpans().length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 50))
  const kept = await settledOffset(client, bucket, url)
  const [span] = tusSpans()
  t.match(span?.attributes, { 's3chunk.upload.outcome': 'saved', 's3chunk.upload.interrupted': 'bad_request', 's3chunk.upload.bytes': kept, 's3chunk.upload.parts': 1 })
  t.equal(kept, sent, 'every byte that came is kept')
  t.equal(span?.status.code, SpanStatusCode.UNSET, 'no error: the upload goes on from there')
  t.equal(await metric('s3chunk.aborts', TUS), aborts0, 'no abort')
  t.equal((await patchUpload(url, sent, data.subarray(sent))).status, 204, 'the resume stores the file')
  await expectOnlyObject(t, client, bucket, data)
})

t.test('a DELETE: an abort, reason terminated, not an error', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  spans.reset()
  sentUnder.length = 0
  const terminated0 = await metric('s3chunk.aborts', { ...TUS, 's3chunk.abort.reason': 'terminated' })
  const { endpoint } = await startTus(t, server, bucket, { mode: 'inline' })
  const data = randomBytes(6 * MiB)
  const url = await createUpload(endpoint, 8 * MiB)
  t.equal((await patchUpload(url, 0, data)).status, 204)
  t.equal((await tusRequest(url, 'DELETE')).status, 204)
  const [saved, terminated, ...others] = tusSpans()
  t.equal(others.length, 0)
  t.equal(saved?.attributes['s3chunk.upload.outcome'], 'saved')
  t.match(terminated?.attributes, { 's3chunk.upload.outcome': 'aborted', 's3chunk.abort.reason': 'terminated', 'aws.s3.upload_id': saved?.attributes['aws.s3.upload_id'] })
  t.equal(terminated?.status.code, SpanStatusCode.UNSET, 'the client asked for it')
  t.ok(callsUnder(terminated).includes('AbortMultipartUploadCommand'), 'its AbortMultipartUpload ran under its span')
  t.equal(await metric('s3chunk.aborts', { ...TUS, 's3chunk.abort.reason': 'terminated' }) - terminated0, 1)
  t.equal((await tusRequest(url, 'DELETE')).status, 404)
  t.equal(tusSpans().length, 2, 'a DELETE that terminates nothing is no span')
  await expectClean(t, client, bucket)
})

t.test('an empty upload stored at its creation: a span of 0 bytes', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  spans.reset()
  const { endpoint } = await startTus(t, server, bucket, { mode: 'inline' })
  await createUpload(endpoint, 0)
  t.match(tusSpans()[0]?.attributes, { 's3chunk.upload.outcome': 'stored', 's3chunk.upload.bytes': 0, 's3chunk.upload.parts': 0 })
  await expectOnlyObject(t, client, bucket, new Uint8Array(0))
})

t.test('S3 failures through the fault proxy: a part retried, then every part failing (502: aborted, storage)', { skip }, async (t) => {
  const bucket = await freshBucket(t, server, client)
  const { endpoint, proxy } = await startTusBehindProxy(t, server, bucket, { mode: 'workers', retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 5 } })
  const data = randomBytes(11 * MiB)
  const url = await createUpload(endpoint, data.byteLength)

  // The first part answered 503 once: retried in its worker thread, and counted.
  spans.reset()
  const slowDown0 = await metric('s3chunk.s3.retries', { 'error.type': 'SlowDown', 's3chunk.s3.operation': 'UploadPart' })
  proxy.setRules([{ match: isUploadPart, fault: { kind: 'status', status: 503 }, times: 1 }])
  t.equal((await patchUpload(url, 0, data.subarray(0, 5 * MiB))).status, 204)
  const [retried] = tusSpans()
  t.match(retried?.attributes, { 's3chunk.upload.outcome': 'saved', 's3chunk.upload.retries': 1, 's3chunk.upload.parts': 1 })
  t.match(retried?.attributes['s3chunk.s3.failed_request_ids'], [/^fault-proxy-\d+$/], 'the retried failure\'s request id')
  t.equal(await metric('s3chunk.s3.retries', { 'error.type': 'SlowDown', 's3chunk.s3.operation': 'UploadPart' }) - slowDown0, 1)

  // Every part answered 500: given up, the PATCH fails (502) and its upload stays where it was.
  spans.reset()
  const storage0 = await metric('s3chunk.aborts', { ...TUS, 's3chunk.abort.reason': 'storage' })
  proxy.setRules([{ match: isUploadPart, fault: { kind: 'status', status: 500 } }])
  t.equal((await patchUpload(url, 5 * MiB, data.subarray(5 * MiB))).status, 502)
  const [failed] = tusSpans()
  t.match(failed?.attributes, { 's3chunk.upload.outcome': 'aborted', 's3chunk.abort.reason': 'storage', 'error.type': 'FST_S3CHUNK_STORAGE' })
  t.ok(Number(failed?.attributes['s3chunk.upload.retries']) >= 1, 'its parts\' retries counted')
  t.equal(failed?.status.code, SpanStatusCode.ERROR)
  t.equal(await metric('s3chunk.aborts', { ...TUS, 's3chunk.abort.reason': 'storage' }) - storage0, 1)

  proxy.setRules([])
  t.equal(await settledOffset(client, bucket, url), 5 * MiB, 'the upload as the first PATCH left it')
  t.equal((await patchUpload(url, 5 * MiB, data.subarray(5 * MiB))).status, 204)
  t.equal(tusSpans()[1]?.attributes['s3chunk.upload.outcome'], 'stored')
  await expectOnlyObject(t, client, bucket, data)
})
