// OpenTelemetry for the telemetry tests: the SDK's in-memory exporters installed as the global
// providers, an AsyncLocalStorage context manager, and a record of the span active when each S3
// call is sent (what AWS SDK instrumentation would see). Install it before any app is built: the
// plugin takes its meter when it makes its engine.
import { AsyncLocalStorage } from 'node:async_hooks'
import { S3Client } from '@aws-sdk/client-s3'
import { context, metrics, ROOT_CONTEXT, trace, type Context, type ContextManager } from '@opentelemetry/api'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics'

/** What the SDK's AsyncLocalStorage context manager does (not installed here): the active context follows async calls. */
class AsyncContextManager implements ContextManager {
  readonly #storage = new AsyncLocalStorage<Context>()
  active (): Context { return this.#storage.getStore() ?? ROOT_CONTEXT }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(ctx: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    return this.#storage.run(ctx, () => fn.call(thisArg, ...args))
  }
  bind<T>(_ctx: Context, target: T): T { return target }
  enable (): this { return this }
  disable (): this { this.#storage.disable(); return this }
}

export interface TelemetryHarness {
  spans: InMemorySpanExporter
  metricExporter: InMemoryMetricExporter
  reader: PeriodicExportingMetricReader
  /** Each S3 call sent: its command and the span active then. */
  sentUnder: Array<{ command: string, spanId: string | undefined }>
}

export function installTelemetry (t: { teardown: (fn: () => unknown) => void }): TelemetryHarness {
  const spans = new InMemorySpanExporter()
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] })
  const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
  const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 3_600_000 })
  const meterProvider = new MeterProvider({ readers: [reader] })
  context.setGlobalContextManager(new AsyncContextManager())
  trace.setGlobalTracerProvider(tracerProvider)
  metrics.setGlobalMeterProvider(meterProvider)
  t.teardown(async () => { await meterProvider.shutdown(); await tracerProvider.shutdown() })

  const sentUnder: TelemetryHarness['sentUnder'] = []
  const send = S3Client.prototype.send
  S3Client.prototype.send = function (this: S3Client, command: { constructor: { name: string } }, ...rest: unknown[]) {
    sentUnder.push({ command: command.constructor.name, spanId: trace.getActiveSpan()?.spanContext().spanId })
    return (send as (...args: unknown[]) => unknown).call(this, command, ...rest)
  } as typeof S3Client.prototype.send
  t.teardown(() => { S3Client.prototype.send = send })
  return { spans, metricExporter, reader, sentUnder }
}
