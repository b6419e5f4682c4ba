import {
  context,
  metrics,
  SpanStatusCode,
  trace,
  type Context,
  type Counter,
  type Histogram,
  type ObservableCallback,
  type ObservableGauge,
  type Span,
  type UpDownCounter
} from '@opentelemetry/api'
import type { RetriedRequest, S3FailureInfo } from './upload/s3-failure.js'

/**
 * Traces and metrics through OpenTelemetry's API: a no-op (a few function
 * calls per upload) unless the app installs an SDK. One span per upload and a
 * handful of instruments; nothing per chunk — the work is per upload, per part
 * (5 MiB or more) and per retry. README "Telemetry" lists every name.
 */

/** The instrumentation scope: `trace.getTracer` / `metrics.getMeter` name. */
export const INSTRUMENTATION_SCOPE = 'fastify-s3-chunk'

/** The front door an upload came in by. */
export type UploadKind = 'streamed' | 'direct' | 'tus'

/**
 * How an upload's span ended: `stored`, or `aborted` (nothing stored) — or, for tus, `saved`:
 * a request whose bytes the upload keeps, the upload not yet finished (it goes on from them).
 */
export type UploadOutcome = 'stored' | 'saved' | 'aborted'

/** Metric names (OpenTelemetry's dotted style; a Prometheus exporter shows `s3chunk_uploads_active`, `s3chunk_stored_bytes_total`, …). */
export const METRICS = {
  active: 's3chunk.uploads.active',
  stored: 's3chunk.stored',
  duration: 's3chunk.upload.duration',
  bufferUsage: 's3chunk.buffer.usage',
  bufferLimit: 's3chunk.buffer.limit',
  bufferWait: 's3chunk.buffer.wait.duration',
  retries: 's3chunk.s3.retries',
  aborts: 's3chunk.aborts'
} as const

/** Span and attribute names. */
export const SPAN_NAME = 's3chunk.upload'
export const ATTR = {
  kind: 's3chunk.upload.kind',
  outcome: 's3chunk.upload.outcome',
  bytes: 's3chunk.upload.bytes',
  parts: 's3chunk.upload.parts',
  retries: 's3chunk.upload.retries',
  interrupted: 's3chunk.upload.interrupted',
  abortReason: 's3chunk.abort.reason',
  failedRequestIds: 's3chunk.s3.failed_request_ids',
  operation: 's3chunk.s3.operation',
  bucket: 'aws.s3.bucket',
  key: 'aws.s3.key',
  uploadId: 'aws.s3.upload_id',
  partNumber: 'aws.s3.part_number',
  errorType: 'error.type'
} as const

// Seconds, for waits from a millisecond to minutes.
const SECONDS_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800]
// Request ids kept on a span: enough to find the failures in S3's logs, bounded.
const MAX_REQUEST_IDS = 16

/**
 * The engine's instruments. Made with the engine: the meter is the global
 * MeterProvider's at that moment (the API has no proxy for meters), so an app
 * installs its SDK before it registers the plugin. The tracer is looked up
 * per upload, so spans follow whichever provider is current.
 */
export class Telemetry {
  readonly #active: UpDownCounter
  readonly #stored: Counter
  readonly #duration: Histogram
  readonly #retries: Counter
  readonly #aborts: Counter
  readonly #wait: Histogram
  readonly #gauges: Array<[ObservableGauge, ObservableCallback]> = []

  constructor (buffers: { readonly used: number, readonly limit: number }) {
    const meter = metrics.getMeter(INSTRUMENTATION_SCOPE)
    this.#active = meter.createUpDownCounter(METRICS.active, { unit: '{upload}', description: 'Uploads in flight (streamed; direct during their complete call; tus while a request writes to them)' })
    this.#stored = meter.createCounter(METRICS.stored, { unit: 'By', description: 'Bytes of uploads stored (committed objects)' })
    this.#duration = meter.createHistogram(METRICS.duration, { unit: 's', description: 'Time from an upload\'s start to its end (tus: a request\'s)', advice: { explicitBucketBoundaries: SECONDS_BUCKETS } })
    this.#retries = meter.createCounter(METRICS.retries, { unit: '{retry}', description: 'S3 requests retried, by S3 error code' })
    this.#aborts = meter.createCounter(METRICS.aborts, { unit: '{upload}', description: 'Uploads ended without storing anything, by reason' })
    this.#wait = meter.createHistogram(METRICS.bufferWait, { unit: 's', description: 'Time a part waited for room in the memory budget (maxBufferedBytes)', advice: { explicitBucketBoundaries: SECONDS_BUCKETS } })
    this.#gauge(meter.createObservableGauge(METRICS.bufferUsage, { unit: 'By', description: 'Bytes of part buffers in use (filling, queued or being sent)' }), () => buffers.used)
    this.#gauge(meter.createObservableGauge(METRICS.bufferLimit, { unit: 'By', description: 'The memory budget for part buffers (maxBufferedBytes)' }), () => buffers.limit)
  }

  #gauge (gauge: ObservableGauge, read: () => number): void {
    const callback: ObservableCallback = (result) => { result.observe(read()) }
    gauge.addCallback(callback)
    this.#gauges.push([gauge, callback])
  }

  /** Starts an upload's span (child of the active context: the request's span under HTTP instrumentation). */
  startUpload (kind: UploadKind, target: { bucket: string, key?: string | undefined }): UploadTelemetry {
    return new UploadTelemetry(this, kind, target)
  }

  /** A part waited `ms` for room in the budget (only waits are recorded: the fast path records nothing). */
  waitedForMemory (ms: number): void {
    this.#wait.record(ms / 1000)
  }

  /** @internal UploadTelemetry */
  recordRetry (operation: string, code: string): void {
    this.#retries.add(1, { [ATTR.errorType]: code, [ATTR.operation]: operation })
  }

  /** @internal UploadTelemetry */
  recordStart (kind: UploadKind): void {
    this.#active.add(1, { [ATTR.kind]: kind })
  }

  /** @internal UploadTelemetry */
  recordEnd (kind: UploadKind, seconds: number, outcome: UploadOutcome, stored: number | null, reason: string | null): void {
    this.#active.add(-1, { [ATTR.kind]: kind })
    this.#duration.record(seconds, { [ATTR.kind]: kind, [ATTR.outcome]: outcome })
    if (stored !== null) this.#stored.add(stored, { [ATTR.kind]: kind })
    if (reason !== null) this.#aborts.add(1, { [ATTR.kind]: kind, [ATTR.abortReason]: reason })
  }

  /** Stops observing the engine's buffers (the engine is closed). */
  close (): void {
    for (const [gauge, callback] of this.#gauges) gauge.removeCallback(callback)
    this.#gauges.length = 0
  }
}

/**
 * One upload's span and figures. Ends once: `stored()`, `saved()`, `aborted()` or
 * `failed()` (the first call counts; later ones do nothing). Run the
 * upload's S3 calls inside `run()` so that, with the SDK's context manager
 * and AWS SDK instrumentation, they become the span's children (parts sent
 * from worker threads cannot share the context: each is an event instead).
 */
export class UploadTelemetry {
  readonly span: Span
  readonly context: Context
  readonly #owner: Telemetry
  readonly #kind: UploadKind
  readonly #started = performance.now()
  #retries = 0
  #parts = 0
  #bytes = 0
  readonly #requestIds: string[] = []
  #ended = false

  constructor (owner: Telemetry, kind: UploadKind, target: { bucket: string, key?: string | undefined }) {
    this.#owner = owner
    this.#kind = kind
    this.span = trace.getTracer(INSTRUMENTATION_SCOPE).startSpan(SPAN_NAME, {
      attributes: { [ATTR.kind]: kind, [ATTR.bucket]: target.bucket, ...(target.key !== undefined ? { [ATTR.key]: target.key } : {}) }
    })
    this.context = trace.setSpan(context.active(), this.span)
    owner.recordStart(kind)
  }

  /** Runs `fn` with this upload's span active. */
  run<T>(fn: () => T): T {
    return context.with(this.context, fn)
  }

  setKey (key: string): void {
    this.span.setAttribute(ATTR.key, key)
  }

  setUploadId (uploadId: string): void {
    this.span.setAttribute(ATTR.uploadId, uploadId)
  }

  /** A part S3 acknowledged, with the failures retried on the way. */
  part (number: number, bytes: number, retried: RetriedRequest[] | undefined): void {
    this.#parts += 1
    this.#bytes += bytes
    this.span.addEvent('s3chunk.part', { [ATTR.partNumber]: number, [ATTR.bytes]: bytes, [ATTR.retries]: retried?.length ?? 0 })
    if (retried !== undefined) for (const request of retried) this.retry('UploadPart', request)
  }

  /** A main-thread S3 call's failed attempt that is retried: a MultipartScope's (or withRetries') `onRetry`, as it is. */
  readonly onRetry = (info: S3FailureInfo): void => {
    this.retry(info.operation, info.requestId !== undefined ? { code: info.code ?? info.name, requestId: info.requestId } : { code: info.code ?? info.name })
  }

  /** A failed S3 request that is retried. */
  retry (operation: string, request: RetriedRequest): void {
    this.#retries += 1
    this.#requestId(request.requestId)
    this.#owner.recordRetry(operation, request.code)
  }

  /** A part's S3 request given up on, with the failures retried before it (they come back from the thread with it). */
  failure (info: { code?: string | undefined, requestId?: string | undefined, retried?: RetriedRequest[] | undefined, operation?: string }): void {
    for (const request of info.retried ?? []) this.retry(info.operation ?? 'UploadPart', request)
    this.#requestId(info.requestId)
  }

  #requestId (id: string | undefined): void {
    if (id !== undefined && this.#requestIds.length < MAX_REQUEST_IDS && !this.#requestIds.includes(id)) this.#requestIds.push(id)
  }

  /** The upload is stored: `bytes` and `parts` as committed (parts: 0 for a single PUT). */
  stored (outcome: { size: number, parts: number, key?: string }): void {
    if (this.#ended) return
    this.#ended = true
    if (outcome.key !== undefined) this.span.setAttribute(ATTR.key, outcome.key)
    this.span.setAttributes({ [ATTR.outcome]: 'stored', [ATTR.bytes]: outcome.size, [ATTR.parts]: outcome.parts, [ATTR.retries]: this.#retries })
    if (this.#requestIds.length > 0) this.span.setAttribute(ATTR.failedRequestIds, this.#requestIds)
    this.span.end()
    this.#owner.recordEnd(this.#kind, (performance.now() - this.#started) / 1000, 'stored', outcome.size, null)
  }

  /**
   * tus: the request's bytes are kept and the upload goes on (not finished): `bytes` it
   * added to the upload, `parts` it stored. `interrupted`: why its body ended early (the
   * client gone, the app closing, …) — the bytes that came are kept all the same, so it is
   * no abort and no error.
   */
  saved (outcome: { bytes: number, parts: number, interrupted?: unknown }): void {
    if (this.#ended) return
    this.#ended = true
    this.span.setAttributes({ [ATTR.outcome]: 'saved', [ATTR.bytes]: outcome.bytes, [ATTR.parts]: outcome.parts, [ATTR.retries]: this.#retries })
    if (outcome.interrupted !== undefined) this.span.setAttribute(ATTR.interrupted, abortReason(outcome.interrupted))
    if (this.#requestIds.length > 0) this.span.setAttribute(ATTR.failedRequestIds, this.#requestIds)
    this.span.end()
    this.#owner.recordEnd(this.#kind, (performance.now() - this.#started) / 1000, 'saved', null, null)
  }

  /**
   * The upload was ended on purpose, nothing stored (tus: terminated by its client): an
   * abort by `reason`, but no error — the span's status stays unset.
   */
  aborted (reason: string): void {
    if (this.#ended) return
    this.#ended = true
    this.span.setAttributes({ [ATTR.outcome]: 'aborted', [ATTR.abortReason]: reason, [ATTR.bytes]: this.#bytes, [ATTR.parts]: this.#parts, [ATTR.retries]: this.#retries })
    this.span.end()
    this.#owner.recordEnd(this.#kind, (performance.now() - this.#started) / 1000, 'aborted', null, reason)
  }

  /** The upload ended without storing anything (aborted). */
  failed (error: unknown): void {
    if (this.#ended) return
    this.#ended = true
    const reason = abortReason(error)
    // Its retries were counted as they happened (or by failure() for a part).
    this.#requestId((error as { s3?: { requestId?: string } } | null)?.s3?.requestId)
    this.span.setAttributes({
      [ATTR.outcome]: 'aborted',
      [ATTR.abortReason]: reason,
      [ATTR.errorType]: errorType(error),
      [ATTR.bytes]: this.#bytes,
      [ATTR.parts]: this.#parts,
      [ATTR.retries]: this.#retries
    })
    if (this.#requestIds.length > 0) this.span.setAttribute(ATTR.failedRequestIds, this.#requestIds)
    this.span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) })
    this.span.end()
    this.#owner.recordEnd(this.#kind, (performance.now() - this.#started) / 1000, 'aborted', null, reason)
  }
}

/**
 * Why an upload ended without storing: the plugin's error code without its
 * prefix, lowercased (`file_too_large`, `storage`, `closing`, `body_timeout`,
 * `bad_multipart` — which includes a client that went away —, `busy`, …);
 * `error` for anything else (the app's own hooks throwing). A bounded set:
 * safe as a metric attribute.
 */
export function abortReason (error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code
  if (typeof code === 'string' && code.startsWith('FST_S3CHUNK_')) return code.slice('FST_S3CHUNK_'.length).toLowerCase()
  return 'error'
}

function errorType (error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code
  if (typeof code === 'string' && code !== '') return code
  return error instanceof Error ? error.name : 'Error'
}
